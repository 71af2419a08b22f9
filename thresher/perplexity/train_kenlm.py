"""Train a CCNet-style KenLM model on reference text.

`train_kenlm(texts_or_files, out_dir)` writes the training text exactly as the KenLM scorer will
see text at scoring time (each line CCNet-normalised, blank lines dropped, optionally turned into
SentencePiece pieces), estimates an n-gram model and returns the model file:

- with KenLM's own `lmplz` (modified Kneser-Ney, interpolated; found in `<repo>/.tools/bin`, which
  `scripts/build_kenlm_tools.sh` builds, or on PATH), then `build_binary` to a probing binary;
- without `lmplz`, with `kaldingram` (pure Python, SRILM-style unmodified back-off Kneser-Ney),
  which writes no `<unk>`: one is added with the log10 probability of the rarest word, so that
  out-of-vocabulary words cost what a singleton costs rather than KenLM's default of -100.

Both are real estimators; they differ (modified vs unmodified discounts, interpolated vs back-off),
so their perplexities on the same text are close, not equal (tests/train/test_kenlm_training.py
pins the tolerance). The backend used is logged and recorded in `<out_dir>/kenlm_train.json` with
the corpus statistics.

KenLM's special tokens `<s>`, `</s>` and `<unk>` are removed from the training text (lmplz refuses
them, kaldingram would count them as words).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from thresher.perplexity.ccnet_normalize import normalize_document
from thresher.perplexity.reference_corpus import CorpusStats, texts_from

__all__ = ["find_kenlm_tool", "train_kenlm", "KenLMTrainingError"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
_SPECIAL_TOKENS = re.compile(r"(?<!\S)(?:<s>|</s>|<unk>)(?!\S)")
BACKENDS = ("auto", "lmplz", "kaldingram")
# The `kenlm` query module (kenlm / kenlm-ex wheels) and build_binary are compiled with KenLM's
# default KENLM_MAX_ORDER=6: a higher-order model could be estimated but not loaded.
MAX_ORDER = 6


class KenLMTrainingError(RuntimeError):
    """lmplz/build_binary/kaldingram failed; the message carries the tool's own words."""


def find_kenlm_tool(name: str) -> Path | None:
    """`$THRESHER_KENLM_BIN/<name>`, `<repo>/.tools/bin/<name>`, or `<name>` on PATH; else None."""
    candidates = []
    if os.environ.get("THRESHER_KENLM_BIN"):
        candidates.append(Path(os.environ["THRESHER_KENLM_BIN"]) / name)
    candidates.append(REPO_ROOT / ".tools" / "bin" / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def _write_training_text(
    texts: Iterable[str], path: Path, normalise: bool, sentencepiece_model: str | None
) -> dict:
    processor = None
    if sentencepiece_model is not None:
        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=str(sentencepiece_model))
    lines = words = 0
    with open(path, "wb") as out:
        for text in texts:
            if not text:
                continue
            document = normalize_document(text) if normalise else text
            document = _SPECIAL_TOKENS.sub(" ", document)
            kept = [line for line in document.split("\n") if line and not line.isspace()]
            if processor is not None:
                kept = [" ".join(pieces) for pieces in processor.encode(kept, out_type=str) if pieces]
            for line in kept:
                # Tokens exactly as kenlm.Model.score splits a sentence: the UTF-8 bytes on ASCII
                # whitespace (U+00A0 and other Unicode spaces stay inside a token, as when scoring).
                tokens = line.encode("utf-8").split()
                if tokens:
                    out.write(b" ".join(tokens))
                    out.write(b"\n")
                    lines += 1
                    words += len(tokens)
    return {"lines": lines, "words": words}


def _run(command: list[str], log_path: Path, what: str) -> None:
    with open(log_path, "ab") as log_file:
        log_file.write(("$ " + " ".join(command) + "\n").encode())
        log_file.flush()
        completed = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise KenLMTrainingError(f"{what} failed (exit {completed.returncode}); end of {log_path}:\n" + "\n".join(tail))


def _train_lmplz(lmplz: Path, text: Path, arpa: Path, order: int, memory: str, log_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="lmplz-", dir=arpa.parent) as tmp:
        _run(
            [str(lmplz), "-o", str(order), "-S", memory, "-T", tmp, "--discount_fallback",
             "--text", str(text), "--arpa", str(arpa)],
            log_path,
            "lmplz",
        )


def _train_kaldingram(text: Path, arpa: Path, order: int) -> None:
    import functools

    import kaldingram.train as kt

    bar = kt.tqdm
    kt.tqdm = functools.partial(bar, disable=True)  # it draws progress bars on stderr otherwise
    try:
        counts = kt.NgramCounts(order)
        counts.add_raw_counts_from_file(str(text))
        counts.cal_discounting_constants()
        counts.cal_f()
        counts.cal_bow()
        # latin-1 round-trips the UTF-8 bytes it read (kaldingram is byte-oriented)
        with open(arpa, "w", encoding="latin-1") as out:
            counts.print_as_arpa(fout=out)
    finally:
        kt.tqdm = bar
    _add_unk(arpa)


