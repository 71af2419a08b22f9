"""Fit DSIR's two bag-of-n-grams distributions: p_raw over the run, p_target per target.

p_raw streams the run's documents and stops after a budget of n-gram features (the reference's
`num_tokens_to_fit`, which counts unigram + bigram features, not tokens, and stops after the
document that crosses it). Unlike the reference, which reads the first documents of each file,
the budget is spent round-robin over the run's shards, one batch from each in turn, so that a
budget smaller than the run still sees every shard. Each target is counted in full unless it
has its own `max_tokens`.

The fitted parameters are small (counts per bucket) and are saved as Parquet under
`<run>/dsir/fits/<fit_hash>.parquet` (the catalog's `dsir_fits` view), one row per
(distribution, bucket), with the settings in the file's metadata. `fit_hash` is the content hash
of everything that determines the weights (featurizer, smoothing, targets and their counts), so
it names the weights' cache keys and a selection's provenance. `<run>/dsir/fit.json` points at
the newest fit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.config_base import IngestConfig
from thresher.dsir.config import DsirConfig, DsirTarget
from thresher.dsir.features import HashedNgramFeaturizer, release_memory
from thresher.storage.parquet_io import read_cache_key, write_json_atomic, write_table_atomic
from thresher.storage.readers import discover_shards, read_shard
from thresher.storage.run_dir import RunDir

FIT_FORMAT = "thresher-dsir-fit/1"
FIT_METADATA_KEY = b"thresher.dsir.fit"
TextBatch = list[str | None] | pa.Array | pa.ChunkedArray  # what HashedNgramFeaturizer.featurize takes
RAW = "raw"  # the distribution name of p_raw in the fit table (target names cannot be "raw")
FIT_SCHEMA = pa.schema(
    [
        pa.field("fit_hash", pa.string(), nullable=False),
        pa.field("distribution", pa.string(), nullable=False),
        pa.field("bucket", pa.int32(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
        pa.field("prob", pa.float64(), nullable=False),
        pa.field("log_ratio", pa.float64()),  # log p_target - log p_raw; null for p_raw itself
    ],
    metadata={"thresher.table": "dsir_fits"},
)


class FitError(ValueError):
    """A fit that cannot be made or loaded; the message says which and why."""


@dataclass(frozen=True)
class Counted:
    """Bucket counts of one distribution and how they were obtained."""

    counts: np.ndarray  # int64, (num_buckets,)
    docs: int
    features: int
    exhausted: bool  # True when every available document was counted (the budget was not hit)
    quarantined: int = 0

    def stats(self) -> dict:
        return {"docs": self.docs, "features": self.features, "exhausted": self.exhausted,
                "quarantined_rows": self.quarantined}


def count_features(
    batches: Iterator[TextBatch], featurizer: HashedNgramFeaturizer, budget: int | None
) -> Counted:
    """Sum the features of streamed text batches, stopping after the document that takes the
    total past `budget` (None: count everything)."""
    counts = np.zeros(featurizer.num_buckets, dtype=np.int64)
    docs = features = 0
    for texts in batches:
        batch = featurizer.featurize(texts)
        if budget is not None:
            cumulative = np.cumsum(batch.lengths)
            crossing = int(np.searchsorted(cumulative, budget - features, side="right"))
            if crossing < len(batch.lengths):  # this batch holds the document that crosses the budget
                keep = crossing + 1
                counts += np.bincount(batch.first_documents(keep), minlength=featurizer.num_buckets)
                return Counted(counts, docs + keep, features + int(cumulative[crossing]), exhausted=False)
        counts += np.bincount(batch.ids, minlength=featurizer.num_buckets)
        docs += len(batch.lengths)
        features += len(batch.ids)
        del batch, texts
        # Arrow's pool (mimalloc) keeps what the reader and the batch freed, ~30 MB over a shard;
        # handing it back per batch costs ~1 % of the fit and keeps the fit's peak below the reference's
        pa.default_memory_pool().release_unused()
    return Counted(counts, docs, features, exhausted=True)


def run_text_batches(run: RunDir, batch_rows: int) -> Iterator[TextBatch]:
    """The run's texts, one batch from each documents/instructions shard in turn."""
    iterators = [
        pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["text"])
        for _, _, path in run.data_parts()
    ]
    while iterators:
        alive = []
        for iterator in iterators:
            batch = next(iterator, None)
            if batch is not None:
                alive.append(iterator)
                yield batch.column(0)
        iterators = alive


