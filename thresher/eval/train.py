"""Train one arm's model for one seed: resumable, and deterministic for a seed.

    eval/runs/<name>/models/<arm>/seed-<s>/checkpoint.json     the newest complete checkpoint
    eval/runs/<name>/models/<arm>/seed-<s>/ckpt-<step>/        weights (safetensors), optimizer, curve
    eval/runs/<name>/models/<arm>/seed-<s>/model/              the final model (config.json + safetensors)
    eval/runs/<name>/models/<arm>/seed-<s>/metrics.json        losses, probe accuracy, curve, cache key

Which windows a step reads is a function of (seed, step) alone: window order is a permutation per
pass drawn from the seed and the pass number. So a run resumed from the checkpoint at step k reads
exactly the windows the uninterrupted run would have, and ends with the same weights. A checkpoint
directory is written completely before `checkpoint.json` names it (atomic replace), so a kill at
any point leaves the previous checkpoint usable. Nothing here is unpickled: weights are
safetensors, optimizer state is loaded with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thresher.eval.config import EvalConfig
from thresher.eval.lm import build_model, probe_accuracy, stream_loss, window_loss
from thresher.eval.tokens import Tokenizer
from thresher.storage.parquet_io import write_json_atomic


@dataclass(frozen=True)
class TrainJob:
    """One model: an arm's token file, trained with the config's model and budget from `seed`."""

    arm: str
    seed: int
    data: Path
    out: Path


def resolve_device(choice: str) -> str:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device cuda asked for, but torch sees no CUDA device")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def window_for(seed: int, index: int, windows: int) -> int:
    """The window read as the `index`-th example of training (see the module doc)."""
    epoch, position = divmod(index, windows)
    return int(np.random.default_rng([seed, epoch]).permutation(windows)[position])


def _learning_rate(config: EvalConfig, step: int) -> float:
    train = config.train
    if step < train.warmup:
        return train.lr * (step + 1) / train.warmup
    progress = (step - train.warmup) / max(train.steps - train.warmup, 1)
    return train.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _save_checkpoint(out: Path, step: int, model, optimizer, state: dict) -> None:
    import torch
    from safetensors.torch import save_model

    directory = out / f"ckpt-{step}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    save_model(model, str(directory / "model.safetensors"))
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    (directory / "state.json").write_text(json.dumps(state), encoding="utf-8")
    write_json_atomic(out / "checkpoint.json", {"step": step, "directory": directory.name})
    for older in out.glob("ckpt-*"):
        if older != directory:
            shutil.rmtree(older, ignore_errors=True)


def _load_checkpoint(out: Path, model, optimizer) -> dict | None:
    import torch
    from safetensors.torch import load_model

    try:
        pointer = json.loads((out / "checkpoint.json").read_text(encoding="utf-8"))
        directory = out / pointer["directory"]
        state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return None
    load_model(model, str(directory / "model.safetensors"))
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
    return state


def _save_final(directory: Path, model) -> None:
    """A directory `AutoModelForCausalLM.from_pretrained` loads (config.json + model.safetensors)."""
    from safetensors.torch import save_model

    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(directory))
    save_model(model, str(directory / "model.safetensors"), metadata={"format": "pt"})


def train_arm(job: TrainJob, config: EvalConfig, tokenizer: Tokenizer, eval_sets: dict[str, np.ndarray],
              probes: dict[str, list[dict]], cache_key: str, *, stop_after: int | None = None) -> dict:
    """Train (or resume) one model and measure it; returns what metrics.json holds.
    `stop_after` ends the run after that many steps without finishing it (a test's stand-in for a kill)."""
    import torch

    started = time.perf_counter()
    device = resolve_device(config.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    tokens = np.load(job.data, allow_pickle=False)
    context, train = config.model.context, config.train
    windows = (tokens.size - 1) // context
    if windows < 1:
        raise ValueError(f"arm {job.arm}: {tokens.size} training tokens, fewer than one window of {context + 1}")
    def fresh():
        model = build_model(config.model, tokenizer.vocab_size, tokenizer.eos_id, job.seed).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay,
                                      betas=(0.9, 0.95))
        return model, optimizer, {"step": 0, "curve": [], "interval_loss": 0.0, "interval_steps": 0,
                                  "cache_key": cache_key}

    model, optimizer, state = fresh()
    job.out.mkdir(parents=True, exist_ok=True)
    resumed = _load_checkpoint(job.out, model, optimizer)
    if resumed is not None and resumed.get("cache_key") == cache_key:
        state = resumed
    elif resumed is not None:  # a checkpoint of other data or settings: start over from the seed's weights
        model, optimizer, state = fresh()
    resumed_from = state["step"]
    for step in range(state["step"], train.steps):
        model.train()
        rows = [window_for(job.seed, step * train.batch_size + b, windows) for b in range(train.batch_size)]
        batch = torch.from_numpy(np.stack([tokens[w * context: w * context + context + 1] for w in rows])
                                 .astype(np.int64)).to(device)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        loss = window_loss(model, batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["interval_loss"] += float(loss.detach())
        state["interval_steps"] += 1
        done = step + 1
        if done % train.eval_every == 0 or done == train.steps:
            point = {"step": done, "train_loss": state["interval_loss"] / state["interval_steps"]}
            point.update({f"eval_{name}": stream_loss(model, stream, context, device)
                          for name, stream in eval_sets.items()})
            state["curve"].append(point)
            state["interval_loss"], state["interval_steps"] = 0.0, 0
        state["step"] = done
        if done % train.checkpoint_every == 0 and done < train.steps:
            _save_checkpoint(job.out, done, model, optimizer, state)
        if stop_after is not None and done - resumed_from >= stop_after and done < train.steps:
            return {"stopped_at": done}
    final = state["curve"][-1]
    result = {
        "arm": job.arm, "seed": job.seed, "cache_key": cache_key, "steps": train.steps,
        "train_tokens": int(tokens.size), "tokens_seen": train.steps * train.batch_size * context,
        "final_train_loss": final["train_loss"],
        "eval": {name: final[f"eval_{name}"] for name in eval_sets},
        "probes": {name: probe_accuracy(model, tokenizer, items, context, device) for name, items in probes.items()},
        "curve": state["curve"], "resumed_from_step": resumed_from, "device": device,
        "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    _save_final(job.out / "model", model)
    write_json_atomic(job.out / "metrics.json", result)
    for checkpoint in job.out.glob("ckpt-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    (job.out / "checkpoint.json").unlink(missing_ok=True)
    return result


def finished(out: Path, cache_key: str) -> dict | None:
    """metrics.json of a model trained under `cache_key`, or None."""
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return metrics if isinstance(metrics, dict) and metrics.get("cache_key") == cache_key else None
