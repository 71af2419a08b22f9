"""The eval flow (train-and-compare): plan, then one training task per arm and seed, then the report;
thin tasks over `thresher.eval`.

- plan: one task (not cached: it reads the selections as they are now, and writes token files
  whose hashes key the trainings).
- train: one task per (arm, seed), one at a time (each uses every core torch is given), cached under
  the arm's token hash + model + budget + eval sets + seed: a re-run skips finished models and a
  killed one resumes from its last checkpoint.
- report: the tables, the plot, the catalog views (eval_results, eval_summary, eval_curves) and
  Prefect artifacts.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from thresher.eval.config import EvalConfig, unique_evals
from thresher.eval.data import arm_path, eval_root, eval_set_path, load_tokens
from thresher.eval.plan import job_cache_key, load_probes, plan_eval, tokenizer_path
from thresher.eval.report import markdown, write_report
from thresher.eval.tokens import load_tokenizer
from thresher.eval.train import TrainJob, finished, resolve_device, train_arm
from thresher.flows.artifacts import artifact_key
from thresher.flows.locking import writes_run
from thresher.flows.mapping import Job, cached_task, map_cached
from thresher.storage.catalog import build_catalog
from thresher.storage.run_dir import RunDir


def model_dir(run: RunDir, name: str, arm: str, seed: int):
    return eval_root(run, name) / "models" / arm / f"seed-{seed}"


@task(name="eval-plan", cache_policy=NO_CACHE, task_run_name="plan {config.name}")
def plan_task(run_root: str, config: EvalConfig) -> dict:
    return plan_eval(RunDir(run_root), config)


@cached_task(name="eval-train", task_run_name="train {arm} seed {seed}")
def train_task(run_root: str, config: EvalConfig, arm: str, seed: int, cache_key: str) -> dict:
    run = RunDir(run_root)
    eval_sets = {s.name: load_tokens(eval_set_path(run, config.name, s.name)) for s in config.eval_sets}
    probes = {p.name: load_probes(p) for p in config.probes}
    job = TrainJob(arm, seed, arm_path(run, config.name, arm, seed), model_dir(run, config.name, arm, seed))
    tokenizer = load_tokenizer(config.tokenizer, tokenizer_path(run, config.name))
    return train_arm(job, config, tokenizer, eval_sets, probes, cache_key)


def _publish(run: RunDir, report: dict) -> None:
    create_markdown_artifact(markdown(report), key=artifact_key(run.root.name, "eval", report["name"]),
                             description=f"eval {report['name']}: selections against random")
    create_table_artifact([{k: row[k] for k in ("selection", "measure", "mean", "std", "random_mean", "gain",
                                                "gain_pct", "seeds_better", "verdict")} for row in report["summary"]],
                          key=artifact_key(run.root.name, "eval", report["name"], "summary"),
                          description=f"eval {report['name']}: gain over random per selection and measure")


def evaluate(run: RunDir, config: EvalConfig) -> dict:
    plan = plan_task(str(run.root), config)
    device = resolve_device(config.device)
    jobs = [Job((str(run.root), config, arm, seed), job_cache_key(config, plan, arm, seed, device))
            for seed in config.seeds for arm in config.arms]
    metrics = map_cached(
        run, train_task, jobs, label=f"eval {config.name}: train", unit="tokens seen",
        rows=lambda result: result["tokens_seen"], jobs_unit="models", one_at_a_time=True,
        done=lambda job, _result: finished(model_dir(run, config.name, job.args[2], job.args[3]),
                                           job.cache_key) is not None)
    report = write_report(run, config, plan, metrics)
    _publish(run, report)
    return report


@flow(name="thresher-eval", log_prints=True)
@writes_run("run_dir")
def eval_flow(run_dir: str, configs: list[EvalConfig]) -> dict:
    """Train the same small LM on each selection and on random data of the same size, over seeds, and
    report the held-out loss of each against random."""
    run = RunDir(run_dir)
    if not run.data_parts():
        raise ValueError(f"{run.root} has no documents or instructions: run `thresher ingest` first")
    configs = unique_evals(list(configs))
    run.stage_started("eval", evals=[c.name for c in configs])
    reports = []
    for config in configs:
        reports.append(evaluate(run, config))
        build_catalog(run)
    run.stage_finished("eval", evals={r["name"]: [{k: row[k] for k in ("selection", "measure", "gain", "verdict")}
                                                  for row in r["summary"]] for r in reports})
    return {"run_dir": str(run.root), "evals": reports}
