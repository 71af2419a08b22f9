"""The `perplexity` flow: KenLM and causal-LM perplexity over every shard, with histograms.

It reuses the score stage's machinery (`score_shard_task`, explicit cache keys of shard content +
scorer@version + parameters, which include the model files' fingerprints) and adds what a
perplexity stage needs beyond `thresher-score`:

- the scorers are built here (`kenlm`, `lm_perplexity`, or any registered scorer), and their models
  are located before any task starts, so a wrong path fails at once, and a GGUF model is converted
  once in the flow's process rather than in every worker;
- shards run one at a time by default (`ThreadPoolTaskRunner(max_workers=1)`): a torch model
  already uses every core, and KenLM scoring holds the GIL, so threads would only contend. For
  scale-out, run it with another task runner (`perplexity_flow.with_options(task_runner=...)`):
  each worker process loads each model once (the scorers' module-level caches);
- the distribution of each perplexity column is published as a Prefect markdown artifact
  (`<run>-perplexity-<scorer>`: percentiles and a log-scale histogram) and returned. It streams
  the sidecar parts a few times instead of holding the run's values (exact percentiles by radix
  selection, `thresher.perplexity.distribution`), so its memory does not grow with the run
  (`bench/perplexity_memory.py`). Being a pure function of the sidecars, it is recomputed, not
  cached: a run killed after scoring gets the same distribution on resume.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from thresher.config import ScorerSpec
from thresher.flows.artifacts import artifact_key, publish_score, score_summary
from thresher.flows.locking import writes_run
from thresher.flows.score import score_every_shard
from thresher.perplexity.config import PerplexityConfig
from thresher.perplexity.distribution import histogram_markdown, perplexity_distribution
from thresher.scorers.base import scorer_key
from thresher.scorers.registry import build_scorer
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


@flow(name="thresher-perplexity", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
@writes_run("run_dir")
def perplexity_flow(run_dir: str, scorers: list[ScorerSpec] | PerplexityConfig) -> dict:
    """Score every documents/instructions shard of `run_dir` with each perplexity scorer (a list of
    specs, or a PerplexityConfig that also sets the reported percentiles and histogram)."""
    if not scorers:
        raise ValueError("no perplexity scorer given: name kenlm (with a model) and/or lm_perplexity")
    config = scorers if isinstance(scorers, PerplexityConfig) else PerplexityConfig(scorers=scorers)
    scorers = config.scorers
    run = RunDir(run_dir)
    parts = run.data_parts()
    if not parts:
        raise ValueError(f"{run.root} has no documents or instructions to score: run `thresher ingest` first")
    built = [build_scorer(spec.name, spec.params) for spec in scorers]
    run.stage_started("perplexity", scorers=[scorer_key(s) for s in built])
    summary = score_summary(score_every_shard(run, built, "perplexity"))
    distributions = []
    for scorer in built:
        if scorer.perplexity_column is not None:
            dist = perplexity_distribution(run, scorer_key(scorer), scorer.perplexity_column, config)
            distributions.append(dist)
            create_markdown_artifact(
                histogram_markdown(run.root.name, dist),
                key=artifact_key(run.root.name, "perplexity", scorer.name),
                description=f"{scorer_key(scorer)}: percentiles and histogram of {dist['column']}",
            )
    build_catalog(run)
    publish_score(run.root.name, summary)
    run.stage_finished("perplexity", summary=summary)
    return {"run_dir": str(run.root), "scorers": summary, "distributions": distributions}
