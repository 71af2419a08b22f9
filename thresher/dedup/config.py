"""The dedup stage's configuration: one seeded MinHash/LSH setting shared by every dedup step.

Bands and rows are either given (the default is datatrove/FineWeb's 14 bands x 8 rows = 112
hashes, whose S-curve passes 0.5 at Jaccard 0.685: pairs at 0.6/0.7/0.75/0.8 become candidates
with probability 21/56/77/92 %; hence the default threshold 0.7) or, with `bands: null, rows: null`, derived
from `threshold` and the false-positive/false-negative weights by datasketch's optimiser (the
(b, r) with b * r <= num_perm minimising the weighted areas under the S-curve on either side of
the threshold).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from thresher.config_base import StrictModel
from thresher.dedup.minhash import HASH_SCHEME
from thresher.dedup.normalize import NORMALIZER_VERSION

SurvivorRule = Literal["lowest_doc_id", "highest_score", "lowest_score"]

_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """datasketch's MinHashLSH parameter optimiser (imported lazily: it pulls in scipy)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(fp_weight, fn_weight))
    return int(lsh.b), int(lsh.r)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """P(two documents of Jaccard `similarity` share at least one band): the LSH S-curve."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def s_curve_midpoint(bands: int, rows: int) -> float:
    """The similarity near which the S-curve is steepest, (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


class DedupConfig(StrictModel):
    """Exact + MinHash-LSH near-duplicate detection over a run's documents and instructions."""

    ngram: int = Field(5, ge=1, le=64, description="word n-gram (shingle) size")
    num_perm: int = Field(112, ge=2, le=2048, description="MinHash permutations (signature length)")
    bands: int | None = Field(14, ge=1, description="LSH bands; null (with rows null) derives both from threshold")
    rows: int | None = Field(8, ge=1, description="signature rows per band")
    threshold: float = Field(
        0.7, gt=0.0, lt=1.0,
        description="target Jaccard similarity: derives bands/rows when they are null, is the cut-off of `verify`",
    )
    false_positive_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="deriving bands/rows: weight of false candidates below threshold")
    false_negative_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="deriving bands/rows: weight of missed pairs above threshold")
    seed: int = Field(1, ge=0, lt=2**32, description="seed of the MinHash permutations")
    verify: bool = Field(
        False, description="drop candidate pairs whose exact shingle Jaccard is below `threshold`"
    )
    survivor: SurvivorRule = Field(
        "lowest_doc_id",
        description="which member of a cluster is kept: lowest doc_id, or highest/lowest `survivor_column` "
                    "(ties and missing values: lowest doc_id); a prior run's document always wins",
    )
    survivor_column: str | None = Field(None, description="score column for highest_score/lowest_score")
    prior_runs: list[str] = Field(
        default_factory=list, description="run directories whose dedup index this run is deduplicated against"
    )
    memory_limit: str = Field("2GB", description="DuckDB memory limit of the cluster step (spills beyond it)")
    threads: int | None = Field(None, ge=1, description="DuckDB threads of the cluster step (default: all cores)")
    batch_rows: int = Field(1024, gt=0, description="documents hashed per vectorised batch")

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit_is_a_size(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError(f"memory_limit {value!r} is not a size such as '2GB' or '512MiB'")
        return value.strip()

    @model_validator(mode="after")
    def _check_combinations(self) -> DedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they are derived from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands * rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if self.bands is None and not math.isclose(self.false_positive_weight + self.false_negative_weight, 1.0):
            raise ValueError("false_positive_weight + false_negative_weight must be 1")
        if self.survivor == "lowest_doc_id" and self.survivor_column is not None:
            raise ValueError("survivor_column is only used by survivor: highest_score or lowest_score")
        if self.survivor != "lowest_doc_id" and not self.survivor_column:
            raise ValueError(f"survivor: {self.survivor} needs survivor_column (e.g. gopher_word_count)")
        return self

    # -- derived --------------------------------------------------------------------------------

    @property
    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows): as given, or derived from threshold and the weights."""
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands_rows(self.threshold, self.num_perm, self.false_positive_weight,
                                  self.false_negative_weight)

    def signature_params(self) -> dict:
        """Everything that shapes signatures and band keys: two runs can share an index iff equal."""
        bands, rows = self.lsh_shape
        return {"ngram": self.ngram, "num_perm": self.num_perm, "seed": self.seed, "bands": bands,
                "rows": rows, "normalizer": NORMALIZER_VERSION, "hash_scheme": HASH_SCHEME}

    def cluster_params(self) -> dict:
        """Everything besides the inputs that shapes clusters and survivors."""
        return {**self.signature_params(), "verify": self.verify,
                "threshold": self.threshold if self.verify else None,
                "survivor": self.survivor, "survivor_column": self.survivor_column}


def params_hash(params: dict) -> str:
    return hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=8).hexdigest()
