"""The augment stage over run directories: seeds from a source run, N resumable rounds, and the
augmented run's tables (see `thresher.augment.tables` for the layout).

    prepare_augment(source, config)   create the augmented run, write its seeds; returns it
    run_round(out, config, r)         evolve the round-r pool, batch by batch, checkpointed
    finish_augment(out, config)       drop tables of rounds beyond config.rounds, mark the stage done
    augment(source, config)           all of the above (what the flow does, without Prefect)

The pool of round r is rebuilt from disk (the seeds, then every earlier round's survivors), so each
round can run in its own task or process. Within a round, attempts are sorted by root_id and cut
into batches of `batch_size`; a batch's key hashes the evolver's settings and its attempts (ids and
parent texts). A batch whose part already carries its key is read back, never generated again: a
run killed mid-round resumes at the first unfinished batch, and rows come out as an uninterrupted
run would write them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.augment.config import AugmentConfig
from thresher.augment.eliminate import ELIMINATION_REASONS
from thresher.augment.evolve import Attempt, Evolver, combine_instruction
from thresher.augment.operations import choose_operation
from thresher.augment.tables import (
    ATTEMPT_SCHEMA,
    LINEAGE_SCHEMA,
    SEED_SCHEMA,
    STAGE,
    attempt_part,
    attempts_dir,
    default_output_run,
    lineage_part,
    parse_attempt_part,
    round_shard,
    round_stats_path,
    seeds_path,
)
from thresher.augment.templates import OPERATIONS
from thresher.schema import INSTRUCTION_SCHEMA
from thresher.storage.parquet_io import read_cache_key, write_json_atomic, write_table_atomic
from thresher.storage.run_dir import RunDir

# on_batch(round, batch index, number of batches, rows, reused)
BatchCallback = Callable[[int, int, int, int, bool], None]


def _digest(payload: object, size: int = 16) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True, default=str).encode(), digest_size=size).hexdigest()


def _sample_rank(doc_id: str, seed: int) -> bytes:
    return hashlib.blake2b(doc_id.encode(), digest_size=8, key=seed.to_bytes(8, "little")).digest()


# -- seeds -------------------------------------------------------------------------------------


def read_seeds(source: RunDir, config: AugmentConfig) -> pa.Table:
    """The seed instructions: the source run's instructions (or those of `config.selection`), at
    most `config.sample` of them chosen by a seeded hash of doc_id, sorted by doc_id."""
    import pyarrow.dataset as ds

    if not source.exists():
        raise FileNotFoundError(f"{source.root} is not a thresher run directory (no run.json)")
    parts = sorted(source.table_dir("instructions").glob("part-*.parquet"))
    if not parts:
        raise ValueError(f"{source.root} has no instructions to evolve: ingest an instruction set first")
    dataset = ds.dataset([str(p) for p in parts], format="parquet")
    ids = dataset.to_table(columns=["doc_id"]).column("doc_id").to_pylist()
    if config.selection:
        folder = source.root / "selections" / config.selection
        if not (folder / "selected.parquet").is_file():
            raise FileNotFoundError(f"{source.root} has no selection {config.selection!r} ({folder}/selected.parquet)")
        meta = folder / "selection.json"
        if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("table") != "instructions":
            raise ValueError(f"selection {config.selection!r} of {source.root} selects documents, not instructions")
        chosen = set(pq.read_table(folder / "selected.parquet", columns=["doc_id"]).column("doc_id").to_pylist())
        ids = [i for i in ids if i in chosen]
    ids = sorted(set(ids))
    if config.sample is not None and len(ids) > config.sample:
        ids = sorted(sorted(ids, key=lambda d: _sample_rank(d, config.seed))[: config.sample])
    table = dataset.to_table(columns=["doc_id", "instruction", "input", "output"],
                             filter=pc.field("doc_id").isin(pa.array(ids, pa.string())))
    rows = {}
    for row in table.to_pylist():
        if row["instruction"].strip():
            rows.setdefault(row["doc_id"], row)
    ordered = [rows[i] for i in sorted(rows)]
    return pa.table({
        "root_id": [r["doc_id"] for r in ordered],
        "instruction": [r["instruction"] for r in ordered],
        "input": [r["input"] or "" for r in ordered],
        "output": [r["output"] for r in ordered],
        "source_run": [str(source.root)] * len(ordered),
        "selection": [config.selection] * len(ordered),
    }, schema=SEED_SCHEMA)


def output_run_for(source_run: str | Path, config: AugmentConfig, output_run: str | Path | None = None) -> RunDir:
    target = output_run or config.output_run
    return RunDir(target) if target else RunDir(default_output_run(RunDir(source_run), config.name))


def prepare_augment(source_run: str | Path, config: AugmentConfig,
                    output_run: str | Path | None = None) -> tuple[RunDir, int]:
    """Create (or reopen) the augmented run and write its seeds; returns (run, number of seeds)."""
    source = RunDir(source_run)
    seeds = read_seeds(source, config)
    if seeds.num_rows == 0:
        raise ValueError(f"no seed instructions in {source.root}"
                         + (f" selection {config.selection!r}" if config.selection else ""))
    out = output_run_for(source.root, config, output_run)
    if out.root == source.root:
        raise ValueError("the augmented run must be another directory than its source run")
    recipe = {"augment": config.model_dump(mode="json"), "source_run": str(source.root)}
    out.init(seed=config.seed, recipe=recipe, recipe_hash=config.content_hash())
    key = f"seeds:{_digest([str(source.root), seeds.column('root_id').to_pylist()])}"
    if read_cache_key(seeds_path(out)) != key:
        write_table_atomic(seeds_path(out), seeds.to_batches(), SEED_SCHEMA, key)
    out.stage_started(STAGE, source_run=str(source.root), name=config.name, rounds=config.rounds,
                      seeds=seeds.num_rows)
    return out, seeds.num_rows


# -- the pool and the plan of a round ------------------------------------------------------------


@dataclass(frozen=True)
class PoolEntry:
    node_id: str  # root_id for a seed, else the attempt_id of the survivor that replaced it
    instruction: str
    depth: int


def _read_round_parts(out: RunDir, round_: int) -> pa.Table:
    """The attempts of a finished round, from the parts its stats name (each checked by key)."""
    stats_file = round_stats_path(out, round_)
    if not stats_file.is_file():
        raise RuntimeError(f"round {round_} of {out.root} is not finished: run the rounds in order")
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    tables = []
    for name, key in stats["parts"]:
        path = attempts_dir(out) / name
        if read_cache_key(path) != key:
            raise RuntimeError(f"{path} is missing or stale: run round {round_} again")
        tables.append(pq.read_table(path).replace_schema_metadata(None))
    return pa.concat_tables(tables) if tables else ATTEMPT_SCHEMA.empty_table().replace_schema_metadata(None)


def load_pool(out: RunDir, round_: int) -> dict[str, PoolEntry]:
    """root_id -> the instruction round `round_` evolves: the seed, or its latest surviving evolution."""
    seeds = pq.read_table(seeds_path(out))
    pool = {r["root_id"]: PoolEntry(r["root_id"], combine_instruction(r["instruction"], r["input"]), 0)
            for r in seeds.to_pylist()}
    for earlier in range(1, round_):
        for row in _read_round_parts(out, earlier).filter(pc.field("survived")).to_pylist():
            pool[row["root_id"]] = PoolEntry(row["attempt_id"], row["evolved_instruction"], row["depth"])
    return pool


def plan_round(evolver: Evolver, pool: dict[str, PoolEntry], round_: int) -> list[Attempt]:
    """One attempt per pool instruction, sorted by root_id, each with its seeded operation."""
    config, template = evolver.config, evolver.evolve_template
    formats = template.formats("complicate_input")
    attempts = []
    for root_id in sorted(pool):
        entry = pool[root_id]
        operation, detail = choose_operation(config.seed, root_id, round_, config.operations, formats)
        attempts.append(Attempt(
            attempt_id=evolver.attempt_id(root_id, entry.node_id, round_, operation, detail),
            root_id=root_id, parent_id=entry.node_id, round=round_, depth=entry.depth + 1,
            operation=operation, operation_detail=detail, parent_instruction=entry.instruction))
    return attempts


def batch_key(evolver: Evolver, attempts: list[Attempt]) -> str:
    content = [(a.attempt_id, _digest(a.parent_instruction, 8)) for a in attempts]
    return f"{STAGE}@{evolver.settings_hash()}:{_digest(content)}"


# -- a round -----------------------------------------------------------------------------------


def _rows_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ATTEMPT_SCHEMA)


def run_round(out: RunDir, config: AugmentConfig, round_: int, *, evolver: Evolver | None = None,
              on_batch: BatchCallback | None = None) -> dict:
    """Evolve round `round_`'s pool (see the module doc); returns the round's statistics, also
    written to stats/augment/round-<r>.json (which marks the round finished)."""
    evolver = evolver or Evolver(config)
    started = time.perf_counter()
    attempts = plan_round(evolver, load_pool(out, round_), round_)
    batches = [attempts[i: i + config.batch_size] for i in range(0, len(attempts), config.batch_size)]
    calls: Counter = Counter()
    parts: list[tuple[str, str]] = []
    tables: list[pa.Table] = []
    reused = 0
    for index, batch in enumerate(batches):
        key = batch_key(evolver, batch)
        path = attempt_part(out, round_, index)
        was_reused = read_cache_key(path) == key
        if was_reused:
            table = pq.read_table(path).replace_schema_metadata(None)
            reused += 1
        else:
            table = _rows_table(evolver.process(batch, batch=index, stats=calls))
            write_table_atomic(path, table.to_batches(), ATTEMPT_SCHEMA, key)
        parts.append((path.name, key))
        tables.append(table)
        if on_batch:
            on_batch(round_, index, len(batches), len(batch), was_reused)
    for stale in attempts_dir(out).glob(f"part-r{round_:02d}-b*.parquet"):
        parsed = parse_attempt_part(stale)
        if parsed and parsed[1] >= len(batches):
            stale.unlink(missing_ok=True)
    rows = pa.concat_tables(tables) if tables else ATTEMPT_SCHEMA.empty_table()
    # The round's tables also record the source run (lineage), so it is part of their key.
    source_run = out.read_manifest()["recipe"]["source_run"]
    round_key = f"{STAGE}@{evolver.settings_hash()}:{_digest([source_run, [k for _, k in parts]])}"
    survivors = rows.filter(pc.field("survived")).to_pylist()
    _write_round_outputs(out, config, round_, survivors, round_key)
    seconds = time.perf_counter() - started
    stats = round_statistics(round_, rows.to_pylist())
    stats.update({
        "batches": len(batches), "batches_reused": reused,
        "attempts_generated": calls["generated_attempts"], "judge_rows": calls["judge_rows"],
        "respond_rows": calls["respond_rows"], "evolve_tokens": calls["evolve_tokens"],
        "model_seconds": {k: round(calls[f"{k}_milliseconds"] / 1000, 3) for k in ("evolve", "judge", "respond")},
        "seconds": round(seconds, 3),
        "attempts_per_second": (round(calls["generated_attempts"] / (calls["milliseconds"] / 1000), 4)
                                if calls["milliseconds"] else None),
        "parts": parts, "cache_key": round_key,
    })
    write_json_atomic(round_stats_path(out, round_), stats)
    return stats


def round_statistics(round_: int, rows: list[dict]) -> dict:
    """Attempts, survivors and elimination reasons of one round, overall and by operation."""
    by_operation = {op: {"attempts": 0, "survived": 0, **{r: 0 for r in ELIMINATION_REASONS}} for op in OPERATIONS}
    reasons = Counter()
    for row in rows:
        entry = by_operation[row["operation"]]
        entry["attempts"] += 1
        if row["survived"]:
            entry["survived"] += 1
        else:
            entry[row["elimination_reason"]] += 1
            reasons[row["elimination_reason"]] += 1
    for entry in by_operation.values():
        entry["survival_rate"] = round(entry["survived"] / entry["attempts"], 4) if entry["attempts"] else None
    survived = sum(1 for r in rows if r["survived"])
    return {
        "round": round_, "attempts": len(rows), "survived": survived,
        "survival_rate": round(survived / len(rows), 4) if rows else None,
        "eliminated": {r: reasons.get(r, 0) for r in ELIMINATION_REASONS},
        "by_operation": {op: e for op, e in by_operation.items() if e["attempts"]},
    }


def _meta(config: AugmentConfig, row: dict, source_run: str) -> dict:
    return {
        "name": config.name, "parent_id": row["parent_id"], "root_id": row["root_id"], "round": row["round"],
        "depth": row["depth"], "operation": row["operation"], "operation_detail": row["operation_detail"],
        "model": row["model"], "responder_model": row["responder_model"],
        "evolve_prompt_version": row["evolve_prompt_version"],
        "equality_prompt_version": row["equality_prompt_version"],
        "respond_prompt_version": row["respond_prompt_version"], "seed": row["seed"], "source_run": source_run,
    }


def _write_round_outputs(out: RunDir, config: AugmentConfig, round_: int, survivors: list[dict], key: str) -> None:
    """instructions/part-r<r>.parquet and augment/lineage/part-r<r>.parquet for the round's survivors."""
    shard = round_shard(round_)
    data_path, lineage_path = out.table_part("instructions", shard), lineage_part(out, round_)
    if not survivors:
        data_path.unlink(missing_ok=True)
        lineage_path.unlink(missing_ok=True)
        return
    if read_cache_key(data_path) == key and read_cache_key(lineage_path) == key:
        return
    source_run = out.read_manifest()["recipe"]["source_run"]
    survivors = sorted(survivors, key=lambda r: r["root_id"])
    instruction = [r["evolved_instruction"] for r in survivors]
    output = [r["response"] for r in survivors]
    data = pa.table({
        "doc_id": [r["attempt_id"] for r in survivors],
        "text": [f"{i}\n\n{o}" for i, o in zip(instruction, output)],
        "source": [f"augment/{config.name}"] * len(survivors),
        "source_row": list(range(len(survivors))),
        "instruction": instruction,
        "input": [""] * len(survivors),
        "output": output,
        "conversation": [None] * len(survivors),
        "meta_json": [json.dumps({"augment": _meta(config, r, source_run)}, sort_keys=True) for r in survivors],
    }, schema=INSTRUCTION_SCHEMA)
    lineage = pa.table({
        "doc_id": [r["attempt_id"] for r in survivors],
        **{c: [r[c] for r in survivors] for c in ("parent_id", "root_id", "round", "depth", "operation",
                                                  "operation_detail", "model", "responder_model",
                                                  "evolve_prompt_version", "seed")},
        "augmentation": [config.name] * len(survivors),
        "source_run": [source_run] * len(survivors),
    }, schema=LINEAGE_SCHEMA)
    write_table_atomic(data_path, data.to_batches(), INSTRUCTION_SCHEMA, key)
    write_table_atomic(lineage_path, lineage.to_batches(), LINEAGE_SCHEMA, key)