class _TargetTexts:
    """Iterates a target's text batches and counts the rows its readers quarantined."""

    def __init__(self, target: DsirTarget, run: RunDir, batch_rows: int):
        self.target, self.run, self.batch_rows = target, run, batch_rows
        self.quarantined = 0

    def __iter__(self) -> Iterator[TextBatch]:
        if self.target.sql:
            yield from self._sql()
            return
        ingest = IngestConfig(batch_rows=self.batch_rows)
        for spec in self.target.inputs:
            for shard in discover_shards(spec):
                for read in read_shard(shard, spec, ingest):
                    self.quarantined += sum(read.quarantine.column("n_rows").to_pylist())
                    if read.records.num_rows:
                        yield read.records.column("text")

    def _sql(self) -> Iterator[TextBatch]:
        from thresher.storage.catalog import open_catalog  # DuckDB (~20 MB) only for SQL targets

        source = RunDir(self.target.catalog_run_dir) if self.target.catalog_run_dir else self.run
        con = open_catalog(source)
        try:
            try:
                reader = con.sql(self.target.sql).to_arrow_reader(self.batch_rows)
            except Exception as exc:  # duckdb.Error and friends: name the target
                raise FitError(f"target {self.target.name!r}: its sql failed on {source.root}: {exc}") from None
            names = reader.schema.names
            if "text" in names:
                column = names.index("text")
            elif len(names) == 1:
                column = 0
            else:
                raise FitError(f"target {self.target.name!r}: its sql must return a `text` column "
                               f"(or exactly one column), got {names}")
            for batch in reader:
                yield batch.column(column)
        finally:
            con.close()


