"""The static-embedding path: offline, deterministic distillation of the packaged MiniLM; the
StaticEncoder's contract and its parity with model2vec; and its quality on the planted paraphrases
next to MiniLM's.

The packaged static model is distilled once into the model cache (`$THRESHER_CACHE/models/static`,
~1-2 minutes on 2 cores the first time, then found there); the determinism test distils a small
vocabulary (tokens starting with "t") twice instead, which costs seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import copy_run
from thresher.embeddings import static as static_module
from thresher.embeddings.config import EmbedConfig, SemDedupConfig
from thresher.embeddings.models import EmbeddingModelError, get_encoder, locate_embedding_model, located
from thresher.embeddings.semdedup import groups_path, semdedup_table
from thresher.embeddings.static import (
    DEFAULT_SETTINGS,
    DISTILL_INFO,
    REFERENCE_TEXT,
    DistillSettings,
    StaticEncoder,
    distill,
    static_files,
)
from thresher.scorers.apply import score_shard
from thresher.scorers.base import check_output

STATIC = "all-minilm-l6-v2-static"


@pytest.fixture(scope="module")
def static_model():
    files = located(STATIC, None)
    _encoder()  # loading distils it into the model cache the first time
    return files


def _encoder(max_seq_length: int | None = None) -> StaticEncoder:
    return get_encoder(STATIC, onnx_file=None, backend="auto", device="cpu", dtype="auto",
                       max_seq_length=max_seq_length, batch_size=64, threads=None, trust_remote_code=False,
                       fingerprint=None)


def test_distillation_is_offline_and_deterministic(tmp_path, monkeypatch):
    import model2vec.distill.distillation as m2v

    asked = []
    monkeypatch.setattr(m2v, "model_info", lambda *a, **k: asked.append(a))  # the Hub's model card lookup
    source = locate_embedding_model("all-minilm-l6-v2")
    # tokens starting with "t" (~1,700) and the special tokens: enough for PCA to 256 dimensions
    small = r"(?!t|\[[A-Z])"
    a = distill(source, tmp_path / "a", token_remove_pattern=small)
    b = distill(source, tmp_path / "b", token_remove_pattern=small)
    assert not asked
    for name in ("model.safetensors", "tokenizer.json", "config.json", DISTILL_INFO):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not [p for p in a.rglob("*") if p.suffix in (".bin", ".pkl", ".pt", ".pickle")]
    config = json.loads((a / "config.json").read_text())
    assert config["model_type"] == "model2vec" and config["hidden_dim"] == 256 and config["apply_pca"] == 256
    assert str(source.directory) not in (a / "config.json").read_text()  # no path of this machine
    encoder = StaticEncoder(static_files("small", a, "path"), 100_000, 64)
    assert 1000 < encoder.table.shape[0] < 3000 and encoder.table.shape[1] == 256
    # the common component is removed: the reference text's token vectors sum to ~0 (float16 rounding)
    total, count, _ = encoder._encode([REFERENCE_TEXT])
    typical = np.linalg.norm(encoder.table, axis=1).mean()
    assert count[0] > 50 and np.linalg.norm(total[0]) / count[0] < 0.01 * typical


def test_locating_a_static_model_distils_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("THRESHER_CACHE", str(tmp_path))
    files = locate_embedding_model(STATIC)  # what `thresher validate` and building a scorer do
    source = locate_embedding_model("all-minilm-l6-v2")
    assert files.static and files.dimension == 256 and files.max_seq_length == 512
    assert files.directory.parent == tmp_path / "models" / "static" and not files.directory.exists()
    assert files.fingerprint() == DEFAULT_SETTINGS.key(source.fingerprint()) and files.distill_from == source
    assert not list(tmp_path.rglob("*.safetensors"))


def test_packaged_static_model_in_the_cache(static_model):
    source = locate_embedding_model("all-minilm-l6-v2")
    assert static_model.static and static_model.dimension == 256 and static_model.max_seq_length == 512
    assert static_model.directory.name == f"{STATIC}-{DEFAULT_SETTINGS.key(source.fingerprint())}"
    assert locate_embedding_model(STATIC).fingerprint() == static_model.fingerprint()  # made or not
    info = json.loads((static_model.directory / DISTILL_INFO).read_text())
    assert info["source_fingerprint"] == source.fingerprint() and info["source"] == "all-minilm-l6-v2"
    # a change of settings or of the source's files gives another directory, so a change distils again
    assert DistillSettings(pca_dims=128).key(source.fingerprint()) != DEFAULT_SETTINGS.key(source.fingerprint())
    assert DEFAULT_SETTINGS.key("other") != DEFAULT_SETTINGS.key(source.fingerprint())
    # the same model by path, and backend static on the transformer model, resolve to the same directory
    by_path = locate_embedding_model(str(static_model.directory))
    assert by_path.directory == static_model.directory and by_path.origin == "path" and by_path.dimension == 256
    assert located("all-minilm-l6-v2", None, "static").directory == static_model.directory
    with pytest.raises(EmbeddingModelError, match="no ONNX export"):
        locate_embedding_model(STATIC, onnx_file=str(source.onnx_file))


def test_encoder_contract_and_parity_with_model2vec(static_model, sample_data, monkeypatch):
    from model2vec import StaticModel

    records = json.loads((sample_data / "alpaca_sample.json").read_text())[:40]
    c4 = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()[:10]]
    texts = [f"{r['instruction']}\n\n{r['output']}" for r in records] + c4 + ["", "☃☃☃"]
    encoder = _encoder()
    out = encoder.encode(texts)
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (len(texts), 256)
    assert out.tokens.dtype == np.int32 and out.truncated.dtype == bool
    norms = np.linalg.norm(out.vectors, axis=1)
    np.testing.assert_allclose(norms[:-2], 1.0, atol=1e-5)
    # no known token (empty, or only unknown characters): the zero vector, similar to nothing
    assert norms[-2:].tolist() == [0.0, 0.0] and out.tokens[-2:].tolist() == [0, 0]
    assert out.tokens.max() == 512 and out.truncated.any() and not out.truncated[:40].any()
    assert (out.truncated == (out.tokens == 512))[:-2].all()  # none of these has exactly 512 tokens
    # the same vectors as model2vec's own encode (it keeps float16; cosine, not bit equality)
    reference = StaticModel.from_pretrained(str(static_model.directory)).encode(texts[:-2])
    assert (np.sum(reference * out.vectors[:-2], axis=1) > 0.999).all()
    # batch composition does not matter, and a shorter max_seq_length cuts and flags
    np.testing.assert_array_equal(encoder.encode(texts[::-1]).vectors[::-1], out.vectors)
    short = _encoder(max_seq_length=16).encode(texts[:40])
    assert short.tokens.max() == 16 and (short.truncated == (out.tokens[:40] > 16)).all()
    # long texts are tokenised from a prefix first: the same tokens as tokenising them whole
    monkeypatch.setattr(static_module, "PREFIX_CHARS_PER_TOKEN", 32)  # = the whole (cut) text
    whole = encoder.encode(texts)
    assert (whole.tokens == out.tokens).all() and (whole.truncated == out.truncated).all()
    np.testing.assert_array_equal(whole.vectors, out.vectors)


def test_static_backend_through_the_scorer(static_model):
    scorer = EmbedConfig(model=STATIC).scorer()
    assert scorer.dimension == 256
    batch = pa.RecordBatch.from_pydict({"doc_id": ["a", "b", "c"], "text": ["a red apple", None, ""]})
    out = scorer.score(batch)
    check_output(scorer, batch, out)
    assert out.column("embed_vector").null_count == 1 and out.column("embed_tokens").to_pylist() == [3, None, 0]
    with pytest.raises(ValueError, match="onnx_file does not apply"):
        EmbedConfig(backend="static", onnx_file="x.onnx")
    with pytest.raises(EmbeddingModelError, match="backend static or auto"):
        get_encoder(STATIC, onnx_file=None, backend="onnx", device="cpu", dtype="auto", max_seq_length=None,
                    batch_size=8, threads=None, trust_remote_code=False, fingerprint=None)


def _recall(run, pairs) -> tuple[float, int]:
    groups = {r["doc_id"]: r["group_id"] for r in pq.read_table(groups_path(run, "instructions")).to_pylist()}
    recall = float(np.mean([a in groups and groups.get(a) == groups.get(b) for a, b in pairs]))
    members = {d for pair in pairs for d in pair}
    return recall, len(set(groups) - members)


def test_semdedup_quality_against_minilm(embedded_run, planted, embed_config, static_model, tmp_path):
    """SemDeDup over the same 792 instructions with MiniLM (int8 ONNX, the session's embeddings) and
    with the static model, each at a threshold that lets ~25 of the ~313,000 unrelated pairs through
    (measured over all pairs of this corpus: MiniLM 0.70 -> 25, static 0.85 -> 24); k-means as in
    test_semdedup (4 clusters). Measured: recall MiniLM 0.91, static 0.51 (a random-vector
    baseline: 0.0 at any threshold that passes few unrelated pairs)."""
    from thresher.storage.run_dir import RunDir

    run = RunDir(copy_run(embedded_run.root, tmp_path / "run"))
    static = EmbedConfig(model=STATIC, tag="static").scorer()
    for table, shard_id, _ in run.data_parts():
        score_shard(run, static, table, shard_id)
    semdedup_table(run, SemDedupConfig(target_cluster_size=250, threshold=0.70), embed_config.scorer(),
                   "instructions")
    minilm_recall, minilm_other = _recall(run, planted.pairs)
    semdedup_table(run, SemDedupConfig(target_cluster_size=250, threshold=0.85), static, "instructions")
    static_recall, static_other = _recall(run, planted.pairs)
    print(f"\nSemDeDup recall of {len(planted.pairs)} planted pairs: MiniLM int8 @0.70 {minilm_recall:.3f} "
          f"({minilm_other} other rows grouped), static @0.85 {static_recall:.3f} ({static_other} other rows grouped)")
    assert static_recall >= 0.4 and static_other <= 60
    assert minilm_recall >= 0.8
