from __future__ import annotations

import json
import pickle
import random
import shutil

import numpy as np
import pyarrow as pa
import pytest

from tests.perplexity import perplexity_data as pdata
from thresher.perplexity.lm_scorer import CausalLMPerplexityScorer, _pick_dtype, sliding_windows
from thresher.scorers.base import Scorer, check_output

torch = pytest.importorskip("torch")

SENTENCES = [
    "The committee met on Tuesday to discuss the budget for next year.",
    "A small village lies at the foot of the mountain, beside a cold river.",
    "Researchers measured the speed of the reaction at three temperatures.",
    "She walked home slowly, thinking about the letter she had received.",
    "Prices rose sharply after the harvest failed in the northern provinces.",
    "The library opens at nine and closes at six on weekdays.",
]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The development machine is shared: two OpenMP threads fighting other processes for two
    # cores run several times slower than one.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A randomly initialised 1-layer GPT-2 with a BPE tokenizer: for the mechanics, not quality."""
    from thresher.perplexity.train_proxy import train_proxy

    return train_proxy(SENTENCES * 20, tmp_path_factory.mktemp("tiny-lm"), steps=2, vocab_size=600, n_layer=1,
                       n_head=2, n_embd=32, block_size=128, batch_size=2, seed=0, threads=1)


@pytest.fixture(scope="session")
def proxy_lm(sample_data, tmp_path_factory):
    return pdata.trained_proxy(sample_data, tmp_path_factory.getbasetemp() / "perplexity-models")


