"""What the DSIR stage writes that a reader (the dashboard) shows, declared next to its schemas.

- the fit: `dsir/fits/<fit_hash>.parquet`, the catalog view `dsir_fits` (FIT_SCHEMA: one row per
  distribution and bucket; p_raw is the distribution named `RAW`), `dsir/fit.json` naming the
  newest fit (`latest_fit_pointer`);
- the weights: the `dsir` scorer's sidecar (`DsirScorer.output_schema`), one log-weight column per
  target (`weight_column`); a DSIR selection's `selection.json` names the sidecar it ranked
  (`"weights": "dsir@<version>"`), its fit and its targets;
- the random baselines: `dsir/baselines/<selection>.parquet`, the view `dsir_baselines`
  (BASELINE_SCHEMA: a same-size random draw from the same candidates, per selection).

`tests/dashboards` checks these names against the schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

from thresher.dsir.fit import FIT_SCHEMA, RAW, latest_fit_pointer
from thresher.dsir.resample import BASELINE_SCHEMA
from thresher.dsir.weights import NUM_TOKENS_COLUMN, DsirScorer, weight_column

__all__ = ["DSIR", "DsirViews", "latest_fit_pointer", "weight_column"]


def _table(schema) -> str:
    return schema.metadata[b"thresher.table"].decode()


@dataclass(frozen=True)
class DsirViews:
    scorer: str = DsirScorer.name  # the weights sidecar's scorer name (view score_dsir)
    num_tokens: str = NUM_TOKENS_COLUMN

    fits_view: str = _table(FIT_SCHEMA)
    fit_hash: str = "fit_hash"
    distribution: str = "distribution"  # RAW, or a target's name
    bucket: str = "bucket"
    prob: str = "prob"
    raw: str = RAW

    baselines_view: str = _table(BASELINE_SCHEMA)
    baseline_selection: str = "selection"  # the DSIR selection the baseline row belongs to
    baseline_doc_id: str = "doc_id"

    # selection.json of a DSIR selection: these keys say it is one, and what it ranked
    meta_fit_hash: str = "fit_hash"
    meta_targets: str = "targets"  # [{"target": name, "candidates": n, "selected": n, ...}]
    meta_weights: str = "weights"  # the sidecar's scorer key, "dsir@<version>"

    @staticmethod
    def weight_column(target: str) -> str:
        return weight_column(target)


DSIR = DsirViews()
