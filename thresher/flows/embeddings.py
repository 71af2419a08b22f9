"""The embedding flows: embed -> semantic dedup -> judge distillation -> diversity selection, thin
tasks over the plain functions of `thresher.embeddings`.

- embed: one task per shard (`score_shard` into `scores/embed@1/`), cached under the
  shard's content + embed@1 + the parameters hash (model fingerprint included), result persisted
  in the run; a cached shard whose sidecar has gone is embedded again.
- semdedup: one task per data table, cached under a key over the settings, the seed and every
  embedding part it reads; its outputs are re-checked before a cached result is trusted.
- distill: the fit (not cached: seconds, deterministic, and its input is judge output that may
  change) then one scoring task per shard from the embedding sidecar, cached under the head hash
  and the embedding part's key.
- diversity: not cached (one pass over the candidates, deterministic given the seed).

Statistics go to run.json and to Prefect artifacts: embedding throughput, SemDeDup's
max-similarity histogram and largest groups, each selection's similarity histograms and report,
each distillation's agreement report.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.embeddings.config import (
    DistillConfig,
    DiversitySelection,
    EmbedConfig,
    EmbeddingsConfig,
    SemDedupConfig,
    recorded_embed_config,
)
from thresher.embeddings.distill import (
    DistilledScorer,
    distill,
    distilled_cache_key,
    score_shard_from_embeddings,
)
from thresher.embeddings.distill import markdown as distill_markdown
from thresher.embeddings.diversity import markdown as diversity_markdown
from thresher.embeddings.diversity import select_diverse
from thresher.embeddings.models import located, pick_backend, pick_device
from thresher.embeddings.scorer import EmbeddingScorer
from thresher.embeddings.semdedup import (
    SEMDEDUP_KEY,
    data_tables,
    group_summary,
    outputs_done,
    semdedup_cache_key,
    semdedup_table,
)
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached, sidecar_done
from thresher.flows.score import score_every_shard
from thresher.progress import stage_progress
from thresher.scorers.base import scorer_key
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@cached_task(name="semdedup-table", task_run_name="semdedup {table}")
def semdedup_task(run_root: str, config: SemDedupConfig, scorer: EmbeddingScorer, table: str, cache_key: str) -> dict:
    stats = semdedup_table(RunDir(run_root), config, scorer, table)
    if stats["cache_key"] != cache_key:
        raise RuntimeError(f"cache key drift in semdedup of {table}: {stats['cache_key']} != {cache_key}")
    return stats


@task(name="distill-fit", cache_policy=NO_CACHE, task_run_name="distill {config.target}")
def distill_task(run_root: str, config: DistillConfig, scorer: EmbeddingScorer) -> dict:
    return distill(RunDir(run_root), config, scorer)


@cached_task(name="distill-score-shard", task_run_name="distilled {table}/{shard_id}")
def distill_score_task(run_root: str, scorer: DistilledScorer, embed_scorer: EmbeddingScorer, table: str,
                       shard_id: str, cache_key: str) -> dict:
    return score_shard_from_embeddings(RunDir(run_root), scorer, embed_scorer, table, shard_id)


@task(name="diversity-select", cache_policy=NO_CACHE, task_run_name="select {selection.name}")
def diversity_task(run_root: str, scorer: EmbeddingScorer, selection: DiversitySelection) -> dict:
    return select_diverse(RunDir(run_root), scorer, selection)


# -- steps ------------------------------------------------------------------------------------------


def _embed(run: RunDir, config: EmbedConfig) -> dict:
    scorer = config.scorer()
    run.stage_started("embed", config=config.model_dump(mode="json"))
    stats = score_every_shard(run, [scorer], "embed", table=config.table)
    build_catalog(run)
    files = located(scorer.model, scorer.onnx_file, scorer.backend)
    device = pick_device(scorer.device)
    seconds = round(sum(s["seconds"] for s in stats), 3)
    embedded = sum(s["rows"] for s in stats if not s["skipped"])
    summary = {"scorer": scorer_key(scorer), "model": scorer.model,
               "backend": pick_backend(scorer.backend, files, device),
               "device": device, "dimension": scorer.dimension, "column": scorer.vector_column,
               "shards": len(stats), "shards_skipped": sum(s["skipped"] for s in stats),
               "rows": sum(s["rows"] for s in stats), "seconds": seconds,
               "rows_per_second": round(embedded / seconds, 1) if seconds else None}
    create_table_artifact([summary], key=artifact_key(run.root.name, "embed"),
                          description=f"Embeddings of {run.root.name}: rows, time, backend")
    run.stage_finished("embed", config=config.model_dump(mode="json"), summary=summary)
    return summary


def _semdedup(run: RunDir, config: SemDedupConfig, scorer: EmbeddingScorer, embedded_table: str | None
              ) -> dict[str, dict]:
    # the tables asked for, among those the embed step embedded
    tables = [t for t in data_tables(run, config) if embedded_table in (None, t)]
    if not tables:
        raise ValueError(f"semdedup of table {config.table!r}, but the embeddings cover only {embedded_table!r}")
    root = str(run.root)
    jobs = [Job((root, config, scorer, table), semdedup_cache_key(run, config, scorer, table)) for table in tables]
    results = dict(zip(tables, map_cached(run, semdedup_task, jobs, label="semdedup", one_at_a_time=True,
                                          done=lambda job, _result: outputs_done(run, job.args[3], job.cache_key))))
    build_catalog(run)
    _publish_semdedup(run, config, results)
    return results


def _distill(run: RunDir, configs: list[DistillConfig], scorer: EmbeddingScorer) -> list[dict]:
    out = []
    for config in configs:
        result = distill_task(str(run.root), config, scorer)
        scored = []
        if config.score_all:
            head = DistilledScorer(head=result["head_dir"])
            parts = [(t, shard) for t, shard, _ in run.data_parts() if config.table in (None, t)]
            jobs = [Job((str(run.root), head, scorer, t, shard), distilled_cache_key(run, head, scorer, shard))
                    for t, shard in parts]
            head_key = scorer_key(head)
            scored = map_cached(
                run, distill_score_task, jobs, label=f"distilled {head.head_name}",
                done=sidecar_done(run, head_key, shard_arg=4))
            result["scorer"] = head_key
            result["score_column"] = head.score_column
        result["scored_rows"] = sum(s["rows"] for s in scored)
        _publish_distill(run, result)
        out.append(result)
    build_catalog(run)
    return out


def _diversity(run: RunDir, selections: list[DiversitySelection], scorer: EmbeddingScorer) -> list[dict]:
    out = []
    for selection in selections:
        with stage_progress(f"diversity {selection.name}", 1) as bar:
            meta = diversity_task(str(run.root), scorer, selection)
            bar.advance(meta["selected_rows"])
        out.append(meta)
        create_markdown_artifact(diversity_markdown(meta), key=artifact_key(run.root.name, "diversity", meta["name"]),
                                 description=f"Diversity selection {meta['name']} ({meta['method']}) of "
                                 f"{run.root.name}: counts, similarity histograms, selected vs random")
    build_catalog(run)
    return out


def _publish_semdedup(run: RunDir, config: SemDedupConfig, results: dict[str, dict]) -> None:
    name = run.root.name
    lines = [f"# Semantic dedup of `{name}`", "",
             f"cosine threshold {config.threshold}, survivor: {config.survivor}"
             + (f" of `{config.survivor_column}`" if config.survivor_column else ""), "",
             "| table | rows | clusters | largest cluster | duplicate edges | groups | duplicates |",
             "|---|---|---|---|---|---|---|"]
    for table, s in results.items():
        lines.append(f"| {table} | {s['rows']:,} | {s['kmeans']['k']:,} | {s['kmeans']['largest_cluster']:,} | "
                     f"{s['pairs']['edges']:,} | {s['groups']['groups']:,} | {s['groups']['duplicates']:,} "
                     f"({s['duplicate_rate']:.2%}) |")
    for table, s in results.items():
        histogram = s["max_similarity_histogram"]
        total = sum(histogram.values()) or 1
        lines += ["", f"## `{table}`: each row's highest similarity to another row of its cluster", "",
                  "| similarity | rows | |", "|---|---|---|"]
        lines += [f"| {b} | {n:,} | {'█' * max(1, round(40 * n / total))} |" for b, n in histogram.items() if n]
    create_markdown_artifact("\n".join(lines) + "\n", key=artifact_key(name, "semdedup-summary"),
                             description="semantic duplicates: group members that are not survivors")
    groups = [{"table": t, **g} for t in results for g in group_summary(run, t)]
    if groups:
        create_table_artifact(groups, key=artifact_key(name, "semdedup-largest-groups"),
                              description=f"Largest semantic-duplicate groups of {name}")


def _publish_distill(run: RunDir, result: dict) -> None:
    name = run.root.name
    create_markdown_artifact(distill_markdown(result), key=artifact_key(name, "distill", result["name"]),
                             description=f"distillation of {result['target']}: held-out agreement with the judge")
    rows = [{"split": split, **{k: v for k, v in metrics.items()}} for split, metrics in result["metrics"].items()]
    create_table_artifact(rows, key=artifact_key(name, "distill", result["name"], "metrics"),
                          description=f"distilled_{result['name']}: agreement metrics per split")


# -- flows ------------------------------------------------------------------------------------------


@flow(name="thresher-embed", log_prints=True)
@writes_run("run_dir")
def embed_flow(run_dir: str, config: EmbedConfig = EmbedConfig()) -> dict:
    """Embed every shard (of `config.table`, or all) into scores/embed@1/."""
    run = RunDir(run_dir)
    return {"run_dir": str(run.root), "embed": _embed(run, config)}


@flow(name="thresher-semdedup", log_prints=True)
@writes_run("run_dir")
def semdedup_flow(run_dir: str, config: SemDedupConfig = SemDedupConfig(), embed: EmbedConfig | None = None) -> dict:
    """Semantic duplicates of every data table (the embeddings must exist: run embed_flow first)."""
    run = RunDir(run_dir)
    embed = embed or recorded_embed_config(run)
    scorer = embed.scorer()
    run.stage_started("semdedup", threshold=config.threshold, embeddings=scorer_key(scorer))
    results = _semdedup(run, config, scorer, embed.table)
    run.stage_finished("semdedup", sidecar=SEMDEDUP_KEY, tables={
        t: {"rows": s["rows"], "duplicates": s["groups"]["duplicates"], "groups": s["groups"]["groups"],
            "seed": s["seed"]} for t, s in results.items()})
    return {"run_dir": str(run.root), "semdedup": results}


@flow(name="thresher-distill", log_prints=True)
@writes_run("run_dir")
def distill_flow(run_dir: str, configs: list[DistillConfig], embed: EmbedConfig | None = None) -> dict:
    """Distil each judge score into a head on the embeddings, report agreement, score every row."""
    run = RunDir(run_dir)
    scorer = (embed or recorded_embed_config(run)).scorer()
    run.stage_started("distill", targets=[c.target for c in configs])
    results = _distill(run, configs, scorer)
    run.stage_finished("distill", heads={r["name"]: {"head_hash": r["head_hash"], "heldout": r["metrics"]["heldout"]}
                                         for r in results})
    return {"run_dir": str(run.root), "distill": results}


@flow(name="thresher-diversity", log_prints=True)
@writes_run("run_dir")
def diversity_flow(run_dir: str, selections: list[DiversitySelection], embed: EmbedConfig | None = None) -> dict:
    """Diversity selections (DEITA or k-center) into selections/<name>/."""
    run = RunDir(run_dir)
    scorer = (embed or recorded_embed_config(run)).scorer()
    run.stage_started("diversity", selections=[s.name for s in selections])
    results = _diversity(run, selections, scorer)
    run.stage_finished("diversity", selected={m["name"]: m["selected_rows"] for m in results})
    return {"run_dir": str(run.root), "diversity": results}


@flow(name="thresher-embeddings", log_prints=True)
@writes_run("run_dir")
def embeddings_flow(run_dir: str, config: EmbeddingsConfig = EmbeddingsConfig()) -> dict:
    """Embed, then semantic dedup, judge distillation and diversity selections as configured."""
    run = RunDir(run_dir)
    if not run.data_parts():
        raise ValueError(f"{run.root} has no documents or instructions: run `thresher ingest` first")
    scorer = config.embed.scorer()
    run.stage_started("embeddings", embeddings=scorer_key(scorer))
    out: dict = {"run_dir": str(run.root), "embed": _embed(run, config.embed)}
    if config.semdedup is not None:
        out["semdedup"] = _semdedup(run, config.semdedup, scorer, config.embed.table)
    if config.distill:
        out["distill"] = _distill(run, list(config.distill), scorer)
    if config.diversity:
        out["diversity"] = _diversity(run, list(config.diversity), scorer)
    run.stage_finished("embeddings", embeddings=scorer_key(scorer), steps=[k for k in out if k != "run_dir"])
    return out
