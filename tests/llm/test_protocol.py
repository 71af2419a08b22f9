"""The backend protocol, specs and the pieces that need no model."""

from __future__ import annotations

import pickle

import pytest

from thresher.llm import BackendSpec, Capability, CapabilityError, GenerationParams, get_backend, require
from thresher.llm.openai_http import OpenAIHTTPBackend
from thresher.llm.protocol import ContinuationScore, LMBackend, trim_at_stop, validate_chat


def test_trim_at_stop_cuts_at_the_earliest_stop_string():
    assert trim_at_stop("4\nbecause", ["\n"]) == ("4", True)
    assert trim_at_stop("a STOP b END c", ["END", "STOP"]) == ("a ", True)
    assert trim_at_stop("no stop here", ["\n", ""]) == ("no stop here", False)


def test_generation_params_validate():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationParams(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationParams(temperature=-1)
    assert GenerationParams(stop=["\n"]).stop == ("\n",)


def test_validate_chat_rejects_bad_roles_and_content():
    validate_chat([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    with pytest.raises(ValueError, match="role"):
        validate_chat([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="string"):
        validate_chat([{"role": "user", "content": None}])
    with pytest.raises(ValueError, match="empty"):
        validate_chat([])


def test_continuation_score_perplexity():
    s = ContinuationScore((-1.0, -3.0))
    assert s.mean_nll == pytest.approx(2.0)
    assert s.perplexity == pytest.approx(7.389, rel=1e-3)
    assert ContinuationScore(()).n_tokens == 0


def test_require_names_what_is_missing():
    http = OpenAIHTTPBackend("m", "http://127.0.0.1:9/v1")
    assert isinstance(http, LMBackend)  # the protocol is structural
    assert http.capabilities == {Capability.GENERATE}
    with pytest.raises(CapabilityError, match="next_token_logprobs.*declares generate"):
        require(http, Capability.NEXT_TOKEN_LOGPROBS)
    with_logprobs = OpenAIHTTPBackend("m", "http://127.0.0.1:9/v1", logprobs=True, tokenizer="x")
    require(with_logprobs, Capability.NEXT_TOKEN_LOGPROBS, Capability.TOKENIZE)
    with pytest.raises(CapabilityError, match="score"):
        require(with_logprobs, Capability.SCORE)


def test_backend_spec_builds_once_per_process_and_pickles():
    spec = BackendSpec("openai", "served-model", {"base_url": "http://127.0.0.1:9/v1", "concurrency": 3})
    first = get_backend(spec)
    assert get_backend(BackendSpec("openai", "served-model", {"concurrency": 3, "base_url": "http://127.0.0.1:9/v1"})) \
        is first
    assert first.concurrency == 3
    assert pickle.loads(pickle.dumps(spec)) == spec
    restored = pickle.loads(pickle.dumps(first))
    assert restored.base_url == first.base_url and restored.stats.requests == 0


def test_backend_spec_rejects_unknown_kinds_and_options():
    with pytest.raises(ValueError, match="unknown backend kind"):
        BackendSpec("gpt-cloud", "m")
    with pytest.raises(ValueError, match="bad options"):
        BackendSpec("openai", "m", {"no_such_option": 1}).build()


def test_http_backend_keeps_no_secret_in_its_parameters(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret")
    backend = OpenAIHTTPBackend("m", "http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    assert "sk-secret" not in repr(vars(backend)) and "sk-secret" not in backend.model_id


@pytest.mark.parametrize("kind", ["llama_cpp", "vllm"])
def test_optional_backends_fail_clearly_when_not_installed(kind):
    import importlib.util

    package = {"llama_cpp": "llama_cpp", "vllm": "vllm"}[kind]
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    from thresher.llm import LMError

    with pytest.raises(LMError, match=f"pip install {'llama-cpp-python' if kind == 'llama_cpp' else 'vllm'}"):
        BackendSpec(kind, "qwen2.5-coder-0.5b-instruct").build()
