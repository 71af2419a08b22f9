from __future__ import annotations

import json

import pytest

from tests.perplexity import perplexity_data as pdata
from tests.perplexity.test_lm_scorer import SENTENCES
from thresher.perplexity.train_proxy import train_proxy

torch = pytest.importorskip("torch")
TINY = dict(steps=4, vocab_size=400, n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4, threads=1)


@pytest.fixture(scope="session")
def proxy_lm(sample_data, tmp_path_factory):
    return pdata.trained_proxy(sample_data, tmp_path_factory.getbasetemp() / "perplexity-models")


def test_proxy_is_a_plain_hugging_face_directory_that_learned(proxy_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(proxy_lm, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(proxy_lm, local_files_only=True)
    assert model.config.model_type == "gpt2" and model.config.n_layer == pdata.TEST_PROXY["n_layer"]
    assert len(tokenizer) == model.config.vocab_size == pdata.TEST_PROXY["vocab_size"]
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    meta = json.loads((proxy_lm / "thresher_proxy.json").read_text(encoding="utf-8"))
    curve = [point["loss"] for point in meta["loss_curve"]]
    print(f"proxy: {meta['parameters']:,} parameters, loss {curve[0]} -> {curve[-1]} in {meta['seconds']} s")
    assert curve[0] > 6.5  # ~ln(1024) at initialisation
    assert curve[-1] < curve[0] - 1.2  # learned well beyond uniform (a unigram model would reach ~6)
    assert meta["training"]["seed"] == 0 and meta["corpus"]["documents_used"] > 1000


def test_tokenizer_round_trips_any_text(proxy_lm):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(proxy_lm, local_files_only=True)
    for text in ("Naïve café in Zürich — “quoted” 東京 🙂\ttab\n\nnew paragraph  ", SENTENCES[0], ""):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text  # byte-level BPE: nothing is out of vocabulary


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    texts = SENTENCES * 10
    first = train_proxy(texts, tmp_path / "a", seed=3, **TINY)
    again = train_proxy(texts, tmp_path / "b", seed=3, **TINY)
    other = train_proxy(texts, tmp_path / "c", seed=4, **TINY)
    from safetensors.torch import load_file

    a, b, c = (load_file(path / "model.safetensors") for path in (first, again, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (first / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()


def test_reads_reference_files_and_reports_progress(tmp_path):
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(SENTENCES * 10), encoding="utf-8")
    steps = []
    out = train_proxy([reference], tmp_path / "m", progress=lambda step, loss: steps.append((step, loss)), **TINY)
    assert [s for s, _ in steps] == list(range(1, TINY["steps"] + 1)) and all(loss > 0 for _, loss in steps)
    meta = json.loads((out / "thresher_proxy.json").read_text(encoding="utf-8"))
    assert meta["corpus"]["documents"] == 60 and meta["corpus"]["files"] == [str(reference)]


def test_bad_settings_and_empty_corpora_are_errors(tmp_path):
    with pytest.raises(ValueError, match="multiple of n_head"):
        train_proxy(SENTENCES, tmp_path / "m", **{**TINY, "n_embd": 30, "n_head": 4})
    with pytest.raises(ValueError, match="no training text"):
        train_proxy(["", "  "], tmp_path / "m", **TINY)
    with pytest.raises(ValueError, match="fewer than block_size"):
        train_proxy(["tiny"], tmp_path / "m", **{**TINY, "block_size": 512})