def _add_unk(arpa: Path) -> None:
    """Give an ARPA file without `<unk>` one, with the log10 probability of its rarest unigram."""
    data = arpa.read_bytes()
    header_end = data.index(b"\\1-grams:\n")
    unigrams_end = data.index(b"\n\n", header_end)
    unigram_lines = data[header_end + len(b"\\1-grams:\n") : unigrams_end].split(b"\n")
    if any(line.split(b"\t")[1] == b"<unk>" for line in unigram_lines if b"\t" in line):
        return
    floor = min(float(line.split(b"\t")[0]) for line in unigram_lines
                if b"\t" in line and line.split(b"\t")[1] not in (b"<s>",))
    count = re.search(rb"ngram 1=(\d+)", data)
    assert count is not None
    header = data[:header_end].replace(count.group(0), b"ngram 1=%d" % (int(count.group(1)) + 1), 1)
    unk = b"%.7f\t<unk>\n" % floor
    arpa.write_bytes(header + b"\\1-grams:\n" + unk + data[header_end + len(b"\\1-grams:\n") :])


def train_kenlm(
    texts_or_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    order: int = 5,
    normalise: bool = True,
    *,
    sentencepiece_model: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    binary: bool = True,
    memory: str = "20%",
    format: str = "auto",
    text_field: str | None = None,
    keep_text: bool = False,
) -> Path:
    """Train an order-`order` KenLM model on reference text; returns the model file.

    texts_or_files: `str` items are document texts, `os.PathLike` items are files, globs or
    directories (see `thresher.perplexity.reference_corpus`). `backend`: "auto" (lmplz when found, else
    kaldingram), "lmplz" or "kaldingram". `binary`: also build `model.binary` with build_binary
    (returned when built; the ARPA stays beside it). `memory`: lmplz's -S (share of RAM or size).
    Returns `<out_dir>/model.binary` or `<out_dir>/model.arpa`.
    """
    if not 2 <= order <= MAX_ORDER:
        raise ValueError(f"order must be between 2 and {MAX_ORDER} (KenLM's query module loads at most "
                         f"order {MAX_ORDER}), got {order}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    lmplz = find_kenlm_tool("lmplz") if backend in ("auto", "lmplz") else None
    if backend == "lmplz" and lmplz is None:
        raise KenLMTrainingError(
            "lmplz not found in $THRESHER_KENLM_BIN, <repo>/.tools/bin or PATH: run scripts/build_kenlm_tools.sh"
        )
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    stats = CorpusStats()
    text_path = out / "train.txt"
    counts = _write_training_text(
        texts_from(texts_or_files, format=format, text_field=text_field, stats=stats),
        text_path, normalise, None if sentencepiece_model is None else str(sentencepiece_model),
    )
    if counts["lines"] == 0:
        text_path.unlink()
        raise ValueError("no training text: every input document was empty after normalisation")

    arpa = out / "model.arpa"
    log_path = out / "train.log"
    log_path.write_text("", encoding="utf-8")
    used = "lmplz" if lmplz is not None else "kaldingram"
    log.info("training an order-%d KenLM model with %s on %d lines", order, used, counts["lines"])
    if lmplz is not None:
        _train_lmplz(lmplz, text_path, arpa, order, memory, log_path)
    else:
        _train_kaldingram(text_path, arpa, order)

    model = arpa
    build_binary = find_kenlm_tool("build_binary") if binary else None
    if binary and build_binary is None:
        log.info("build_binary not found: returning the ARPA model (loads more slowly)")
    if build_binary is not None:
        binary_path = out / "model.binary"
        _run([str(build_binary), str(arpa), str(binary_path)], log_path, "build_binary")
        model = binary_path
    if not keep_text:
        text_path.unlink()

    vocabulary = re.search(rb"ngram 1=(\d+)", arpa.read_bytes()[:4096])
    metadata = {
        "backend": used,
        "lmplz": str(lmplz) if lmplz else None,
        "order": order,
        "normalise": normalise,
        "sentencepiece_model": None if sentencepiece_model is None else str(sentencepiece_model),
        "model": model.name,
        "arpa": arpa.name,
        "vocabulary": int(vocabulary.group(1)) if vocabulary else None,
        "training_lines": counts["lines"],
        "training_words": counts["words"],
        "corpus": stats.as_dict(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "kenlm_train.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    log.info("KenLM model (%s) written to %s in %.1f s", used, model, metadata["seconds"])
    return model
