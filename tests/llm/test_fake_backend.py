"""The fake backend that mechanics tests use instead of real models (tests/fake_backend.py): it
implements the whole protocol, deterministically, and is selected through a BackendSpec."""

from __future__ import annotations

import pickle

import pytest

from tests.fake_backend import FakeBackend
from thresher.judges.scoring import expected_score
from thresher.llm import Capability, CapabilityError, GenerationParams, LMBackend, LMError, get_backend, require

CHATS = [[{"role": "system", "content": "Rate the answer from 0 to 5."},
          {"role": "user", "content": f"Instruction: question {i}\nResponse: answer number {i} " + "word " * i}]
         for i in range(8)]


def test_declares_and_serves_every_capability():
    fake = FakeBackend()
    assert isinstance(fake, LMBackend) and fake.capabilities == frozenset(Capability)
    require(fake, *Capability)
    assert fake.generate(CHATS[:2], GenerationParams(max_new_tokens=8))[0].text
    assert fake.next_token_logprobs(CHATS[:2], ["0", "1"])[0].logprobs.keys() == {"0", "1"}
    assert fake.score(["a b"], ["b c"])[0].n_tokens == 2
    assert fake.calls == {"generate": 1, "next_token_logprobs": 1, "score": 1}
    assert fake.rows == {"generate": 2, "next_token_logprobs": 2, "score": 1}
    generate_only = FakeBackend(capabilities=["generate"])
    with pytest.raises(CapabilityError, match="next_token_logprobs"):
        require(generate_only, Capability.NEXT_TOKEN_LOGPROBS)
    with pytest.raises(CapabilityError):
        generate_only.score(["a"], ["b"])


def test_outputs_are_deterministic_and_varied():
    a, b = FakeBackend(), FakeBackend()
    candidates = [str(i) for i in range(6)]
    first, again = a.next_token_logprobs(CHATS, candidates), b.next_token_logprobs(CHATS[::-1], candidates)[::-1]
    assert [x.logprobs for x in first] == [x.logprobs for x in again]
    scores = [expected_score(x.logprobs) for x in first]
    assert len({round(s.score, 6) for s in scores}) == len(CHATS) and all(0.5 < s.mass < 1 for s in scores)
    params = GenerationParams(max_new_tokens=40)
    assert [g.text for g in a.generate(CHATS, params)] == [g.text for g in b.generate(CHATS, params)]
    assert len({g.text for g in a.generate(CHATS, params)}) == len(CHATS)
    assert FakeBackend(seed=1).model_id != a.model_id and FakeBackend().model_id == a.model_id


def test_generation_honours_length_stop_and_format():
    fake = FakeBackend(reply_format="Rating: {score}\n{text}")
    (full,) = fake.generate(CHATS[:1], GenerationParams(max_new_tokens=200))
    assert full.text.startswith("Rating: ") and 1 <= int(full.text.split()[1]) <= 5 and full.finish_reason == "stop"
    (short,) = fake.generate(CHATS[:1], GenerationParams(max_new_tokens=2))
    assert (short.text, short.finish_reason, short.completion_tokens) == (" ".join(full.text.split()[:2]), "length", 2)
    (stopped,) = fake.generate(CHATS[:1], GenerationParams(max_new_tokens=200, stop=("\n",)))
    assert stopped.text == full.text.split("\n")[0] and stopped.finish_reason == "stop"


def test_a_related_prefix_makes_the_answer_likelier():
    fake = FakeBackend()
    answer = " Paris is the capital of France."
    related, unrelated, alone = fake.score(["What is the capital of France?", "Name a yellow fruit.", ""],
                                           [answer] * 3)
    assert related.n_tokens == unrelated.n_tokens == alone.n_tokens == 6
    assert related.mean_nll < unrelated.mean_nll and unrelated.token_logprobs == alone.token_logprobs
    cut = FakeBackend(max_context=4).score(["one two three four"], [" five six"])[0]
    assert cut.truncated and cut.n_tokens == 2


def test_tokenize_cuts_prefixes():
    fake = FakeBackend()
    text = "The quick brown fox jumps over the lazy dog. " * 3
    cut, flag = fake.truncate(text, 5)
    assert flag and text.startswith(cut) and fake.count_tokens(cut) == 5 and cut == "The quick brown fox jumps"
    assert fake.truncate("short text", 5) == ("short text", False)


def test_failures_can_be_injected_and_context_is_enforced():
    fake = FakeBackend(fail_first=1)
    with pytest.raises(LMError, match="injected failure"):
        fake.generate(CHATS[:1], GenerationParams())
    assert fake.generate(CHATS[:1], GenerationParams(max_new_tokens=4))
    with pytest.raises(LMError, match="exceed the context"):
        FakeBackend(max_context=5).next_token_logprobs(CHATS[:1], ["1"])


def test_is_selected_through_a_backend_spec_and_pickles(fake_lm):
    backend = get_backend(fake_lm.spec("judge", seed=3))
    assert isinstance(backend, FakeBackend) and backend.seed == 3 and backend is fake_lm.backend("judge", seed=3)
    assert pickle.loads(pickle.dumps(backend)).model_id == backend.model_id
