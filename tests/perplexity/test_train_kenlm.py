from __future__ import annotations

import gzip
import json
import logging
import math
import statistics
from pathlib import Path

import pyarrow as pa
import pytest

from tests.perplexity import perplexity_data as pdata
from thresher.perplexity import train_kenlm as kenlm_training
from thresher.perplexity.kenlm_scorer import KenLMPerplexityScorer, load_kenlm_model
from thresher.perplexity.train_kenlm import KenLMTrainingError, find_kenlm_tool, train_kenlm

needs_lmplz = pytest.mark.skipif(
    find_kenlm_tool("lmplz") is None, reason="lmplz not built: run scripts/build_kenlm_tools.sh"
)

# kaldingram (unmodified back-off Kneser-Ney) vs lmplz (modified, interpolated Kneser-Ney) on the
# same toy corpus (400 WikiText-2 paragraphs, order 3), on 40 held-out Wikipedia paragraphs: the ratio
# of per-document perplexities measured 0.917-1.049, median distance from 1 of 3.8 %.
KALDINGRAM_VS_LMPLZ_MAX_RATIO = 1.25
KALDINGRAM_VS_LMPLZ_MEDIAN_RATIO = 1.08


def perplexities(model: Path, texts: list[str]) -> list[float]:
    batch = pa.record_batch({"doc_id": pa.array([str(i) for i in range(len(texts))]), "text": pa.array(texts)})
    return KenLMPerplexityScorer(model=str(model)).score(batch).column("kenlm_perplexity").to_pylist()


@needs_lmplz
def test_kaldingram_is_close_to_but_not_lmplz(sample_data, tmp_path):
    toy = pdata.wikitext_documents(sample_data)[:400]  # ~200 kB
    held_out = pdata.evaluation_paragraphs(sample_data, count=40)
    lmplz_model = train_kenlm(toy, tmp_path / "lmplz", order=3, backend="lmplz")
    kaldi_model = train_kenlm(toy, tmp_path / "kaldingram", order=3, backend="kaldingram")
    meta = {b: json.loads((tmp_path / b / "kenlm_train.json").read_text()) for b in ("lmplz", "kaldingram")}
    assert meta["lmplz"]["backend"] == "lmplz" and meta["kaldingram"]["backend"] == "kaldingram"
    assert meta["lmplz"]["training_words"] == meta["kaldingram"]["training_words"]  # the same text
    # same vocabulary: lmplz writes <s>, </s>, <unk> + words; kaldingram the same once <unk> is added
    assert meta["lmplz"]["vocabulary"] == meta["kaldingram"]["vocabulary"]
    ratios = [a / b for a, b in zip(perplexities(kaldi_model, held_out), perplexities(lmplz_model, held_out))]
    worst = max(max(ratios), 1 / min(ratios))
    median = math.exp(statistics.median(abs(math.log(r)) for r in ratios))
    print(f"kaldingram/lmplz perplexity ratio: median {median:.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")
    assert worst < KALDINGRAM_VS_LMPLZ_MAX_RATIO and median < KALDINGRAM_VS_LMPLZ_MEDIAN_RATIO
    assert median > 1.001  # two different estimators, not one model twice


def test_training_text_is_normalised_and_cleaned_like_scoring_text(tmp_path):
    texts = ["The Café opened in 1998 <s> and </s> closed", "“Quoted” TEXT\n\n\tCafé <unk> again 42"] * 5
    model = train_kenlm(texts, tmp_path / "m", order=2, backend="kaldingram", keep_text=True)
    assert (tmp_path / "m" / "train.txt").read_text(encoding="utf-8").split("\n")[:3] == [
        "the cafe opened in 0000 and closed", '"quoted" text', "cafe again 00"]
    arpa = (tmp_path / "m" / "model.arpa").read_text(encoding="utf-8")
    unigrams = {line.split("\t")[1] for line in arpa.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()}
    assert {"cafe", "0000", '"quoted"', "<unk>", "<s>", "</s>"} <= unigrams
    assert not {"Café", "The", "1998", "“Quoted”"} & unigrams
    assert model.name in ("model.binary", "model.arpa")


