"""`thresher judge ...`: run SLM judges over a run, calibrate them, measure prompt injection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail, parse_key_values, print_rows
from thresher.cli.run import LogLevel, prefect_logging, run_flow

app = typer.Typer(
    name="judge",
    help="SLM-as-judge: instruction quality (AlpaGasus, UltraFeedback, DEITA), educational value "
    "(FineWeb-Edu), IFD; calibration and prompt-injection measurements.",
    no_args_is_help=True,
    add_completion=False,
)

JudgeOpt = Annotated[list[str] | None, typer.Option(
    "--judge", "-j", help="judge_alpagasus, judge_ultrafeedback, judge_edu, judge_deita_complexity, "
    "judge_deita_quality, ifd (a _gen suffix selects generate mode); repeatable")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="expected (score-token probabilities) or generate")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="model reference (default: the judge's)")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="transformers, openai, llama_cpp or vllm")]
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible server, e.g. "
                                                 "http://127.0.0.1:8000/v1 (implies --backend openai)")]
ConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", help="HTTP requests in flight")]
OptionOpt = Annotated[list[str] | None, typer.Option("--option", "-o", help="judge parameter KEY=VALUE (JSON "
                                                     "values allowed), e.g. -o max_input_tokens=256; repeatable")]


def _require_model(model: str | None) -> None:
    """A packaged model that is named but not installed fails here, in one line that says how to
    install it, instead of inside the first judge task."""
    from thresher.llm.packaged import SPLIT_MODELS, assemble_split_model
    from thresher.models.resolve import ModelResolveError, install_hint

    if isinstance(model, str) and model in SPLIT_MODELS:
        try:
            assemble_split_model(model)  # finds the parts; assembles them once, as the first judgment would
        except ModelResolveError as exc:
            fail(f"{exc}{install_hint(model)}")


def _params(mode, model, backend, base_url, concurrency, options) -> dict:
    _require_model(model)
    params = parse_key_values(options, "--option")
    if mode:
        params["mode"] = mode
    if model:
        params["model"] = model
    if base_url:
        backend = backend or "openai"
        params.setdefault("backend_options", {})["base_url"] = base_url
    if concurrency:
        params.setdefault("backend_options", {})["concurrency"] = concurrency
    if backend:
        params["backend"] = backend
    return params



@app.command()
def run(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    judge: JudgeOpt = None,
    mode: ModeOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    option: OptionOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Judge every shard of RUN_DIR's instructions (or documents, for judge_edu) into
    scores/<judge>@<version>/; judgments are cached in RUN_DIR/judge_cache/."""
    prefect_logging(log_level)
    from thresher.config import ScorerSpec
    from thresher.flows.judges import judge_flow
    from thresher.scorers.registry import accepted_params

    # Shared flags go to the judges that take them (IFD has no --mode); --option items go to every
    # judge named, so a key no judge takes is an error, not silently dropped.
    shared = _params(mode, model, backend, base_url, concurrency, None)
    explicit = parse_key_values(option, "--option")
    _require_model(explicit.get("model"))
    specs = [ScorerSpec(name=n, params={**accepted_params(n, shared), **explicit})
             for n in judge or ["judge_alpagasus"]]
    result = run_flow(judge_flow, str(run_dir), specs)
    print_rows("judges", result["judges"])


