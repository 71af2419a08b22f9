"""One model's training: deterministic for a seed, resumable from a checkpoint to the same weights,
restarted when its checkpoint belongs to other settings; probes scored by log-likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thresher.eval.config import EvalConfig, EvalSetSpec, ProbeSetSpec, TinyLMSettings, TrainSettings
from thresher.eval.data import EvalDataError
from thresher.eval.plan import load_probes
from thresher.eval.tokens import BYTES, load_tokenizer
from thresher.eval.train import TrainJob, finished, train_arm, window_for


def _config(**train) -> EvalConfig:
    settings = dict(steps=12, batch_size=4, lr=1e-2, warmup=2, checkpoint_every=4, eval_every=4, threads=1)
    settings.update(train)
    return EvalConfig(name="t", selections=["s"], eval_sets=[EvalSetSpec(name="e", paths=["unused"])],
                      tokenizer=BYTES, model=TinyLMSettings(hidden=32, heads=2, context=32),
                      train=TrainSettings(**settings))


@pytest.fixture(scope="module")
def streams(sample_data, tmp_path_factory):
    tokenizer = load_tokenizer(BYTES)
    text = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8")
    directory = tmp_path_factory.mktemp("streams")
    train = directory / "train.npy"
    np.save(train, tokenizer.encode(text[:40_000]), allow_pickle=False)
    return tokenizer, train, {"e": tokenizer.encode(text[500_000:504_000])}


def test_training_is_deterministic_and_resumes_to_the_same_weights(streams, tmp_path):
    tokenizer, data, eval_sets = streams
    config = _config()
    whole = train_arm(TrainJob("s", 7, data, tmp_path / "whole"), config, tokenizer, eval_sets, {}, "key")
    again = train_arm(TrainJob("s", 7, data, tmp_path / "again"), config, tokenizer, eval_sets, {}, "key")
    assert again["curve"] == whole["curve"]
    other_seed = train_arm(TrainJob("s", 8, data, tmp_path / "seed8"), config, tokenizer, eval_sets, {}, "key")
    assert other_seed["eval"] != whole["eval"]

    out = tmp_path / "killed"
    stopped = train_arm(TrainJob("s", 7, data, out), config, tokenizer, eval_sets, {}, "key", stop_after=6)
    assert stopped == {"stopped_at": 6}
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4  # the last checkpoint before the kill
    assert finished(out, "key") is None
    resumed = train_arm(TrainJob("s", 7, data, out), config, tokenizer, eval_sets, {}, "key")
    assert resumed["resumed_from_step"] == 4
    assert resumed["curve"] == whole["curve"]  # bit for bit: same windows, same optimizer state
    assert finished(out, "key") == resumed
    assert not list(out.glob("ckpt-*")) and not (out / "checkpoint.json").exists()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    assert sum(p.numel() for p in model.parameters()) == resumed["parameters"]


def test_a_checkpoint_of_other_settings_is_not_resumed(streams, tmp_path):
    tokenizer, data, eval_sets = streams
    out = tmp_path / "model"
    train_arm(TrainJob("s", 1, data, out), _config(), tokenizer, eval_sets, {}, "old", stop_after=5)
    result = train_arm(TrainJob("s", 1, data, out), _config(), tokenizer, eval_sets, {}, "new")
    assert result["resumed_from_step"] == 0 and finished(out, "new") == result


def test_every_pass_reads_every_window_once():
    order = [window_for(3, i, 10) for i in range(30)]
    assert all(sorted(order[k: k + 10]) == list(range(10)) for k in (0, 10, 20))
    assert order[:10] != order[10:20]


def test_probes_are_scored_by_log_likelihood(streams, tmp_path, sample_data):
    tokenizer, data, eval_sets = streams
    probes = tmp_path / "probes.jsonl"
    items = [{"question": "The capital of France is", "choices": ["Paris.", "Zqxjv."], "answer": 0},
             {"question": "Water is made of hydrogen and", "choices": ["qqqqqq", "oxygen"], "answer": "oxygen"}]
    probes.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    loaded = load_probes(ProbeSetSpec(name="p", path=str(probes)))
    assert [i["answer"] for i in loaded] == [0, 1]
    result = train_arm(TrainJob("s", 0, data, tmp_path / "m"), _config(steps=40), tokenizer, eval_sets,
                       {"p": loaded}, "k")
    # Even a tiny byte model trained on Wikipedia prefers English words to letter salad.
    assert result["probes"]["p"] == {"items": 2, "acc": 1.0, "acc_norm": 1.0}

    probes.write_text(json.dumps(items[0]) + "\n" + json.dumps({"question": "q", "choices": ["a"], "answer": 0})
                      + "\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match="line 2: question must be text and choices a list of at least two"):
        load_probes(ProbeSetSpec(name="p", path=str(probes)))


def test_configs_refuse_what_cannot_be_compared():
    with pytest.raises(ValueError, match="names the random arm"):
        EvalConfig(name="x", selections=["random"], eval_sets=[EvalSetSpec(name="e", paths=["f"])])
    with pytest.raises(ValueError, match="either `paths` or `sql`"):
        EvalSetSpec(name="e", paths=["f"], sql="SELECT 1")
    with pytest.raises(ValueError, match="must be unique"):
        EvalConfig(name="x", selections=["a", "a"], eval_sets=[EvalSetSpec(name="e", paths=["f"])])
    with pytest.raises(ValueError, match="heads"):
        TinyLMSettings(hidden=30, heads=4)