# -- the whole stage ----------------------------------------------------------------------------


def finish_augment(out: RunDir, config: AugmentConfig, rounds: list[dict]) -> dict:
    """Remove every table of rounds beyond `config.rounds` (left by an earlier, longer run), record
    the summary in run.json; returns it."""
    for path in attempts_dir(out).glob("part-r*-b*.parquet"):
        parsed = parse_attempt_part(path)
        if parsed and parsed[0] > config.rounds:
            path.unlink(missing_ok=True)
    for folder, prefix in ((out.table_dir("instructions"), "part-r"), (lineage_part(out, 1).parent, "part-r"),
                           (round_stats_path(out, 1).parent, "round-")):
        for path in folder.glob(f"{prefix}*"):
            digits = "".join(ch for ch in path.stem[len(prefix):] if ch.isdigit())
            if digits and int(digits) > config.rounds:
                path.unlink(missing_ok=True)
    summary = augment_summary(rounds)
    out.stage_finished(STAGE, summary=summary)
    return summary


def augment_summary(rounds: list[dict]) -> dict:
    attempts = sum(r["attempts"] for r in rounds)
    survived = sum(r["survived"] for r in rounds)
    generated = sum(r["attempts_generated"] for r in rounds)
    return {
        "rounds": len(rounds), "attempts": attempts, "survived": survived,
        "survival_rate": round(survived / attempts, 4) if attempts else None,
        "eliminated": {reason: sum(r["eliminated"][reason] for r in rounds) for reason in ELIMINATION_REASONS},
        "attempts_generated": generated,
        "batches_reused": sum(r["batches_reused"] for r in rounds),
        "seconds": round(sum(r["seconds"] for r in rounds), 3),
    }


def augment(source_run: str | Path, config: AugmentConfig, output_run: str | Path | None = None, *,
            on_batch: BatchCallback | None = None) -> dict:
    """Evol-Instruct from `source_run` into the augmented run, all rounds, resumable."""
    out, seeds = prepare_augment(source_run, config, output_run)
    evolver = Evolver(config)
    rounds = [run_round(out, config, r, evolver=evolver, on_batch=on_batch) for r in range(1, config.rounds + 1)]
    summary = finish_augment(out, config, rounds)
    return {"output_run": str(out.root), "source_run": str(RunDir(source_run).root), "seeds": seeds,
            **summary, "round_stats": rounds}
