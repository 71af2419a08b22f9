"""Do the judges agree with people? Agreement with the chosen reply of real preference pairs
(tests/data/preferences/dpo_en.jsonl), next to "the longer reply wins" on the same pairs, on
length-matched pairs, plus the AUC of real against degraded Alpaca answers, and rows/s, for each
judge configuration; one markdown table (thresher.judges.agreement).

Configurations: the named presets below (`--config alpagasus,askllm,pairwise,length`), or JSON
for thresher.judges.agreement.AgreementConfig (`--config '{"name": ..., "kind": "pointwise",
"judge": "judge_askllm", "params": {"prompt_version": 1}}'`). `--model` and the token budgets
apply to every model configuration. Every configuration runs in this process, one after the
other, on the same pairs, so their rows/s compare (on a shared machine, expect 20-50 %
run-to-run variation). Judgments are cached in `--cache-dir` (default: a temporary directory,
so every number is computed); give a directory to resume an interrupted run.

    .venv/bin/python bench/judge_agreement.py --config length,alpagasus,askllm,pairwise --limit 30 \\
        [--subsets heldout,heldout_matched] [--degraded 12] [--model qwen2.5-coder-0.5b-instruct] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.judges.agreement import AgreementConfig, evaluate, format_table, load_pairs, select  # noqa: E402
from thresher.judges.preference_fit import composite_result, fit_bradley_terry  # noqa: E402

PAIR_SETS = {name: REPO / "tests" / "data" / "preferences" / f"{name}.jsonl" for name in ("dpo_en", "oasst2_en")}
SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))
ALPACA = SHARED / "alpaca_sample.json"
if not ALPACA.exists():
    ALPACA = REPO / "tests" / "data" / "alpaca_sample.json"

PRESETS: dict[str, dict] = {
    "length": {"kind": "length"},
    "alpagasus": {"kind": "pointwise", "judge": "judge_alpagasus"},
    "ultrafeedback": {"kind": "pointwise", "judge": "judge_ultrafeedback"},
    "deita_quality": {"kind": "pointwise", "judge": "judge_deita_quality"},
    "askllm": {"kind": "pointwise", "judge": "judge_askllm"},
    "askllm_v1": {"kind": "pointwise", "judge": "judge_askllm", "params": {"prompt_version": 1}},
    "pairwise": {"kind": "pairwise"},
    "pairwise_v1": {"kind": "pairwise", "params": {"prompt_version": 1}},
}


def parse_configs(spec: str, model_params: dict, cache_dir: str) -> list[AgreementConfig]:
    configs = []
    items = [spec] if spec.lstrip().startswith("{") else [s for s in spec.split(",") if s]
    for item in items:
        raw = json.loads(item) if item.lstrip().startswith("{") else {"name": item, **PRESETS[item]}
        if raw["kind"] != "length":
            raw["params"] = {**model_params, "cache_dir": cache_dir, **raw.get("params", {})}
        configs.append(AgreementConfig(**raw))
    return configs


def parse_composite(spec: str, configs: list[AgreementConfig]) -> tuple[str, list[str]]:
    name, _, members = spec.partition("=")
    names = [m for m in members.split("+") if m]
    unknown = sorted(set(names) - {c.name for c in configs})
    if not name or not names or unknown:
        raise SystemExit(f"--composite {spec!r}: want NAME=A+B with A, B among --config ({unknown or 'empty'})")
    return name, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="length,alpagasus,askllm,pairwise",
                        help=f"comma-separated presets ({', '.join(PRESETS)}) or one JSON AgreementConfig")
    parser.add_argument("--pairs", default="dpo_en",
                        help=f"a shipped set ({', '.join(PAIR_SETS)}) or a pairs .jsonl (thresher.judges.agreement)")
    parser.add_argument("--subsets", default="heldout,heldout_matched",
                        help="all, tune, heldout, each optionally with _matched (length-matched pairs)")
    parser.add_argument("--composite", action="append", default=[], metavar="NAME=A+B+...",
                        help="a Bradley-Terry composite of configurations (thresher.judges.preference_fit), "
                             "fitted on the tune split and reported on the others; repeatable")
    parser.add_argument("--limit", type=int, default=None, help="at most the first N pairs of each subset")
    parser.add_argument("--degraded", type=int, default=12, help="real Alpaca answers (+ as many degraded); 0: skip")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-input-tokens", type=int, default=192, help="budget of each judged reply")
    parser.add_argument("--max-instruction-tokens", type=int, default=160, help="budget of the conversation")
    parser.add_argument("--context-chars", type=int, default=800, help="characters of the conversation's tail")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model_params = {"model": args.model, "backend_options": {"dtype": args.dtype},
                    "max_input_tokens": args.max_input_tokens, "max_instruction_tokens": args.max_instruction_tokens}
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="judge_agreement_")
    configs = [c.model_copy(update={"context_chars": args.context_chars}) if c.kind != "length" else c
               for c in parse_configs(args.config, model_params, cache_dir)]
    pairs_path = PAIR_SETS.get(args.pairs, Path(args.pairs))
    pairs = load_pairs(pairs_path)
    records = json.loads(ALPACA.read_text())
    subsets = args.subsets.split(",")
    composites = [parse_composite(spec, configs) for spec in args.composite]
    judged_subsets = subsets if not composites or "tune" in subsets else [*subsets, "tune"]
    print(f"{len(pairs)} pairs from {pairs_path.name}; subsets {subsets}, limit {args.limit}; "
          f"degraded n={args.degraded}; model {args.model}; torch threads {args.threads}; "
          f"cache {cache_dir}", flush=True)
    if any(c.kind != "length" for c in configs):  # load the weights before any clock starts
        from thresher.llm import BackendSpec, get_backend

        _ = get_backend(BackendSpec("transformers", args.model, model_params["backend_options"])).model
    results = []
    for config in configs:
        result = evaluate(config, pairs, judged_subsets, limit=args.limit, degraded_records=records,
                          degraded_n=args.degraded if config.kind != "length" else 0)
        results.append(result)
        print(format_table([result]).splitlines()[-1], flush=True)
    by_name = {c.name: (c, r) for c, r in zip(configs, results)}
    for name, members in composites:
        fit = fit_bradley_terry([by_name[m][1] for m in members], [by_name[m][0] for m in members],
                                select(pairs, "tune")[:args.limit])
        results.append(composite_result(name, fit, [by_name[m][1] for m in members], pairs, judged_subsets, args.limit))
        print(f"{name}: {fit.describe()}")
    # The composites were fitted on tune: show only the subsets asked for (tune, if asked, is in-sample).
    results = [replace(r, sets=tuple(s for s in r.sets if s.subset in subsets)) for r in results]
    print()
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([
            {"config": r.config, "rows_per_s": r.rows_per_s, "judgments": r.judgments, "seconds": r.seconds,
             "degraded_auc": r.degraded_auc, "degraded_length_auc": r.degraded_length_auc,
             "sets": [s.__dict__ for s in r.sets]} for r in results], indent=1))


if __name__ == "__main__":
    main()
