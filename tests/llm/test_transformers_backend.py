"""The local transformers backend on the real SmolLM2-135M (float32, so comparisons are exact)."""

from __future__ import annotations

import json
import pickle

import pytest

from thresher.llm import Capability, GenerationParams, LMError
from thresher.llm.transformers_backend import TransformersBackend, pick_device_and_dtype

SYSTEM = ("You are a strict grader. Rate the accuracy of the response to the instruction on a scale from 0 to 5. "
          "Answer with the score only.")


@pytest.fixture(scope="module")
def chats(sample_data):
    records = json.loads((sample_data / "alpaca_sample.json").read_text())[:4]
    return [[{"role": "system", "content": SYSTEM},
             {"role": "user", "content": f"Instruction: {r['instruction']}\nResponse: {r['output'][:120]}"}]
            for r in records]


def test_declares_every_capability(smollm2):
    assert smollm2.capabilities == frozenset(Capability)
    assert smollm2.model_id.startswith("transformers:SmolLM2-135M-Instruct") and smollm2.model_id.endswith(":float32")


# transformers 5.x renamed the cache argument; the old name warned on every batch of a judge run.
@pytest.mark.filterwarnings("error::FutureWarning")
def test_prefix_cache_and_batching_do_not_change_results(smollm2, chats):
    candidates = [str(i) for i in range(6)]
    smollm2.prefix_cache, smollm2.max_batch_size = True, 8
    reused_before = smollm2.stats["prefix_tokens_reused"]
    cached = smollm2.next_token_logprobs(chats, candidates)
    assert smollm2.stats["prefix_tokens_reused"] > reused_before, "the shared system prompt was not reused"
    smollm2.prefix_cache, smollm2.max_batch_size = False, 1
    try:
        plain = smollm2.next_token_logprobs(chats, candidates)
    finally:
        smollm2.prefix_cache, smollm2.max_batch_size = True, 8
    for a, b in zip(cached, plain):
        assert a.logprobs.keys() == set(candidates)
        for c in candidates:
            assert a.logprobs[c] == pytest.approx(b.logprobs[c], abs=1e-3)
    # log-probabilities of distinct tokens: each below 0, together at most 1
    total = sum(2.718281828 ** v for v in cached[0].logprobs.values())
    assert all(v < 0 for v in cached[0].logprobs.values()) and 0 < total <= 1.0001


def test_a_single_prompt_reuses_the_cached_prefix(smollm2, chats):
    candidates = ["0", "5"]
    smollm2.next_token_logprobs(chats[:2], candidates)
    before = smollm2.stats["prefix_tokens_reused"]
    alone = smollm2.next_token_logprobs([chats[3]], candidates)[0]
    assert smollm2.stats["prefix_tokens_reused"] > before
    smollm2.prefix_cache = False
    try:
        plain = smollm2.next_token_logprobs([chats[3]], candidates)[0]
    finally:
        smollm2.prefix_cache = True
    assert alone.logprobs["5"] == pytest.approx(plain.logprobs["5"], abs=1e-3)


def test_candidates_must_be_distinct_single_tokens(smollm2):
    with pytest.raises(LMError, match="not a single token"):
        smollm2.candidate_token_ids(["1", "10"])  # SmolLM2 spells 10 as "1" "0"


def test_score_prefers_the_answer_that_follows(smollm2):
    prefix = "Question: What is the capital of France?\nAnswer:"
    right, unrelated = smollm2.score([prefix, prefix], [" The capital of France is Paris.", " Bananas are yellow."])
    assert right.n_tokens > 3
    assert right.mean_nll < unrelated.mean_nll
    # the same continuation scored alone (after BOS/EOS only) is far less likely
    alone = smollm2.score([""], [" The capital of France is Paris."])[0]
    assert alone.n_tokens == right.n_tokens
    assert right.mean_nll < alone.mean_nll


def test_score_batched_equals_one_by_one(smollm2):
    prefixes = ["Translate to French: cat\n", "2 + 2 =", ""]
    conts = [" chat", " 4", " hello there, how are you?"]
    together = smollm2.score(prefixes, conts)
    smollm2.max_batch_size = 1
    try:
        alone = smollm2.score(prefixes, conts)
    finally:
        smollm2.max_batch_size = 8
    for a, b in zip(together, alone):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-3)


