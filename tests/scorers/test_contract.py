"""One contract test over the whole scorer registry: every registered scorer (every version) is
built from its name with small real models, scores a small real batch, and keeps the Scorer
contract: same rows, same order, `doc_id` first, exactly the declared schema, the columns its class
declares (what `thresher scorers` lists), parameters a recipe can state, a cheap pickle. A
registration without an entry in TEST_PARAMS fails here, so no scorer skips the contract.

Models: a toy KenLM model, a 1-layer proxy LM trained for two steps, the packaged MiniLM for
embeddings and a ridge head fitted here on real embeddings. The judges and IFD run on
tests/judges' FixedBackend: even the 135M SmolLM2 costs ~10 s of CPU per judge on their long
prompts, and what a model answers is tests/judges' subject, not the contract's.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import pickle
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from tests.judges.scripted import FixedBackend
from tests.perplexity import perplexity_data as pdata
from tests.perplexity.test_kenlm_scorer import TOY_ARPA
from thresher.llm import BackendSpec, register_backend
from thresher.schema import DOCUMENT_SCHEMA, INSTRUCTION_SCHEMA
from thresher.scorers.base import Scorer, check_output
from thresher.scorers.registry import (
    available_scorers,
    build_scorer,
    check_params,
    describe,
    registration,
    registrations,
    scorer_class,
)

FIXED = "contract-fixed-backend"  # a model name only the fixed backend answers to
JUDGE = {"model": FIXED, "max_input_tokens": 64, "max_instruction_tokens": 32}

# Registered name -> its test parameters, given the paths of the test models.
TEST_PARAMS = {
    "heuristics": lambda models: {},
    "langid": lambda models: {},
    "kenlm": lambda models: {"model": models["kenlm"]},
    "lm_perplexity": lambda models: {"model": models["proxy"], "max_tokens": 64},
    "ifd": lambda models: {"model": FIXED, "max_question_tokens": 32, "max_answer_tokens": 32},
    "embed": lambda models: {"backend": "onnx", "max_seq_length": 64},
    "distilled": lambda models: {"head": models["head"]},
    "classifier": lambda models: {"model": models["classifier"]},
    "decontam": lambda models: {"benchmarks": [models["benchmark"]], "cache_dir": models["decontam_cache"]},
    "judge_alpagasus": lambda models: JUDGE,
    "judge_alpagasus_gen": lambda models: JUDGE,
    "judge_ultrafeedback": lambda models: JUDGE,
    "judge_ultrafeedback_gen": lambda models: JUDGE,
    "judge_edu": lambda models: JUDGE,
    "judge_askllm": lambda models: JUDGE,
    "judge_askllm_edu": lambda models: JUDGE,
    "judge_edu_gen": lambda models: JUDGE,
    "judge_deita_complexity": lambda models: JUDGE,
    "judge_deita_complexity_gen": lambda models: JUDGE,
    "judge_deita_quality": lambda models: JUDGE,
    "judge_deita_quality_gen": lambda models: JUDGE,
}


def _c4_pages(sample_data) -> list[str]:
    return [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")]


@pytest.fixture(scope="module")
def source(sample_data) -> pa.RecordBatch:
    """Every column a scorer may read, typed as in the run's tables: C4 pages as `text` and Alpaca
    pairs (with and without input) as the instruction fields, then a row of empty strings. The ids
    are out of order, so a scorer that sorts would show."""
    pairs = json.loads((sample_data / "alpaca_sample.json").read_text(encoding="utf-8"))
    pairs = [p for p in pairs if p["input"]][:2] + [p for p in pairs if not p["input"]][:2]
    rows = [{"text": page[:600], "instruction": p["instruction"], "input": p["input"], "output": p["output"][:400]}
            for page, p in zip(_c4_pages(sample_data), pairs)]
    rows.append(dict.fromkeys(rows[0], ""))
    types = {f.name: f.type for f in (*DOCUMENT_SCHEMA, *INSTRUCTION_SCHEMA)}
    columns = {"doc_id": [f"doc-{i}" for i in (3, 0, 4, 1, 2)], **{c: [r[c] for r in rows] for c in rows[0]}}
    return pa.RecordBatch.from_arrays([pa.array(v, types[c]) for c, v in columns.items()], names=list(columns))


@pytest.fixture(scope="module")
def models(tmp_path_factory, sample_data) -> dict[str, str]:
    from thresher.perplexity.train_proxy import train_proxy

    root = tmp_path_factory.mktemp("contract-models")
    (root / "toy.arpa").write_text(TOY_ARPA, encoding="utf-8")
    proxy = train_proxy(pdata.wiki_articles(sample_data)[:8], root / "proxy", steps=2, vocab_size=600, n_layer=1,
                        n_head=2, n_embd=32, block_size=64, batch_size=2, seed=0, threads=1)
    # A benchmark whose one item is the first C4 page, so that the contract batch has a match.
    (root / "benchmark.jsonl").write_text(json.dumps({"text": _c4_pages(sample_data)[0]}) + "\n", encoding="utf-8")
    return {"kenlm": str(root / "toy.arpa"), "proxy": str(proxy), "head": str(_ridge_head(root, sample_data)),
            "classifier": str(_fasttext_classifier(root, sample_data)), "benchmark": str(root / "benchmark.jsonl"),
            "decontam_cache": str(root / "decontam-cache")}


def _fasttext_classifier(root, sample_data):
    """A fastText classifier as `thresher.classifier.train` saves one: C4 pages vs WikiText-2 paragraphs."""
    import floret

    from thresher.classifier.scorer import save_model
    from thresher.classifier.text import training_lines

    wiki = [line for line in (sample_data / "wikitext2_valid.txt").read_text(encoding="utf-8").splitlines()
            if len(line.strip()) > 200][:64]
    pages = _c4_pages(sample_data)[:64]
    (root / "ft.txt").write_text("".join(training_lines(wiki + pages, [True] * 64 + [False] * 64,
                                                        lowercase=True, max_chars=2000)), encoding="utf-8")
    model = floret.train_supervised(input=str(root / "ft.txt"), mode="fasttext", dim=16, epoch=2, bucket=10_000,
                                    thread=1, seed=0, verbose=0)
    directory, _ = save_model(root / "models" / "classifier_contract", model,
                              {"name": "contract", "text": {"lowercase": True, "max_chars": 2000}})
    return directory


def _ridge_head(root, sample_data):
    """A distilled head as `thresher.embeddings.distill` saves one: ridge regression from MiniLM
    embeddings of real C4 pages to their log word count."""
    from thresher.embeddings.distill import _embed_params, _ridge_solutions, save_head
    from thresher.embeddings.scorer import EmbeddingScorer

    embed = EmbeddingScorer(backend="onnx", max_seq_length=64)
    pages = _c4_pages(sample_data)[:32]
    x = embed.embed(pages).vectors.astype(np.float64)
    y = np.array([math.log1p(len(p.split())) for p in pages])
    (fit,) = _ridge_solutions(x, y, [1.0])
    metadata = {"name": "contract", "target": "log1p(words)", "target_range": [float(y.min()), float(y.max())],
                "embedding": {"params": _embed_params(embed), "model_fingerprint": embed.model_fingerprint,
                              "vector_column": embed.vector_column, "dimension": embed.dimension}}
    directory, _ = save_head(root / "models" / "distilled_contract", fit, metadata)
    return directory


@pytest.fixture(scope="module", autouse=True)
def fixed_backend():
    register_backend(BackendSpec("transformers", FIXED), FixedBackend(reply="3"))


def test_every_registered_scorer_has_test_params():
    names = {r.name for r in registrations()}
    assert names == set(available_scorers())
    untested, unknown = sorted(names - set(TEST_PARAMS)), sorted(set(TEST_PARAMS) - names)
    assert not untested, f"registered without an entry in TEST_PARAMS: {untested}"
    assert not unknown, f"TEST_PARAMS names unregistered scorers: {unknown}"


@pytest.mark.parametrize("key", [r.key for r in registrations()])
def test_scorer_contract(key, models, source):
    reg = registration(key)
    if reg.name not in TEST_PARAMS:
        pytest.fail(f"{key} has no entry in TEST_PARAMS")
    params = TEST_PARAMS[reg.name](models)
    assert check_params(key, params) == [], "the test parameters are not what a recipe could state"
    scorer = build_scorer(key, params)
    cls = type(scorer)

    # What it is: a frozen dataclass of its parameters, with every declared attribute of the protocol.
    assert cls is scorer_class(key) and isinstance(scorer, Scorer)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert scorer.version == reg.version or scorer.version.startswith(reg.version + ".")
    if not set(cls.column_params) & set(params):  # no parameter renames it: the sidecar is the name's
        assert scorer.name == reg.name
    assert scorer.table in (None, "documents", "instructions") and scorer.input_columns[0] == "doc_id"
    if scorer.stage == "judge":  # the judge flow reads `table` and points `cache_dir` at the run
        assert scorer.table is not None and "cache_dir" in {f.name for f in dataclasses.fields(cls)}
    else:
        assert scorer.stage == "score"
    assert inspect.signature(scorer.score).parameters["stats"].default is None

    # What it writes: the class's declared columns, as `thresher scorers` lists them.
    columns = [c.format(name=scorer.name) for c in cls.output_columns]
    assert scorer.output_schema.names == ["doc_id", *columns]
    if scorer.name == reg.name:
        assert list(describe(key).columns) == columns
    assert scorer.perplexity_column is None or scorer.perplexity_column in columns
    assert scorer.score_range is None or scorer.score_range[0] < scorer.score_range[1]

    # Scoring a real batch of the columns it reads, as the shard runner reads them.
    scorer.prepare()
    batch = pa.RecordBatch.from_arrays([source.column(c) for c in scorer.input_columns],
                                       names=list(scorer.input_columns))
    stats: Counter = Counter()
    result = check_output(scorer, batch, scorer.score(batch, stats))  # same rows, order, schema
    assert result.schema.names[0] == "doc_id"
    assert result.column("doc_id").to_pylist() == source.column("doc_id").to_pylist()
    assert any(result.column(i).null_count < result.num_rows for i in range(1, result.num_columns))
    if scorer.stage == "judge":
        assert stats["rows"] == batch.num_rows

    # Shipped to workers without its model (weights would be megabytes).
    payload = pickle.dumps(scorer)
    assert len(payload) < 100_000 and pickle.loads(payload) == scorer
