from __future__ import annotations

import json
import math
import multiprocessing
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
import pytest

from tests.perplexity import perplexity_data as pdata
from thresher.perplexity.ccnet_normalize import normalize_line
from thresher.perplexity.kenlm_scorer import KenLMPerplexityScorer, load_kenlm_model
from thresher.scorers.base import Scorer, check_output, scorer_params_hash

# A bigram model small enough to score by hand (log10 probabilities and back-off weights).
TOY_ARPA = """\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.30103
-0.69897\t</s>\t0
-0.52288\tthe\t-0.17609
-0.60206\tcat\t0

\\2-grams:
-0.30103\t<s> the
-0.22185\tthe cat
-0.39794\tcat </s>

\\end\\
"""


@pytest.fixture
def toy_model(tmp_path):
    path = tmp_path / "toy.arpa"
    path.write_text(TOY_ARPA, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def models_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "perplexity-models"


@pytest.fixture(scope="session")
def wiki_kenlm(sample_data, models_root):
    return pdata.trained_kenlm(sample_data, models_root)


def batch_of(texts, ids=None) -> pa.RecordBatch:
    ids = ids or [f"d{i}" for i in range(len(texts))]
    return pa.record_batch({"doc_id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.large_string())})


def run(scorer, texts, ids=None) -> dict:
    batch = batch_of(texts, ids)
    return check_output(scorer, batch, scorer.score(batch)).to_pydict()


def test_perplexity_formula_by_hand(toy_model):
    # "the cat": p(the|<s>) p(cat|the) p(</s>|cat), all bigrams in the model
    line1 = -0.30103 - 0.22185 - 0.39794
    # "cat the": back off from <s> (-0.30103) to p(cat); "cat the" unseen, backoff(cat) = 0;
    # "the </s>" unseen: backoff(the) + p(</s>)
    line2 = (-0.30103 - 0.60206) + (0 - 0.52288) + (-0.17609 - 0.69897)
    # "the dog": dog is <unk>, reached by backing off from "the"
    line3 = -0.30103 + (-0.17609 - 1.0) + (0 - 0.69897)
    out = run(KenLMPerplexityScorer(model=str(toy_model)), ["The cat\ncat THE", "the dog"])
    assert out["kenlm_lines"] == [2, 1]
    assert out["kenlm_words"] == [4, 2]
    assert out["kenlm_log10_prob"][0] == pytest.approx(line1 + line2, abs=1e-6)
    assert out["kenlm_log10_prob"][1] == pytest.approx(line3, abs=1e-6)
    # pp = 10 ** (-Σ log10 / Σ (words + 1))
    assert out["kenlm_perplexity"][0] == pytest.approx(10 ** (-(line1 + line2) / (4 + 2)), rel=1e-6)
    assert out["kenlm_perplexity"][1] == pytest.approx(10 ** (-line3 / 3), rel=1e-6)


def test_blank_lines_are_skipped_unless_ccnet_mode(toy_model):
    text = "the cat\n\n   \n\t\nthe cat"
    skip = run(KenLMPerplexityScorer(model=str(toy_model)), [text])
    assert skip["kenlm_lines"] == [2] and skip["kenlm_words"] == [4]
    assert skip["kenlm_perplexity"] == run(KenLMPerplexityScorer(model=str(toy_model)), ["the cat\nthe cat"])[
        "kenlm_perplexity"]
    # CCNet's DocLM scores each of the 3 blank lines as "" = p(</s>|<s>) = -0.30103 - 0.69897
    ccnet = run(KenLMPerplexityScorer(model=str(toy_model), skip_blank_lines=False), [text])
    assert ccnet["kenlm_lines"] == [5]
    expected = 2 * (-0.30103 - 0.22185 - 0.39794) + 3 * (-1.0)
    assert ccnet["kenlm_log10_prob"][0] == pytest.approx(expected, abs=1e-6)
    assert ccnet["kenlm_perplexity"][0] == pytest.approx(10 ** (-expected / (4 + 5)), rel=1e-6)


def test_normalisation_is_applied_and_can_be_turned_off(toy_model):
    on = run(KenLMPerplexityScorer(model=str(toy_model)), ["THE Cat", "the cat"])
    assert on["kenlm_perplexity"][0] == on["kenlm_perplexity"][1]
    off = run(KenLMPerplexityScorer(model=str(toy_model), normalise=False), ["THE Cat", "the cat"])
    assert off["kenlm_perplexity"][1] == on["kenlm_perplexity"][1]
    # THE and Cat are unknown words: (-0.30103 - 1.0) + (0 - 1.0) + (0 - 0.69897) = -3 over 3 tokens
    assert off["kenlm_perplexity"][0] == pytest.approx(10.0, rel=1e-6)


def test_contract_nulls_and_row_order(toy_model):
    scorer = KenLMPerplexityScorer(model=str(toy_model))
    assert isinstance(scorer, Scorer)
    assert scorer.output_schema.names == ["doc_id", "kenlm_perplexity", "kenlm_log10_prob", "kenlm_words",
                                          "kenlm_lines"]
    assert scorer.output_schema.field("kenlm_perplexity").type == pa.float64()
    batch = pa.record_batch({"doc_id": pa.array(["z", "a", "m", "b"]),
                             "text": pa.array(["the cat", None, " \n\n", ""], pa.large_string())})
    out = check_output(scorer, batch, scorer.score(batch)).to_pydict()
    assert out["doc_id"] == ["z", "a", "m", "b"]
    assert out["kenlm_perplexity"][1:] == [None, None, None]
    assert out["kenlm_words"] == [2, None, 0, 0] and out["kenlm_lines"] == [1, None, 0, 0]
    assert out["kenlm_log10_prob"][2:] == [0.0, 0.0]
    assert run(scorer, [])["doc_id"] == []


def test_model_is_required_and_must_exist(tmp_path):
    with pytest.raises(TypeError, match="model"):
        KenLMPerplexityScorer()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        KenLMPerplexityScorer(model=str(tmp_path / "missing.arpa")).prepare()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        KenLMPerplexityScorer(model=str(tmp_path / "missing.arpa")).score(batch_of(["x"]))


def test_equals_direct_kenlm_score_exactly(sample_data, wiki_kenlm):
    texts = pdata.evaluation_paragraphs(sample_data, count=20)
    texts += [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")][:30]
    out = run(KenLMPerplexityScorer(model=str(wiki_kenlm)), texts)
    model = load_kenlm_model(wiki_kenlm)
    for i, text in enumerate(texts):
        lines = [normalize_line(line) for line in text.split("\n")]
        lines = [line for line in lines if line.split()]
        log10 = math.fsum(model.score(line, bos=True, eos=True) for line in lines)
        words = sum(len(line.split()) for line in lines)
        assert out["kenlm_log10_prob"][i] == log10
        assert out["kenlm_words"][i] == words and out["kenlm_lines"][i] == len(lines)
        assert out["kenlm_perplexity"][i] == 10.0 ** (-log10 / (words + len(lines)))


def _score_in_worker(payload: bytes) -> list:
    scorer = pickle.loads(payload)
    return scorer.score(batch_of(["the cat", "cat the cat"])).column("kenlm_perplexity").to_pylist()


def test_scorer_pickles_without_its_model(toy_model):
    scorer = KenLMPerplexityScorer(model=str(toy_model))
    here = run(scorer, ["the cat", "cat the cat"])["kenlm_perplexity"]  # model now loaded in this process
    payload = pickle.dumps(scorer)
    assert len(payload) < 1000
    assert pickle.loads(payload) == scorer
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_score_in_worker, payload).result() == here


def test_changed_model_file_changes_cache_key_and_scores(toy_model, tmp_path):
    before = KenLMPerplexityScorer(model=str(toy_model))
    first = run(before, ["the cat"])["kenlm_perplexity"][0]
    toy_model.write_text(TOY_ARPA.replace("-0.22185\tthe cat", "-1.22185\tthe cat"), encoding="utf-8")
    after = KenLMPerplexityScorer(model=str(toy_model))
    assert before.model_fingerprint != after.model_fingerprint
    assert scorer_params_hash(before) != scorer_params_hash(after)
    assert run(after, ["the cat"])["kenlm_perplexity"][0] > first  # the per-process cache reloaded it
    # the same content elsewhere keeps the fingerprint
    copy = tmp_path / "copy.arpa"
    shutil.copy(toy_model, copy)
    assert KenLMPerplexityScorer(model=str(copy)).model_fingerprint == after.model_fingerprint


def test_sentencepiece_pieces_are_the_words(sample_data, tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    from thresher.perplexity.train_kenlm import train_kenlm

    train = pdata.wikitext_documents(sample_data)[:400]  # short lines: SentencePiece skips lines > 4 kB
    corpus = tmp_path / "sp.txt"
    corpus.write_text("\n".join(normalize_line(t) for t in train), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=500, model_type="unigram",
        character_coverage=1.0, minloglevel=2, num_threads=1,
    )
    sp_model = tmp_path / "sp.model"
    model = train_kenlm(train, tmp_path / "lm", order=3, sentencepiece_model=sp_model)
    texts = pdata.evaluation_paragraphs(sample_data, count=5)
    out = run(KenLMPerplexityScorer(model=str(model), sentencepiece_model=str(sp_model)), texts)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    kenlm_model = load_kenlm_model(model)
    for i, text in enumerate(texts):
        pieces = processor.encode(normalize_line(text), out_type=str)
        assert out["kenlm_words"][i] == len(pieces)
        assert out["kenlm_log10_prob"][i] == math.fsum([kenlm_model.score(" ".join(pieces))])


def test_ranks_clean_text_below_corrupted_text(sample_data, wiki_kenlm, record_property):
    clean = pdata.evaluation_paragraphs(sample_data)
    scorer = KenLMPerplexityScorer(model=str(wiki_kenlm))
    clean_pp = run(scorer, clean)["kenlm_perplexity"]
    aucs, paired, pooled = {}, {}, []
    for kind, texts in pdata.corrupted(clean).items():
        bad_pp = run(scorer, texts)["kenlm_perplexity"]
        aucs[kind] = pdata.auc(clean_pp, bad_pp)
        paired[kind] = sum(b > c for c, b in zip(clean_pp, bad_pp)) / len(clean)
        pooled += bad_pp
    aucs["pooled"] = pdata.auc(clean_pp, pooled)
    record_property("kenlm_auc", aucs)
    print("KenLM AUC clean vs corrupted:", {k: round(v, 3) for k, v in aucs.items()}, "paired:", paired)
    assert aucs["pooled"] >= 0.9
    assert aucs["random_chars"] >= 0.95 and aucs["boilerplate"] >= 0.95
    # Shuffling keeps the unigrams; a 1.5 MB reference leaves most bigrams of new articles unseen, so
    # clean paragraphs of odd topics overlap shuffled ones of common topics (measured 0.87-0.95),
    # while every paragraph's own shuffle scores worse than it.
    assert aucs["shuffled"] >= 0.8
    assert paired["shuffled"] >= 0.97


@pytest.mark.parametrize("normalised", [True, False])
def test_fast_line_and_word_counting_equals_str_split(sample_data, normalised):
    from thresher.perplexity.ccnet_normalize import normalize_document
    from thresher.perplexity.kenlm_scorer import _lines_and_words

    texts = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")]
    texts += pdata.evaluation_paragraphs(sample_data, count=20) + [
        "", " ", "\n", "a  b   c", " lead\ntrail \n\n  \n x", "\x01 \x01\nword", "tab\there", "nbsp\xa0inside",
        "— dash — ", "\u0301 \u0301\nok", "a\n\n\nb", "   \n   ",
    ]
    for text in texts:
        document = normalize_document(text) if normalised else text
        for skip in (True, False):
            lines, words = _lines_and_words(document, skip, normalised)
            expected = [line for line in document.split("\n") if not skip or line.split()]
            assert [line.decode("ascii") if isinstance(line, bytes) else line for line in lines] == expected
            if isinstance(lines[0] if lines else "", bytes):
                assert document.isascii()
            assert words == sum(len(line.split()) for line in expected), repr(text[:40])
