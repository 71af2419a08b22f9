"""Before anything trains: the budget, every arm's tokens, the eval sets, and the overlap check.

The budget is `tokens`, or the smallest selection's token count; every arm gets exactly that many
tokens per seed (see thresher.eval.data). The overlap check runs on every document an arm will
train on; with `on_overlap: refuse` (the default) an overlap stops the eval before any training.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from thresher.eval.config import RANDOM_ARM, EvalConfig, ProbeSetSpec
from thresher.eval.data import (
    EvalDataError,
    arm_size,
    digest,
    encode_arm,
    eval_root,
    eval_set_doc_ids,
    eval_set_path,
    pool_sample,
    read_eval_set,
    save_arm,
    save_tokens,
)
from thresher.eval.overlap import EvalOverlapError
from thresher.eval.tokens import BPE, load_tokenizer, train_bpe
from thresher.storage.parquet_io import write_json_atomic
from thresher.storage.run_dir import RunDir

log = logging.getLogger(__name__)
TRAIN_VERSION = "1"


def _check_selections(run: RunDir, config: EvalConfig) -> None:
    for name in config.selections:
        meta_path = run.root / "selections" / name / "selection.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise EvalDataError(f"eval {config.name!r}: no selection {name!r} in {run.root} "
                                f"(expected {meta_path})") from None
        if meta.get("table", "documents") != config.table:
            raise EvalDataError(f"eval {config.name!r}: selection {name!r} selects {meta.get('table')}, "
                                f"the eval trains on {config.table} (set `table:`)")


def tokenizer_path(run: RunDir, name: str):
    return eval_root(run, name) / "tokenizer.json"


def load_probes(spec: ProbeSetSpec) -> list[dict]:
    """The probe set's items as {question, choices, answer index}; a bad item is an error naming its line."""
    items = []
    with open(spec.path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if len(items) >= spec.max_items:
                break
            try:
                record = json.loads(line)
                question, choices = record[spec.question_field], record[spec.choices_field]
                answer = record[spec.answer_field]
                if not isinstance(question, str) or not isinstance(choices, list) or len(choices) < 2 \
                        or not all(isinstance(c, str) for c in choices):
                    raise ValueError("question must be text and choices a list of at least two texts")
                index = choices.index(answer) if isinstance(answer, str) else int(answer)
                if not 0 <= index < len(choices):
                    raise ValueError(f"answer {answer!r} is not one of the {len(choices)} choices")
            except (ValueError, KeyError, TypeError) as exc:
                raise EvalDataError(f"probe set {spec.name!r}: {spec.path} line {line_no}: {exc}") from None
            items.append({"question": question, "choices": choices, "answer": index})
    if not items:
        raise EvalDataError(f"probe set {spec.name!r}: {spec.path} has no items")
    return items


def job_cache_key(config: EvalConfig, plan: dict, arm: str, seed: int, device: str) -> str:
    payload = {
        "version": TRAIN_VERSION, "model": config.model.model_dump(), "train": config.train.model_dump(),
        "tokenizer": plan["tokenizer"], "data": plan["arms"][arm][str(seed)]["hash"], "seed": seed,
        "eval_sets": {k: v["hash"] for k, v in plan["eval_sets"].items()}, "probes": plan["probes"],
        "device": device,
    }
    return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16).hexdigest()


def plan_eval(run: RunDir, config: EvalConfig) -> dict:
    """Write every arm's and eval set's tokens and `plan.json`; raise on overlap (unless warned)."""
    _check_selections(run, config)
    left_out = {spec.name: eval_set_doc_ids(run, spec) for spec in config.eval_sets}
    excluded = sorted({d for ids in left_out.values() for d in ids})
    if config.tokenizer == BPE:
        train_bpe(pool_sample(run, config, config.seeds[0], excluded, config.bpe_sample_chars), config.bpe_vocab,
                  tokenizer_path(run, config.name))
    tokenizer = load_tokenizer(config.tokenizer, tokenizer_path(run, config.name))
    eval_sets = {}
    indexes: dict[str, np.ndarray] = {}
    for spec in config.eval_sets:
        data = read_eval_set(run, spec, config, tokenizer)
        save_tokens(eval_set_path(run, config.name, spec.name), data.tokens)
        indexes[spec.name] = data.index
        eval_sets[spec.name] = {"tokens": int(data.tokens.size), "texts": data.texts, "hash": digest(data.tokens),
                                "rows_left_out_of_training": len(left_out[spec.name])}
    sizes = {name: arm_size(run, config, tokenizer, name, excluded) for name in config.selections}
    budget = config.tokens or min(sizes.values())
    small = [f"{name} ({size:,})" for name, size in sizes.items() if size < budget]
    if small:
        raise EvalDataError(f"eval {config.name!r}: selections with fewer than the {budget:,} training tokens "
                            f"asked for: {', '.join(small)}; lower `tokens`")
    if budget < config.model.context + 1:
        raise EvalDataError(f"eval {config.name!r}: a budget of {budget} tokens is less than one training window "
                            f"({config.model.context + 1}); the smallest selection is too small")
    arms: dict[str, dict[str, dict]] = {}
    overlap: dict[str, dict] = {}
    for seed in config.seeds:
        for arm in config.arms:
            data = encode_arm(run, config, tokenizer, arm, seed, budget, excluded, indexes)
            if data.tokens.size < budget:
                raise EvalDataError(f"eval {config.name!r}: the {arm} arm has only {data.tokens.size:,} tokens "
                                    f"for a budget of {budget:,}" + (" (widen random_where)" if arm == RANDOM_ARM
                                                                     else ""))
            arms.setdefault(arm, {})[str(seed)] = {"hash": save_arm(run, config.name, data),
                                                   "documents": len(data.doc_ids)}
            for set_name, found in data.overlap.summary().items():
                overlap[f"{arm} seed {seed} / {set_name}"] = found
    plan = {
        "name": config.name, "table": config.table, "tokenizer": tokenizer.identity, "budget_tokens": budget,
        "selection_tokens": sizes, "eval_sets": eval_sets, "arms": arms, "overlap": overlap,
        "probes": {p.name: hashlib.blake2b(json.dumps(load_probes(p)).encode(), digest_size=12).hexdigest()
                   for p in config.probes},
        "config": config.model_dump(mode="json"),
    }
    write_json_atomic(eval_root(run, config.name) / "plan.json", plan)
    if overlap:
        lines = [f"{where}: {found['documents']} training documents share more than {config.max_overlap} "
                 f"{config.overlap_n}-grams with it (e.g. {', '.join(found['examples'][:3])})"
                 for where, found in overlap.items()]
        if config.on_overlap == "refuse":
            raise EvalOverlapError(f"eval {config.name!r}: evaluation sets overlap training data, so their loss "
                                   "would measure memorisation:\n  " + "\n  ".join(lines)
                                   + "\n(decontaminate the selections against the eval sets, or set "
                                   "on_overlap: warn)")
        for line in lines:
            log.warning("EVAL SETS OVERLAP TRAINING DATA: eval %s: %s", config.name, line)
    return plan