@dataclass(frozen=True, eq=False)
class FittedDsir:
    """p_raw and one p_target per target, as bucket counts, plus how to turn them into weights.

    log_ratio[t] = log(p_target[t] + epsilon) - log(p_raw + epsilon), where p = (count + laplace) /
    (total + laplace * num_buckets): the reference's `log_diff` when laplace is 0.
    """

    ngrams: int
    num_buckets: int
    targets: tuple[str, ...]
    raw_counts: np.ndarray
    target_counts: np.ndarray  # (len(targets), num_buckets)
    laplace: float = 0.0
    epsilon: float = 1e-8
    stats: dict = field(default_factory=dict)  # provenance only; not part of fit_hash

    def __post_init__(self) -> None:
        if self.raw_counts.shape != (self.num_buckets,):
            raise FitError(f"raw counts have shape {self.raw_counts.shape}, expected ({self.num_buckets},)")
        if self.target_counts.shape != (len(self.targets), self.num_buckets):
            raise FitError(f"target counts have shape {self.target_counts.shape}, "
                           f"expected ({len(self.targets)}, {self.num_buckets})")
        if self.raw_counts.sum() == 0:
            raise FitError("p_raw has no n-grams: the run has no text to fit on")
        for name, counts in zip(self.targets, self.target_counts):
            if counts.sum() == 0:
                raise FitError(f"target {name!r} has no n-grams: its text is empty")

    @property
    def featurizer(self) -> HashedNgramFeaturizer:
        return HashedNgramFeaturizer(ngrams=self.ngrams, num_buckets=self.num_buckets)

    def params(self) -> dict:
        return {**self.featurizer.params, "targets": list(self.targets), "laplace": self.laplace,
                "epsilon": self.epsilon}

    @cached_property
    def fit_hash(self) -> str:
        digest = hashlib.blake2b(digest_size=8)
        digest.update(json.dumps(self.params(), sort_keys=True).encode())
        digest.update(np.ascontiguousarray(self.raw_counts, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(self.target_counts, dtype="<i8").tobytes())
        return digest.hexdigest()

    def _probs(self, counts: np.ndarray) -> np.ndarray:
        counts = counts.astype(np.float64)
        return (counts + self.laplace) / (counts.sum(axis=-1, keepdims=True) + self.laplace * self.num_buckets)

    @cached_property
    def raw_probs(self) -> np.ndarray:
        return self._probs(self.raw_counts)

    @cached_property
    def target_probs(self) -> np.ndarray:
        return self._probs(self.target_counts)

    @cached_property
    def log_ratio(self) -> np.ndarray:
        """(targets, buckets) float64: the per-feature log importance ratio."""
        ratio = np.log(self.target_probs + self.epsilon) - np.log(self.raw_probs + self.epsilon)
        ratio.setflags(write=False)
        return ratio

    def target_sizes(self) -> dict[str, int]:
        return {name: int(c.sum()) for name, c in zip(self.targets, self.target_counts)}

    # -- storage --------------------------------------------------------------------------------

    def to_table(self) -> pa.Table:
        b = self.num_buckets
        names = [RAW, *self.targets]
        counts = np.concatenate([self.raw_counts, self.target_counts.reshape(-1)])
        probs = np.concatenate([self.raw_probs, self.target_probs.reshape(-1)])
        ratio = np.concatenate([np.full(b, np.nan), self.log_ratio.reshape(-1)])
        table = pa.table(
            {
                "fit_hash": pa.array([self.fit_hash] * len(counts), pa.string()),
                "distribution": pa.array(np.repeat(names, b).tolist(), pa.string()),
                "bucket": pa.array(np.tile(np.arange(b, dtype=np.int32), len(names))),
                "count": pa.array(counts, pa.int64()),
                "prob": pa.array(probs, pa.float64()),
                "log_ratio": pa.array(ratio, pa.float64(), mask=np.isnan(ratio)),
            },
            schema=FIT_SCHEMA,
        )
        metadata = {FIT_METADATA_KEY: json.dumps(self.metadata()).encode()}
        return table.replace_schema_metadata({**(FIT_SCHEMA.metadata or {}), **metadata})

    def metadata(self) -> dict:
        return {"format": FIT_FORMAT, "fit_hash": self.fit_hash, **self.params(), "stats": self.stats}

    @classmethod
    def from_table(cls, table: pa.Table) -> FittedDsir:
        raw_meta = (table.schema.metadata or {}).get(FIT_METADATA_KEY)
        if raw_meta is None:
            raise FitError("not a thresher DSIR fit: its Parquet metadata has no fit description")
        meta = json.loads(raw_meta)
        if meta.get("format") != FIT_FORMAT:
            raise FitError(f"unknown DSIR fit format {meta.get('format')!r}, expected {FIT_FORMAT!r}")
        b = meta["num_buckets"]
        distributions = table.column("distribution").to_numpy(zero_copy_only=False)
        buckets = table.column("bucket").to_numpy()
        counts = table.column("count").to_numpy()

        def counts_of(name: str) -> np.ndarray:
            rows = distributions == name
            out = np.zeros(b, dtype=np.int64)
            out[buckets[rows]] = counts[rows]
            return out

        fitted = cls(
            ngrams=meta["ngrams"], num_buckets=b, targets=tuple(meta["targets"]),
            raw_counts=counts_of(RAW), target_counts=np.stack([counts_of(t) for t in meta["targets"]]),
            laplace=meta["laplace"], epsilon=meta["epsilon"], stats=meta.get("stats", {}),
        )
        if fitted.fit_hash != meta["fit_hash"]:
            raise FitError(f"fit {meta['fit_hash']} is corrupt: its counts hash to {fitted.fit_hash}")
        return fitted


def fits_dir(run: RunDir) -> Path:
    return run.root / "dsir" / "fits"


def fit_path(run: RunDir, fit_hash: str) -> Path:
    return fits_dir(run) / f"{fit_hash}.parquet"


def latest_fit_pointer(run: RunDir) -> Path:
    return run.root / "dsir" / "fit.json"


def save_fit(run: RunDir, fitted: FittedDsir, *, identity: str | None = None) -> Path:
    """Write the fit under `dsir/fits/<fit_hash>.parquet` and point `dsir/fit.json` at it."""
    path = fit_path(run, fitted.fit_hash)
    table = fitted.to_table()
    write_table_atomic(path, table.to_batches(max_chunksize=1 << 16), table.schema, cache_key=identity)
    point_latest(run, fitted, identity=identity)
    return path


def point_latest(run: RunDir, fitted: FittedDsir, *, identity: str | None = None) -> None:
    """Make `fitted` (already saved) the run's newest fit, the default of weight and select."""
    write_json_atomic(latest_fit_pointer(run), {
        "fit_hash": fitted.fit_hash,
        "path": str(fit_path(run, fitted.fit_hash).relative_to(run.root)),
        "identity": identity,
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **{k: v for k, v in fitted.metadata().items() if k != "fit_hash"},
    })


def load_fit(run: RunDir, fit_hash: str | None = None) -> FittedDsir:
    """The fit named `fit_hash`, or the newest fit of the run."""
    if fit_hash is None:
        pointer = latest_fit_pointer(run)
        if not pointer.is_file():
            raise FitError(f"{run.root} has no DSIR fit: run `thresher dsir fit` first")
        fit_hash = json.loads(pointer.read_text(encoding="utf-8"))["fit_hash"]
    path = fit_path(run, fit_hash)
    if not path.is_file():
        raise FitError(f"{run.root} has no DSIR fit {fit_hash} (looked for {path})")
    return FittedDsir.from_table(pq.read_table(path))


def fit_dsir(run: RunDir, config: DsirConfig) -> FittedDsir:
    """Count p_raw over the run (within the token budget) and p_target for every target."""
    if not run.data_parts():
        raise FitError(f"{run.root} has no documents or instructions: run `thresher ingest` first")
    featurizer = HashedNgramFeaturizer(ngrams=config.ngrams, num_buckets=config.num_buckets)
    raw = count_features(run_text_batches(run, config.fit_batch_rows), featurizer, config.raw_budget)
    targets = []
    for target in config.targets:
        texts = _TargetTexts(target, run, config.fit_batch_rows)
        counted = count_features(iter(texts), featurizer, target.max_tokens)
        targets.append(Counted(counted.counts, counted.docs, counted.features, counted.exhausted,
                               quarantined=texts.quarantined))
    release_memory()
    stats = {
        "config_hash": config.fit_config_hash(),
        "raw_budget": config.raw_budget,
        "raw": raw.stats(),
        "targets": {t.name: c.stats() for t, c in zip(config.targets, targets)},
    }
    return FittedDsir(
        ngrams=config.ngrams, num_buckets=config.num_buckets, targets=tuple(t.name for t in config.targets),
        raw_counts=raw.counts, target_counts=np.stack([c.counts for c in targets]),
        laplace=config.laplace, epsilon=config.epsilon, stats=stats,
    )


def _run_parquet_identity(run: RunDir) -> list[tuple[str, str]]:
    """What a query over `run`'s catalog can see, cheaply: every Parquet file outside dsir/ and
    the hidden work directories (scratch and checkpoints of unfinished stages, e.g. .dedup-work/,
    which no view reads), by its thresher cache key where it has one (content identity), else by
    size and mtime."""
    entries = []
    for path in sorted(run.root.rglob("*.parquet")):
        relative = path.relative_to(run.root)
        if relative.parts[0] == "dsir" or relative.parts[0].startswith(".") or ".tmp-" in path.name:
            continue
        key = read_cache_key(path)
        if key is None:
            stat = path.stat()
            key = f"{stat.st_size}:{stat.st_mtime_ns}"
        entries.append((str(relative), key))
    return entries


def fit_identity(run: RunDir, config: DsirConfig) -> str:
    """A cache key for `fit_dsir(run, config)`: the fit settings, the content identity of every
    shard of the run, and of every target's files (or its query and what its catalog can see)."""
    parts = [(table, shard_id, read_cache_key(path)) for table, shard_id, path in run.data_parts()]
    targets = []
    for target in config.targets:
        if target.sql:
            source = RunDir(target.catalog_run_dir) if target.catalog_run_dir else run
            targets.append({"sql": target.sql, "catalog": _run_parquet_identity(source)})
        else:
            targets.append({"files": [(s.fingerprint, s.format) for spec in target.inputs
                                      for s in discover_shards(spec)]})
    payload = {"fit": config.fit_params(), "parts": parts, "targets": targets}
    digest = hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()
    return f"dsir-fit:{config.fit_config_hash()}<-{digest}"
