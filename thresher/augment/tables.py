"""Where the augment stage writes, and the explicit Arrow schema of every table it writes.

The augmented run is a thresher run directory of its own (default `<source>/augment/<name>/`):

    run.json                                     the AugmentConfig, the source run, stage status
    instructions/part-r<round>.parquet           surviving evolved pairs (INSTRUCTION_SCHEMA; lineage
                                                 in meta_json under "augment")
    augment/seeds/part-seeds.parquet             the seed instructions taken from the source run
    augment/attempts/part-r<round>-b<batch>.parquet   every attempt: lineage, operation, models, prompt
                                                 versions, verdicts, response, elimination reason
    augment/lineage/part-r<round>.parquet        one row per surviving pair: doc_id -> parent, root, ...
    stats/augment/round-<round>.json             per-round counts; marks the round finished

so judge_flow, dedup_flow(prior_runs=[source]) and select_flow run over it unchanged, and the
catalog (with "augment" among its stage directories) shows `augment_seeds`, `augment_attempts` and
`augment_lineage` views. Every attempt part carries its content key in the Parquet metadata: a part
whose key matches is a finished checkpoint and is never generated again.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from thresher.storage.run_dir import RunDir

STAGE = "augment"
# Bump when the rows the stage writes for the same inputs and settings change; part of every key.
AUGMENT_VERSION = "1"

SEED_SCHEMA = pa.schema([
    pa.field("root_id", pa.string(), nullable=False),  # the source row's doc_id
    pa.field("instruction", pa.large_string(), nullable=False),
    pa.field("input", pa.large_string(), nullable=False),
    pa.field("output", pa.large_string(), nullable=False),
    pa.field("source_run", pa.string(), nullable=False),
    pa.field("selection", pa.string()),
], metadata={"thresher.table": "augment_seeds"})

ATTEMPT_SCHEMA = pa.schema([
    pa.field("attempt_id", pa.string(), nullable=False),  # = doc_id of the evolved pair if it survives
    pa.field("root_id", pa.string(), nullable=False),
    pa.field("parent_id", pa.string(), nullable=False),  # root_id, or the attempt_id of an earlier survivor
    pa.field("round", pa.int32(), nullable=False),
    pa.field("batch", pa.int32(), nullable=False),
    pa.field("depth", pa.int32(), nullable=False),  # evolutions from the seed to this attempt's instruction
    pa.field("operation", pa.string(), nullable=False),
    pa.field("operation_detail", pa.string()),  # complicate_input: the input format asked for
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("parent_instruction", pa.large_string(), nullable=False),
    pa.field("parent_truncated", pa.bool_(), nullable=False),
    pa.field("evolved_instruction", pa.large_string(), nullable=False),
    pa.field("evolve_finish_reason", pa.string()),
    pa.field("model", pa.string(), nullable=False),  # the evolving model's identity
    pa.field("evolve_prompt_version", pa.int32(), nullable=False),
    pa.field("equality_method", pa.string()),  # identical | logprobs | generate | null (not judged)
    pa.field("p_equal", pa.float64()),
    pa.field("equality_raw", pa.string()),
    pa.field("equality_model", pa.string()),
    pa.field("equality_prompt_version", pa.int32(), nullable=False),
    pa.field("response", pa.large_string()),  # null: eliminated before a response was generated
    pa.field("response_finish_reason", pa.string()),
    pa.field("responder_model", pa.string()),
    pa.field("respond_prompt_version", pa.int32(), nullable=False),
    pa.field("survived", pa.bool_(), nullable=False),
    pa.field("elimination_reason", pa.string()),  # null for survivors, else one of ELIMINATION_REASONS
    pa.field("elimination_detail", pa.string()),
], metadata={"thresher.table": "augment_attempts"})

LINEAGE_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("parent_id", pa.string(), nullable=False),
    pa.field("root_id", pa.string(), nullable=False),
    pa.field("round", pa.int32(), nullable=False),
    pa.field("depth", pa.int32(), nullable=False),
    pa.field("operation", pa.string(), nullable=False),
    pa.field("operation_detail", pa.string()),
    pa.field("model", pa.string(), nullable=False),
    pa.field("responder_model", pa.string(), nullable=False),
    pa.field("evolve_prompt_version", pa.int32(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("augmentation", pa.string(), nullable=False),
    pa.field("source_run", pa.string(), nullable=False),
], metadata={"thresher.table": "augment_lineage"})


def default_output_run(source: RunDir, name: str) -> Path:
    return source.root / "augment" / name


def seeds_path(run: RunDir) -> Path:
    return run.root / STAGE / "seeds" / "part-seeds.parquet"


def attempts_dir(run: RunDir) -> Path:
    return run.root / STAGE / "attempts"


def attempt_part(run: RunDir, round_: int, batch: int) -> Path:
    return attempts_dir(run) / f"part-r{round_:02d}-b{batch:05d}.parquet"


def round_shard(round_: int) -> str:
    return f"r{round_:02d}"


def lineage_part(run: RunDir, round_: int) -> Path:
    return run.root / STAGE / "lineage" / f"part-{round_shard(round_)}.parquet"


def round_stats_path(run: RunDir, round_: int) -> Path:
    return run.stats_path(STAGE, f"round-{round_:02d}")


def parse_attempt_part(path: Path) -> tuple[int, int] | None:
    """(round, batch) of an attempt part's file name, or None."""
    name = path.name
    if not (name.startswith("part-r") and name.endswith(".parquet") and "-b" in name):
        return None
    r, _, b = name[len("part-r"): -len(".parquet")].partition("-b")
    return (int(r), int(b)) if r.isdigit() and b.isdigit() else None