def batch_of(texts, ids=None) -> pa.RecordBatch:
    ids = ids or [f"d{i}" for i in range(len(texts))]
    return pa.record_batch({"doc_id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.large_string())})


def run(scorer, texts, ids=None) -> dict:
    batch = batch_of(texts, ids)
    return check_output(scorer, batch, scorer.score(batch)).to_pydict()


def reference_nll(scorer: CausalLMPerplexityScorer, text: str, context: int | None) -> np.ndarray:
    """Each token's NLL from its own forward pass over (at most `context` tokens of) its prefix."""
    runtime = scorer.runtime()
    sequence = [runtime.prefix_id, *runtime.tokenizer(text, add_special_tokens=False)["input_ids"]]
    nll = []
    with torch.inference_mode():
        if context is None:  # one pass: every target sees its whole prefix
            logits = runtime.model(input_ids=torch.tensor([sequence])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            return np.array([-float(logp[t - 1, sequence[t]]) for t in range(1, len(sequence))])
        for t in range(1, len(sequence)):
            window = sequence[max(0, t - context) : t + 1]
            logits = runtime.model(input_ids=torch.tensor([window])).logits[0, -2].double()
            nll.append(-float(torch.log_softmax(logits, dim=-1)[sequence[t]]))
    return np.array(nll)


@pytest.mark.parametrize(("n", "max_length", "stride"), [(1, 4, 2), (2, 4, 2), (10, 4, 2), (10, 4, 1), (10, 4, 3),
                                                          (4, 4, 2), (5, 4, 2), (100, 16, 5), (17, 16, 8)])
def test_sliding_windows_score_every_token_once_with_enough_context(n, max_length, stride):
    windows = sliding_windows(n, max_length, stride)
    targets = [t for _, end, first in windows for t in range(first, end)]
    assert targets == list(range(1, n))
    for k, (start, end, first) in enumerate(windows):
        assert end - start <= max_length and start < first <= end
        if k:  # after the first window every scored token has at least max_length - stride of context
            assert first - start >= min(max_length - stride, first)


def test_sliding_windows_reject_bad_shapes():
    with pytest.raises(ValueError):
        sliding_windows(10, 4, 4)
    with pytest.raises(ValueError):
        sliding_windows(10, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        CausalLMPerplexityScorer(max_length=8, stride=8)


def test_document_that_fits_gets_full_context_nll(tiny_lm):
    scorer = CausalLMPerplexityScorer(model=str(tiny_lm), max_length=128)
    text = " ".join(SENTENCES[:4])
    nll, _ = scorer.token_nll([text])
    expected = reference_nll(scorer, text, context=None)
    assert 20 < len(expected) < 127
    np.testing.assert_allclose(nll[0], expected, rtol=1e-5, atol=1e-6)
    out = run(scorer, [text])
    assert out["lm_tokens"] == [len(expected)]
    assert out["lm_nll_mean"][0] == pytest.approx(expected.mean(), rel=1e-5)
    assert out["lm_perplexity"][0] == pytest.approx(np.exp(expected.mean()), rel=1e-5)
    assert out["lm_nll_p90"][0] == pytest.approx(np.percentile(expected, 90), rel=1e-5)


def test_sliding_window_with_stride_one_equals_per_token_truncated_context(tiny_lm):
    # stride 1: every token after the first window is predicted from exactly max_length - 1 tokens
    scorer = CausalLMPerplexityScorer(model=str(tiny_lm), max_length=8, stride=1)
    text = " ".join(SENTENCES[:2])
    nll, _ = scorer.token_nll([text])
    np.testing.assert_allclose(nll[0], reference_nll(scorer, text, context=7), rtol=1e-5, atol=1e-6)
    # a document longer than the window is not the same as one pass over it
    full = reference_nll(scorer, text, context=None)
    assert len(full) == len(nll[0]) and not np.allclose(full, nll[0])


def test_batching_and_length_sorting_change_neither_values_nor_row_order(tiny_lm):
    rng = random.Random(1)
    texts = [" ".join(rng.choices(SENTENCES, k=rng.randint(1, 12))) for _ in range(12)] + ["", "Short."]
    rng.shuffle(texts)
    ids = [f"doc{i:02d}" for i in range(len(texts))][::-1]
    one = run(CausalLMPerplexityScorer(model=str(tiny_lm), max_length=32, batch_size=1), texts, ids)
    many = run(CausalLMPerplexityScorer(model=str(tiny_lm), max_length=32, batch_size=16), texts, ids)
    split = run(CausalLMPerplexityScorer(model=str(tiny_lm), max_length=32, batch_size=16, max_batch_tokens=70),
                texts, ids)
    assert one["doc_id"] == many["doc_id"] == split["doc_id"] == ids
    assert one["lm_tokens"] == many["lm_tokens"] == split["lm_tokens"]
    assert max(one["lm_tokens"]) > 64  # several windows per long document
    for column in ("lm_nll_mean", "lm_perplexity", "lm_nll_std", "lm_nll_p50", "lm_nll_p90"):
        for other in (many, split):
            assert [v is None for v in one[column]] == [v is None for v in other[column]]
            np.testing.assert_allclose([v for v in one[column] if v is not None],
                                       [v for v in other[column] if v is not None], rtol=1e-5, atol=1e-6)


def test_contract_nulls_empty_text_and_truncation(tiny_lm):
    scorer = CausalLMPerplexityScorer(model=str(tiny_lm), max_tokens=5)
    assert isinstance(scorer, Scorer)
    assert scorer.output_schema.names == ["doc_id", "lm_perplexity", "lm_nll_mean", "lm_nll_std", "lm_nll_p50",
                                          "lm_nll_p90", "lm_tokens", "lm_truncated"]
    batch = pa.record_batch({"doc_id": pa.array(["z", "a", "m", "b"]),
                             "text": pa.array([SENTENCES[0], None, "", "Hi"], pa.large_string())})
    out = check_output(scorer, batch, scorer.score(batch)).to_pydict()
    assert out["doc_id"] == ["z", "a", "m", "b"]
    assert out["lm_tokens"][:3] == [5, None, 0] and 0 < out["lm_tokens"][3] <= 5
    assert out["lm_truncated"] == [True, None, False, False]
    assert out["lm_perplexity"][1] is None and out["lm_perplexity"][2] is None
    assert out["lm_perplexity"][0] > 1 and out["lm_nll_mean"][0] == pytest.approx(np.log(out["lm_perplexity"][0]))
    assert run(scorer, [])["doc_id"] == []


def test_scorer_pickles_without_its_model_and_loads_it_once_per_process(tiny_lm, tmp_path):
    from thresher.perplexity import lm_scorer as lm_perplexity

    copy = tmp_path / "copy"
    shutil.copytree(tiny_lm, copy)
    scorer = CausalLMPerplexityScorer(model=str(copy))
    assert not any(key[0] == str(copy) for key in lm_perplexity._runtimes)  # nothing loaded yet
    payload = pickle.dumps(scorer)
    assert len(payload) < 2000 and b"torch" not in payload
    here = run(scorer, SENTENCES[:3])["lm_nll_mean"]
    assert sum(key[0] == str(copy) for key in lm_perplexity._runtimes) == 1
    clone = pickle.loads(payload)
    assert clone == scorer and clone.runtime() is scorer.runtime()  # the process's one copy
    np.testing.assert_allclose(run(clone, SENTENCES[:3])["lm_nll_mean"], here, rtol=1e-6)
    # a copy pickled after the model loaded is still small: the model lives in the process cache
    assert len(pickle.dumps(scorer)) == len(payload)


def test_remote_code_is_never_run_by_default(tiny_lm, tmp_path):
    assert CausalLMPerplexityScorer().trust_remote_code is False
    marker = tmp_path / "remote-code-ran"
    model_dir = tmp_path / "remote"
    model_dir.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_lm / name, model_dir / name)
    (model_dir / "config.json").write_text(json.dumps({
        "model_type": "thresher_remote_test",
        "auto_map": {"AutoConfig": "remote_model.RemoteConfig", "AutoModelForCausalLM": "remote_model.RemoteModel"},
    }), encoding="utf-8")
    (model_dir / "remote_model.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nraise ImportError('remote code must not run')\n", encoding="utf-8")
    with pytest.raises(ValueError, match="trust_remote_code"):
        CausalLMPerplexityScorer(model=str(model_dir)).score(batch_of(["text"]))
    assert not marker.exists()


def test_dtype_choice():
    assert _pick_dtype("auto", "cpu") == "float32"
    assert _pick_dtype("float16", "cpu") == "float16"
    with pytest.raises(ValueError, match="dtype"):
        CausalLMPerplexityScorer(dtype="int8")


@pytest.mark.gpu
def test_cuda_bfloat16_matches_cpu_float32(tiny_lm):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    texts = [" ".join(SENTENCES[: k + 1]) for k in range(len(SENTENCES))]
    cpu = run(CausalLMPerplexityScorer(model=str(tiny_lm), device="cpu"), texts)
    gpu_scorer = CausalLMPerplexityScorer(model=str(tiny_lm), device="auto")
    runtime = gpu_scorer.runtime()
    assert runtime.device.type == "cuda" and runtime.dtype in (torch.bfloat16, torch.float16)
    assert next(runtime.model.parameters()).dtype == runtime.dtype
    gpu = run(gpu_scorer, texts)
    assert gpu["lm_tokens"] == cpu["lm_tokens"]
    np.testing.assert_allclose(gpu["lm_nll_mean"], cpu["lm_nll_mean"], rtol=0.03)


def test_proxy_ranks_clean_text_below_corrupted_text(sample_data, proxy_lm, record_property):
    clean = pdata.evaluation_paragraphs(sample_data)
    scorer = CausalLMPerplexityScorer(model=str(proxy_lm), batch_size=32)
    clean_pp = run(scorer, clean)["lm_perplexity"]
    aucs, paired, pooled = {}, {}, []
    for kind, texts in pdata.corrupted(clean).items():
        bad_pp = run(scorer, texts)["lm_perplexity"]
        aucs[kind] = pdata.auc(clean_pp, bad_pp)
        paired[kind] = sum(b > c for c, b in zip(clean_pp, bad_pp)) / len(clean)
        pooled += bad_pp
    aucs["pooled"] = pdata.auc(clean_pp, pooled)
    record_property("proxy_auc", aucs)
    print("proxy LM AUC clean vs corrupted:", {k: round(v, 3) for k, v in aucs.items()}, "paired:", paired)
    assert aucs["pooled"] >= 0.9
    assert aucs["random_chars"] >= 0.95 and aucs["boilerplate"] >= 0.95
    assert aucs["shuffled"] >= 0.8 and paired["shuffled"] >= 0.95
