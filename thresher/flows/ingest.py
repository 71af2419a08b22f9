"""The `ingest` flow: read every input shard into the run directory."""

from __future__ import annotations

from prefect import flow

from thresher.config import IngestConfig, InputSpec
from thresher.flows.artifacts import ingest_summary, publish_ingest
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, map_cached
from thresher.flows.tasks import ingest_shard_task
from thresher.storage.catalog import build_catalog
from thresher.storage.formats import expand_inputs, file_fingerprint
from thresher.storage.ingest import finished_stats, ingest_cache_key, needs_retry, retire_superseded
from thresher.storage.parquet_io import write_json_atomic
from thresher.storage.readers import InputError, Shard, discover_shards
from thresher.storage.run_dir import RunDir

# The run's list of input files that directories and globs held but ingest did not read. A JSON file
# beside run.json rather than a list inside it: run.json is rewritten by every stage, and a directory
# with thousands of stray files must not bloat it; run.json's ingest entry keeps the counts.
SKIPPED_INPUTS_FILE = "skipped_inputs.json"
SAME_CONTENT = "same content as another input (read once)"


def plan_shards(inputs: list[InputSpec]) -> list[tuple[InputSpec, Shard]]:
    """Every shard of every input once, in a deterministic order."""
    seen: set[str] = set()
    planned = []
    for spec in inputs:
        for shard in discover_shards(spec):
            if shard.shard_id not in seen:
                seen.add(shard.shard_id)
                planned.append((spec, shard))
    return planned


def skipped_inputs(inputs: list[InputSpec], planned: list[tuple[InputSpec, Shard]]) -> list[dict]:
    """Every file the inputs' directories and globs held that no shard reads, with why, sorted by
    path: hidden or of an unknown kind (as expansion found them), or a copy of a file that is read
    (`same_as` names it)."""
    read = {shard.path for _spec, shard in planned}
    first_by_fingerprint = {shard.fingerprint: shard.path for _spec, shard in planned}
    skipped: dict[str, dict] = {}
    for spec in inputs:
        paths, passed_over = expand_inputs(spec)
        skipped.update({entry.path: {"path": entry.path, "reason": entry.reason} for entry in passed_over})
        for path in paths:
            if path in read or path in skipped:
                continue
            # Planning kept one shard per content; only a copy of one that is read gets here.
            try:
                same_as = first_by_fingerprint.get(file_fingerprint(path))
            except OSError:
                same_as = None
            skipped[path] = {"path": path, "reason": SAME_CONTENT, "same_as": same_as}
    return [skipped[path] for path in sorted(skipped) if path not in read]


def record_skipped_inputs(run: RunDir, skipped: list[dict]) -> dict:
    """Write the run's skipped_inputs.json and return the counts that go into run.json."""
    write_json_atomic(run.root / SKIPPED_INPUTS_FILE, skipped)
    reasons: dict[str, int] = {}
    for entry in skipped:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    return {"files_skipped": len(skipped), "skipped_reasons": dict(sorted(reasons.items()))}


def quarantined_files(stats: list[dict]) -> list[dict]:
    """The shards that could not be read at all: source, reason and size on disk."""
    return [{"source": s["source"], "reason": s["file_quarantined"], "bytes": s["bytes_in"]}
            for s in stats if s.get("file_quarantined")]


def mostly_quarantined(stats: list[dict], share: float) -> list[dict]:
    """Readable shards that quarantined more than `share` of their rows (unreadable files are reported
    on their own)."""
    return [{"source": s["source"], "rows_in": s["rows_in"], "rows_quarantined": s["rows_quarantined"]}
            for s in stats
            if not s.get("file_quarantined") and s["rows_in"] and s["rows_quarantined"] / s["rows_in"] > share]


@flow(name="thresher-ingest", log_prints=True)
@writes_run("run_dir")
def ingest_flow(run_dir: str, inputs: list[InputSpec], ingest: IngestConfig = IngestConfig(), seed: int = 0) -> dict:
    """Stream the inputs into `run_dir`: documents/instructions, quarantine, per-shard stats.

    A file that cannot be read is quarantined and the run goes on; only when no input file at all
    could be read does the flow stop, with InputError, after the quarantine is in the catalog."""
    run = RunDir(run_dir)
    if not run.exists():
        run.init(seed=seed)
    planned = plan_shards(inputs)
    run.stage_started("ingest")
    skipped = skipped_inputs(inputs, planned)
    skipped_counts = record_skipped_inputs(run, skipped)
    retire_superseded(run, [shard for _spec, shard in planned])
    jobs = [Job((str(run.root), shard, spec, ingest), ingest_cache_key(shard, spec, ingest)) for spec, shard in planned]

    def done(job: Job, result: dict) -> bool:
        # A stored whole-file failure that may have passed (permission, vanished) is tried again.
        return not needs_retry(result) and finished_stats(run, job.args[1], job.cache_key) is not None

    ordered = map_cached(run, ingest_shard_task, jobs, label="ingest", rows=lambda r: r["rows_in"], done=done)
    bad_files = quarantined_files(ordered)
    summary = {**ingest_summary(ordered), "files_quarantined": len(bad_files), "quarantined_files": bad_files,
               **skipped_counts, "skipped_inputs": skipped}
    build_catalog(run)
    publish_ingest(run.root.name, ordered, summary)
    if planned and len(bad_files) == len(planned):
        listing = "; ".join(f"{f['source']} ({f['reason']})" for f in bad_files[:5])
        more = f" and {len(bad_files) - 5} more" if len(bad_files) > 5 else ""
        raise InputError(f"no readable input: all {len(bad_files)} input files were quarantined: {listing}{more} "
                         f"(see the quarantine table of {run.root})")
    if bad_files:
        print(f"{len(bad_files)} input file(s) quarantined as unreadable: "
              + "; ".join(f"{f['source']} ({f['reason']})" for f in bad_files))
    heavy = mostly_quarantined(ordered, ingest.max_quarantine_share)
    summary["files_over_quarantine_share"] = heavy
    for entry in heavy:
        print(f"warning: {entry['source']}: {entry['rows_quarantined']:,} of {entry['rows_in']:,} rows quarantined "
              f"(more than {ingest.max_quarantine_share:.0%}; see the quarantine table)")
    if ingest.strict and (heavy or bad_files):
        raise InputError(f"strict ingest: {len(bad_files)} unreadable file(s) and {len(heavy)} file(s) with more than "
                         f"{ingest.max_quarantine_share:.0%} of their rows quarantined (see the quarantine table of "
                         f"{run.root})")
    kept_out = ("seconds", "quarantined_files", "skipped_inputs")  # lists that live elsewhere in the run
    run.stage_finished("ingest", **{k: v for k, v in summary.items() if k not in kept_out})
    return {"run_dir": str(run.root), **summary, "shards_detail": ordered}