def test_kaldingram_arpa_gets_an_unk_entry_kenlm_uses(tmp_path):
    model = train_kenlm(["a b c a b", "b c a c", "c a b b"], tmp_path / "m", order=2, backend="kaldingram",
                        binary=False)
    arpa = model.read_text(encoding="utf-8")
    header = int(arpa.split("ngram 1=")[1].split("\n")[0])
    unigram_lines = arpa.split("\\1-grams:\n")[1].split("\n\n")[0].splitlines()
    assert header == len(unigram_lines)
    unk = next(float(line.split("\t")[0]) for line in unigram_lines if line.split("\t")[1] == "<unk>")
    rarest = min(float(line.split("\t")[0]) for line in unigram_lines if line.split("\t")[1] not in ("<s>", "<unk>"))
    assert unk == rarest
    scores = list(load_kenlm_model(model).full_scores("zebra", bos=False, eos=False))
    assert scores[0][2] is True and scores[0][0] == pytest.approx(unk, abs=1e-6)  # OOV scored with <unk>


def test_auto_falls_back_to_kaldingram_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(kenlm_training, "find_kenlm_tool", lambda name: None)
    with caplog.at_level(logging.INFO, logger="thresher.perplexity.train_kenlm"):
        model = train_kenlm(["one two three", "two three four"], tmp_path / "m", order=2)
    assert model.name == "model.arpa"  # no build_binary either
    assert json.loads((tmp_path / "m" / "kenlm_train.json").read_text())["backend"] == "kaldingram"
    assert any("kaldingram" in record.getMessage() for record in caplog.records)
    with pytest.raises(KenLMTrainingError, match="build_kenlm_tools.sh"):
        train_kenlm(["one two"], tmp_path / "n", order=2, backend="lmplz")


@needs_lmplz
def test_lmplz_is_used_when_built_and_its_errors_surface(tmp_path):
    model = train_kenlm(["one two three", "two three four", "three four five"] * 3, tmp_path / "m", order=2)
    meta = json.loads((tmp_path / "m" / "kenlm_train.json").read_text())
    assert meta["backend"] == "lmplz" and model.name == "model.binary"
    with pytest.raises(KenLMTrainingError, match="lmplz failed") as error:
        train_kenlm(["one two three"], tmp_path / "bad", order=2, memory="lots")
    assert "lots" in str(error.value)  # lmplz's own complaint, from the end of train.log


def test_reads_txt_files_and_thresher_input_formats(sample_data, tmp_path):
    text_file = tmp_path / "ref.txt"
    text_file.write_bytes(b"first document\r\n\r\nsecond document\n\xff broken utf8 line\n")
    c4_file = tmp_path / "c4.json.gz"
    records = [json.loads(line) for line in (sample_data / "c4_sample.jsonl").open(encoding="utf-8")][:20]
    with gzip.open(c4_file, "wt", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
        out.write("{not json\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "more.txt").write_text("third document\n", encoding="utf-8")
    (folder / "README.md").write_text("# not an input\n", encoding="utf-8")
    train_kenlm([text_file, c4_file, folder], tmp_path / "m", order=2, backend="kaldingram", binary=False)
    corpus = json.loads((tmp_path / "m" / "kenlm_train.json").read_text())["corpus"]
    assert corpus["documents"] == 3 + 20 + 1
    assert corpus["invalid_utf8_lines"] == 1 and corpus["quarantined_rows"] == 1
    assert [Path(f).name for f in corpus["files"]] == ["ref.txt", "c4.json.gz", "more.txt"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_kenlm([tmp_path / "missing.txt"], tmp_path / "x", order=2)


def test_nothing_to_train_on_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no training text"):
        train_kenlm(["", "   \n\t", "\x00\x01"], tmp_path / "m", order=2, backend="kaldingram")
    for order in (1, 7):
        with pytest.raises(ValueError, match="order must be between 2 and 6"):
            train_kenlm(["a b"], tmp_path / "m", order=order)
