"""The perplexity stage's settings: which perplexity scorers run, and how their distribution over
the run is reported. The scorers' own parameters (model paths, token budgets) are their fields."""

from __future__ import annotations

from pydantic import Field

from thresher.config_base import ScorerSpec, StrictModel


class PerplexityConfig(StrictModel):
    scorers: list[ScorerSpec] = Field(min_length=1, description="kenlm and/or lm_perplexity, with their params")
    quantiles: tuple[float, ...] = Field((0.1, 0.3, 0.5, 0.6, 0.9),
                                         description="percentiles reported per scorer (P30/P60 are CCNet's bands)")
    histogram_bins: int = Field(20, gt=0, description="log-spaced bins of the reported histogram")