def test_generate_is_greedy_deterministic_and_honours_stop(smollm2, chats):
    params = GenerationParams(max_new_tokens=8)
    first = smollm2.generate(chats[:2], params)
    again = smollm2.generate(chats[:2][::-1], params)[::-1]  # other batch order, same outputs
    assert [g.text for g in first] == [g.text for g in again]
    assert all(g.completion_tokens <= 8 and g.finish_reason in ("stop", "length") for g in first)
    story = [[{"role": "user", "content": "Describe the sea in two sentences."}]]
    full = smollm2.generate(story, GenerationParams(max_new_tokens=16))[0]
    assert full.finish_reason == "length" and full.completion_tokens == 16
    stop = full.text.split()[3]  # a word from the middle of the greedy reply
    cut = smollm2.generate(story, GenerationParams(max_new_tokens=16, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert cut.text == full.text[: full.text.index(stop)]


def test_truncate_cuts_on_token_boundaries(smollm2):
    text = "The quick brown fox jumps over the lazy dog. " * 20
    cut, flag = smollm2.truncate(text, 10)
    assert flag and text.startswith(cut) and smollm2.count_tokens(cut) == 10
    assert smollm2.truncate("short text", 10) == ("short text", False)


def test_prompts_beyond_the_context_are_refused(smollm2):
    backend = TransformersBackend("smollm2-135m-instruct", dtype="float32", max_context=32)
    backend._tokenizer, backend._model = smollm2.tokenizer, smollm2.model  # share the loaded weights
    with pytest.raises(LMError, match="exceed the context of 32"):
        backend.next_token_logprobs([[{"role": "user", "content": "word " * 50}]], ["1"])


def test_backend_pickles_without_its_weights(smollm2):
    clone = pickle.loads(pickle.dumps(smollm2))
    assert clone._model is None and clone.model_ref == smollm2.model_ref and clone.dtype == "float32"


def test_bf16_head_runs_in_float32(smollm2, chats):
    """In bf16 the output layer is computed in float32: results stay within bf16 body noise of
    float32 and distinct inputs do not collide on rounded logits."""
    from thresher.llm import BackendSpec, get_backend

    device, dtype = pick_device_and_dtype("cpu", "bfloat16")
    bf16 = get_backend(BackendSpec("transformers", "smollm2-135m-instruct", {"dtype": "bfloat16"}))
    candidates = [str(i) for i in range(6)]
    low = bf16.next_token_logprobs(chats, candidates)
    high = smollm2.next_token_logprobs(chats, candidates)
    for a, b in zip(low, high):
        assert max(abs(a.logprobs[c] - b.logprobs[c]) for c in candidates) < 0.35
    assert len({round(x.logprobs["5"], 6) for x in low}) == len(chats)
    bf16.close()


@pytest.mark.gpu
def test_cuda_bf16_matches_cpu_float32(smollm2, chats):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from thresher.llm import BackendSpec, get_backend

    cuda = get_backend(BackendSpec("transformers", "smollm2-135m-instruct", {"device": "cuda"}))
    assert (cuda.device, cuda.dtype) == ("cuda", "bfloat16" if torch.cuda.is_bf16_supported() else "float16")
    candidates = [str(i) for i in range(6)]
    for a, b in zip(cuda.next_token_logprobs(chats, candidates), smollm2.next_token_logprobs(chats, candidates)):
        assert max(abs(a.logprobs[c] - b.logprobs[c]) for c in candidates) < 0.35
    cont = " The capital of France is Paris."
    gpu_score, cpu_score = cuda.score([""], [cont])[0], smollm2.score([""], [cont])[0]
    assert gpu_score.mean_nll == pytest.approx(cpu_score.mean_nll, abs=0.1)
    cuda.close()


def test_cuda_is_refused_clearly_without_a_device():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(LMError, match="no CUDA device"):
        pick_device_and_dtype("cuda", "auto")
    assert pick_device_and_dtype("auto", "auto")[0] == "cpu"