@app.command()
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with instructions (or documents)")],
    judge: Annotated[str, typer.Option("--judge", "-j", help="the judge to calibrate")] = "judge_alpagasus",
    labels: Annotated[Path | None, typer.Option("--labels", help="reference labels: parquet/csv/jsonl with doc_id "
                                                "and a label column")] = None,
    label_column: Annotated[str, typer.Option("--label-column")] = "label",
    degraded: Annotated[int | None, typer.Option("--degraded", help="no label file: judge N real answers "
                                                 "against N degraded copies (swap/truncate/shuffle)")] = None,
    sample: Annotated[int, typer.Option("--sample", help="labelled rows to judge at most")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    name: Annotated[str | None, typer.Option("--name", help="calibration name (default: judge + reference)")] = None,
    positive_threshold: Annotated[float | None, typer.Option(
        "--positive-threshold", help="graded labels >= this count as positive for the AUC (default: median)")] = None,
    fit: Annotated[str, typer.Option("--fit", help="fit a calibration on the labelled rows: isotonic, logistic "
                                     "(Platt) or none (report only)")] = "isotonic",
    holdout: Annotated[float, typer.Option("--holdout", help="fraction of labelled doc_ids held out to measure "
                                           "the fitted calibration")] = 0.3,
    mode: ModeOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    option: OptionOpt = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Compare a judge's scores with reference labels on a sample: Spearman, AUC, confusion matrix,
    written to RUN_DIR/judge_calibration/{metrics,confusion,rows}/<name>.parquet and an artifact.
    With --fit (default isotonic), also fit a calibration on those rows, report its Brier score and
    log-loss on held-out rows against the uncalibrated score, and write the calibrated score of every
    row the judge scored as scores/<judge>_calibrated_<name>@1/ (run `thresher judge run` first);
    the fitted parameters are in RUN_DIR/judge_calibration/fits/<name>.json."""
    prefect_logging(log_level)
    from thresher.config import ScorerSpec
    from thresher.flows.judges import calibrate_flow
    from thresher.judges.calibrate import FIT_METHODS

    if (labels is None) == (degraded is None):
        fail("give --labels FILE or --degraded N")
    if fit not in (*FIT_METHODS, "none"):
        fail(f"--fit {fit!r}: choose {', '.join(FIT_METHODS)} or none")
    params = _params(mode, model, backend, base_url, concurrency, option)
    calibration = name or (f"{judge}-{'degraded' if degraded else Path(str(labels)).stem}")
    result = run_flow(calibrate_flow, str(run_dir), ScorerSpec(name=judge, params=params), calibration,
                      str(labels) if labels else None, label_column, degraded, sample, seed, positive_threshold,
                      None if fit == "none" else fit, holdout)
    c = result["calibration"]
    print_rows(f"calibration {c.calibration}", [{
        "judge": f"{c.judge}@{c.judge_version}", "n": c.n, "scored": c.n_scored, "parse errors": c.n_parse_errors,
        "spearman": f"{c.spearman:.3f}", "auc": f"{c.auc:.3f}",
        "mean score +": f"{c.mean_score_positive:.3f}", "mean score -": f"{c.mean_score_negative:.3f}",
    }])
    print_rows("confusion (label, rounded score)", [{"label": a, "score": p, "rows": n} for a, p, n in c.confusion])
    console.print(f"tables: {result['paths']['metrics'].rsplit('/', 2)[0]}/")
    if (f := result["fit"]) is not None:
        print_rows(f"{f.method} calibration, {f.n_holdout} held-out rows (fitted on {f.n_train})", [
            {"": "uncalibrated", "brier": f"{f.brier_before:.4f}", "log-loss": f"{f.log_loss_before:.4f}"},
            {"": "calibrated", "brier": f"{f.brier_after:.4f}", "log-loss": f"{f.log_loss_after:.4f}"},
        ])
        console.print(f"calibrated scores: scores/{f.sidecar}/ ({f.rows_calibrated} of {f.rows_written} rows)")


@app.command()
def composite(
    run_dir: Annotated[Path, typer.Argument(help="a run directory with judge (and other) scores")],
    name: Annotated[str, typer.Option("--name", help="the score's name: scores/<name>@<version>/, column "
                                      "<name>_score")],
    inputs: Annotated[list[str], typer.Option("--input", "-i", help="NAME=SQL, an expression over "
                                              "<table>_scored, e.g. alpagasus=judge_alpagasus_score or "
                                              "length='ln(1 + length(output))'; repeatable")],
    lower: Annotated[list[str] | None, typer.Option("--lower", help="an input NAME for which lower is better "
                                                    "(e.g. ifd); repeatable")] = None,
    method: Annotated[str, typer.Option("--method", help="zscore (mean of z-scores, no labels) or logistic "
                                        "(weights learned on --labels)")] = "zscore",
    labels: Annotated[Path | None, typer.Option("--labels", help="logistic: parquet/csv/jsonl with doc_id and "
                                                "a label column")] = None,
    label_column: Annotated[str, typer.Option("--label-column")] = "label",
    version: Annotated[str, typer.Option("--version", help="bump it when the inputs or method change")] = "1",
    table: Annotated[str, typer.Option("--table")] = "instructions",
    min_inputs: Annotated[int | None, typer.Option("--min-inputs", help="inputs a row needs for a score "
                                                   "(default: all)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    log_level: LogLevel = "WARNING",
) -> None:
    """Combine judge scores and cheap signals into one versioned score, scores/<name>@<version>/."""
    prefect_logging(log_level)
    from pydantic import ValidationError

    from thresher.flows.judges import composite_flow
    from thresher.judges.composite import CompositeConfig, CompositeInput

    parsed = []
    for item in inputs:
        key, sep, sql = item.partition("=")
        if not sep:
            fail(f"--input {item!r}: expected NAME=SQL")
        parsed.append(CompositeInput(name=key, sql=sql, direction="lower" if key in (lower or []) else "higher"))
    unknown = set(lower or []) - {i.name for i in parsed}
    if unknown:
        fail(f"--lower {', '.join(sorted(unknown))}: not an --input name")
    try:
        config = CompositeConfig(name=name, version=version, table=table, inputs=parsed, method=method,
                                 min_inputs=min_inputs, labels_path=str(labels) if labels else None,
                                 label_column=label_column, seed=seed)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    result = run_flow(composite_flow, str(run_dir), config)
    console.print(result["report"])


@app.command()
def injection(
    data: Annotated[Path, typer.Argument(help="Alpaca-format JSON (instruction/input/output) or JSONL with text")],
    judge: Annotated[str, typer.Option("--judge", "-j")] = "judge_alpagasus",
    n: Annotated[int, typer.Option("--n", help="rows to attack")] = 8,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    min_gain: Annotated[float, typer.Option("--min-gain", help="a rise larger than this counts")] = 0.1,
    mode: ModeOpt = None,
    model: ModelOpt = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    option: OptionOpt = None,
) -> None:
    """Measure prompt injection: how many attacked rows score higher than their clean copy, with the
    unhardened and the hardened prompt version."""
    import random

    from thresher.judges.base import LLMJudge
    from thresher.judges.injection import format_results, measure_injection
    from thresher.judges.runner import build_judge_scorer

    params = _params(mode, model, backend, base_url, None, option)
    built = build_judge_scorer(judge, params)
    if not isinstance(built, LLMJudge):
        fail(f"{judge} has no prompt to inject into")
    text = data.read_text(encoding="utf-8")
    records = json.loads(text) if data.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line]
    fields = built.template.fields
    usable = [{f: (r.get(f) or "") for f in fields} for r in records
              if all(isinstance(r.get(f, ""), str) for f in fields)]
    rows = random.Random(seed).sample(usable, min(n, len(usable)))
    results = run_flow(measure_injection, built, rows, min_gain=min_gain)
    console.print(format_results(results))


def _texts(paths: list[Path]) -> list[str]:
    """Texts of JSONL (`text` per line) or JSON-array files (`text`, or an Alpaca record's `output`)."""
    texts = []
    for path in paths:
        raw = path.read_text(encoding="utf-8")
        records = (json.loads(raw) if raw.lstrip().startswith("[")
                   else [json.loads(line) for line in raw.splitlines() if line.strip()])
        texts += [r.get("text") or r.get("output") or "" for r in records if isinstance(r, dict)]
    return [t for t in texts if t.strip()]


@app.command("train-injection-head")
def train_injection_head(
    out: Annotated[Path, typer.Option("--out", help="where the head's JSON goes (give it to a judge as "
                                      "-o injection_head=PATH, or `injection_head:` in a recipe)")],
    attacks: Annotated[list[Path], typer.Option("--attacks", help="attack texts: JSONL with `text`; repeatable")],
    benign: Annotated[list[Path], typer.Option("--benign", help="benign texts: JSONL with `text`, or Alpaca JSON "
                                               "(its answers); real answers and look-alikes; repeatable")],
    threshold: Annotated[float, typer.Option(help="P(injection) above which a text is flagged")] = 0.8,
) -> None:
    """Fit the learned prompt-injection detector (a logistic head on MiniLM sentence embeddings) that
    judges can use beside the patterns."""
    from thresher.judges.injection_head import fit_injection_head

    attack_texts, benign_texts = _texts(attacks), _texts(benign)
    if not attack_texts or not benign_texts:
        fail("the head needs attack texts and benign texts", hint="JSONL files with a `text` field")
    head = fit_injection_head(attack_texts, benign_texts, threshold=threshold)
    head.save(out)
    console.print(f"injection head: {len(attack_texts)} attack and {len(benign_texts)} benign texts "
                  f"({head.trained_on['positives']} / {head.trained_on['negatives']} with their sentences), "
                  f"threshold {threshold} -> {out}")


@app.command()
def prompts() -> None:
    """List the judge prompts shipped with thresher and their versions."""
    from thresher.judges.templates import available_tasks, load_task

    rows = []
    for task in available_tasks():
        spec = load_task(task)
        for version, v in sorted(spec["versions"].items()):
            rows.append({"task": task, "version": version, "hardened": bool(v.get("hardened")),
                         "scale": f"{min(spec['scale'])}-{max(spec['scale'])}", "fields": ", ".join(spec["fields"])})
    print_rows("judge prompts", rows)
