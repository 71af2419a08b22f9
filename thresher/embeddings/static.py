"""Static embeddings: a model2vec model distilled from a sentence encoder, and the encoder that uses it.

A static model is one vector per token of the vocabulary; a text's embedding is the mean of its
tokens' vectors, L2-normalised. No attention, no forward pass: embedding costs a tokenizer call and
a sparse matrix product, 95-200x faster than MiniLM int8 ONNX on a CPU core
(bench/embed_throughput.py), at a measured quality loss (tests/embeddings/test_static.py; the
README's embeddings section).

Distillation (model2vec's `distill_from_model`, Tulkens & van Dongen 2024): every token of the
source model's vocabulary goes through the source model once as `[CLS] token [SEP]`, its output is
mean-pooled; the vectors are reduced by PCA to `pca_dims` and scaled by SIF weights (frequent
tokens count less). thresher then removes the common component: it subtracts the mean vector of
a built-in reference text (`REFERENCE_TEXT`, plain English prose written for this purpose, about
other topics than any test corpus) from every token vector. Without it unrelated texts have a
cosine similarity of ~0.38 at the median (the shared direction of frequent tokens), with it ~0.20,
and planted-pair recall at 1 unrelated pair in 1,000 rises from 0.81 to 0.91 (at 1 in 10,000:
0.63 to 0.64; MiniLM: 0.98 and 0.92; bench/embed_throughput.py). Subtracting a constant from
each token vector is the same as subtracting it from each text's mean, so the result is an
ordinary model2vec model.

Packaged static models are distilled once, offline, when first loaded (locating one reads no
model file, so `thresher validate` stays instant), from the packaged source model into the
model cache, `<model cache>/static/<name>-<key>/` (model2vec's `save_pretrained`: safetensors,
tokenizer.json, config.json; never pickle), written to a temporary directory and renamed under a
file lock. `key` hashes the source model's content fingerprint, the distillation settings, the
reference text and the model2vec version, so a change of any of them distils again and an
unchanged one never does. Distilling all-MiniLM-L6-v2 (29,525 tokens) took 61-221 s on 2 shared
CPU cores (load 2-5; the transformer forward pass over every token is the cost). Any other
model2vec directory is used by path as it is.

`StaticEncoder` reads `model.safetensors` (`embeddings`, and model2vec's optional `weights` and
`mapping`) and `tokenizer.json` with safetensors and tokenizers only (model2vec is needed to
distil, not to embed). As model2vec does, special tokens are not added and unknown tokens are
dropped; a text is cut to `max_seq_length` tokens (the model's `max_length`, 512 for distilled
models). A text with no known token (e.g. the empty string) gets the zero vector: it is similar to
nothing (cosine 0 with every vector).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from thresher.embeddings.model_files import (
    EmbeddingModelError,
    Encoded,
    ModelFiles,
    cut_texts,
    l2_normalize,
)

# packaged static name -> the packaged sentence encoder it is distilled from
STATIC_MODELS: dict[str, str] = {"all-minilm-l6-v2-static": "all-minilm-l6-v2"}
DEFAULT_STATIC_MAX_LENGTH = 512  # model2vec's default `max_length`
DISTILL_INFO = "thresher_distill.json"  # what a distilled directory was made from (provenance)
PREFIX_CHARS_PER_TOKEN = 8  # StaticEncoder tokenises a long text's prefix first (see _tokenize)
PREFIX_MARGIN = 128

# Written for this purpose (no licence attached to it): everyday topics, none of them instructions,
# so that the common component is estimated on text unlike the corpora it is measured on.
REFERENCE_TEXT = """\
When people talk about their work, they often describe what they did during the day, who they met and what they
plan to do next. A teacher may explain how a lesson went, a doctor may write a short note about a patient, and a
shop owner may count the money that came in before closing the door for the night.

The history of a town can be told through its buildings. An old church, a market square and a railway station each
show what mattered to the people who lived there at different times. Some of these places are still used today,
while others have been turned into museums, offices or homes.

Scientists study the world by asking questions and testing their answers. They measure things carefully, compare
the results with what they expected, and share their findings so that others can check them. Over many years this
process has changed how we understand water, air, plants, animals and the human body.

To cook a simple meal, first wash and cut the vegetables, then heat some oil in a pan. Add the onions and stir them
for a few minutes before adding the rest of the ingredients. Season the dish with salt and pepper, and serve it
warm with bread or rice.

Companies sell products and services to customers in many countries. They hire staff, pay taxes, and report their
profits and losses every year. When the economy slows down, some of them reduce costs, while others invest in new
ideas, markets and technology.

Children learn to read by listening to stories, looking at pictures and sounding out words. Parents and teachers
can help by reading with them every day, asking questions about the story and letting them choose books they enjoy.

The river rises in the hills to the north and flows slowly through farmland, forests and two small cities before
it reaches the sea. In spring the water is high and fast; in late summer it is low enough in places to walk across.

The team won the match in the last minute after a long and difficult season. Their coach said that the players had
worked hard in training and that the supporters had never stopped believing in them.
"""


@dataclass(frozen=True)
class DistillSettings:
    """model2vec distillation settings (its defaults) plus thresher's common-component removal."""

    pca_dims: int = 256
    sif_coefficient: float = 1e-4
    token_remove_pattern: str = r"\[unused\d+\]"  # BERT's 994 placeholder tokens carry nothing
    dtype: str = "float16"  # of the saved vectors: half the size; cosines move by < 1e-3
    remove_common_component: bool = True

    def key(self, source_fingerprint: str) -> str:
        from importlib.metadata import version

        identity = {"source": source_fingerprint, "settings": asdict(self), "model2vec": version("model2vec"),
                    "reference": hashlib.blake2b(REFERENCE_TEXT.encode(), digest_size=8).hexdigest()}
        return hashlib.blake2b(json.dumps(identity, sort_keys=True).encode(), digest_size=8).hexdigest()


DEFAULT_SETTINGS = DistillSettings()


def is_static_directory(directory: Path | None) -> bool:
    """A model2vec directory: config.json says model_type model2vec, next to model.safetensors."""
    if directory is None or not (directory / "model.safetensors").is_file():
        return False
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "model2vec"


def describe_static_directory(directory: Path) -> tuple[int, int]:
    """(dimension, max_seq_length) of a model2vec directory."""
    from safetensors import safe_open

    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    with safe_open(str(directory / "model.safetensors"), framework="numpy") as tensors:
        shape = tensors.get_slice("embeddings").get_shape()
    max_length = config.get("max_length") or DEFAULT_STATIC_MAX_LENGTH
    return int(shape[1]), int(max_length)


def static_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    from thresher.models.resolve import model_cache_dir

    return (Path(cache_dir).expanduser() if cache_dir is not None else model_cache_dir()) / "static"


def _stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"


def distilled_target(source: ModelFiles, name: str, settings: DistillSettings = DEFAULT_SETTINGS,
                     cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the distillation of `source` with `settings` lives in the model cache (made or not)."""
    return static_cache_dir(cache_dir) / f"{_stem(name)}-{settings.key(source.fingerprint())}"


def distilled_directory(source: ModelFiles, name: str, settings: DistillSettings = DEFAULT_SETTINGS,
                        cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The distilled static model of `source` in the model cache, distilling it on first use."""
    from thresher.models.resolve import file_lock

    if source.directory is None:
        raise EmbeddingModelError(f"{source.ref}: distilling a static model needs the model's directory")
    target = distilled_target(source, name, settings, cache_dir)
    cache, stem = target.parent, _stem(name)
    if is_static_directory(target):
        return target
    with file_lock(cache / f".{target.name}.lock"):
        if is_static_directory(target):  # another process distilled it while this one waited
            return target
        tmp = cache / f".{target.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            distill(source, tmp, settings, name=stem)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _transformer_directory(source: ModelFiles) -> Path:
    """Where the Hugging Face model of a sentence-transformers directory is (its Transformer module)."""
    assert source.directory is not None
    modules_file = source.directory / "modules.json"
    modules = json.loads(modules_file.read_text(encoding="utf-8")) if modules_file.is_file() else []
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith("Transformer"):
            return source.directory / module.get("path", "")
    return source.directory


def distill(source: ModelFiles, target: Path, settings: DistillSettings = DEFAULT_SETTINGS, *,
            name: str | None = None, token_remove_pattern: str | None = None) -> Path:
    """Distil `source` (a sentence-transformers or Hugging Face encoder directory) into a model2vec
    directory at `target`, offline. `token_remove_pattern` overrides the settings' (tests distil a
    small vocabulary with it)."""
    try:
        from model2vec.distill import distill_from_model
        from model2vec.quantization import quantize_embeddings
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise EmbeddingModelError("distilling a static model needs model2vec and transformers: "
                                  "`pip install model2vec==0.10.0 skeletoken==0.6.1` (with --no-deps)") from exc
    directory = _transformer_directory(source)
    model = AutoModel.from_pretrained(str(directory), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    # model2vec asks the Hub for the model card's language unless name_or_path is an existing path:
    # it is one here (the local directory), so nothing goes over the network.
    assert os.path.exists(model.name_or_path)
    static = distill_from_model(model, tokenizer, device="cpu", pca_dims=settings.pca_dims,
                                sif_coefficient=settings.sif_coefficient,
                                token_remove_pattern=token_remove_pattern or settings.token_remove_pattern,
                                quantize_to="float32")
    vectors = np.asarray(static.embedding, dtype=np.float32)
    if settings.remove_common_component:
        vectors = vectors - _reference_mean(static.tokenizer, vectors)
    static.embedding = quantize_embeddings(vectors, settings.dtype)
    label = name or source.ref
    static.config["tokenizer_name"] = label  # not the absolute path of this machine's install
    static.base_model_name = label
    static.save_pretrained(target)
    info = {"source": source.ref, "source_fingerprint": source.fingerprint(), "settings": asdict(settings),
            "token_remove_pattern": token_remove_pattern or settings.token_remove_pattern,
            "reference_text_chars": len(REFERENCE_TEXT)}
    (target / DISTILL_INFO).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    return target


def _reference_mean(tokenizer, vectors: np.ndarray) -> np.ndarray:
    """Mean token vector of REFERENCE_TEXT, tokenised as StaticEncoder tokenises."""
    ids = np.asarray(tokenizer.encode(REFERENCE_TEXT, add_special_tokens=False).ids, dtype=np.int64)
    unk = _unk_id(tokenizer)
    ids = ids[ids != unk] if unk is not None else ids
    if not len(ids):
        raise EmbeddingModelError("the reference text has no known token for this tokenizer")
    return vectors[ids].mean(axis=0)


def _unk_id(tokenizer) -> int | None:
    """The unknown token's id (dropped when embedding, as model2vec does)."""
    unk = getattr(tokenizer.model, "unk_token", None)
    if unk is not None:
        return tokenizer.token_to_id(unk)
    unk_id = json.loads(tokenizer.to_str())["model"].get("unk_id")  # Unigram models
    return int(unk_id) if unk_id is not None else None


def static_files(ref: str, directory: Path, origin: str) -> ModelFiles:
    """ModelFiles of an existing model2vec directory."""
    dimension, max_length = describe_static_directory(directory)
    return ModelFiles(ref, directory, None, origin, dimension, max_length, "mean", False, static=True)


def planned_files(ref: str, source: ModelFiles, name: str, origin: str,
                  settings: DistillSettings = DEFAULT_SETTINGS) -> ModelFiles:
    """ModelFiles of the distillation of `source`, whether it is made yet or not: locating a model
    (`thresher validate`, building a scorer) stays instant, and the fingerprint is the distillation
    key, the same before and after. `StaticEncoder` distils it when it is first loaded."""
    if source.pooling != "mean" or source.has_dense:
        raise EmbeddingModelError(f"{source.ref}: static distillation mean-pools token outputs; this model pools "
                                  f"with {source.pooling!r}" + (" and has a Dense layer" if source.has_dense else ""))
    target = distilled_target(source, name, settings)
    # PCA keeps min(pca_dims, width) dimensions (every real vocabulary is larger than pca_dims)
    return ModelFiles(ref, target, None, origin, min(settings.pca_dims, source.dimension),
                      DEFAULT_STATIC_MAX_LENGTH, "mean", False, static=True, distill_from=source,
                      identity=target.name.rsplit("-", 1)[1])


def locate_static(ref: str, source: ModelFiles) -> ModelFiles:
    """ModelFiles of the static counterpart of `source`: itself when it is a model2vec directory,
    else its distillation (made when first loaded)."""
    if source.static:
        return source
    return planned_files(ref, source, f"{Path(str(source.ref)).name}-static", "distilled")


def ensure_distilled(files: ModelFiles) -> Path:
    """The model2vec directory of `files`, distilled now if it is a planned distillation not made yet."""
    if files.directory is not None and is_static_directory(files.directory):
        return files.directory
    if files.distill_from is None or files.directory is None:
        raise EmbeddingModelError(f"{files.ref}: {files.directory} is not a model2vec directory")
    # The source's fingerprint is read from its files again here: a source changed since it was located
    # gives another directory, and no vector is made with another model.
    made = distilled_directory(files.distill_from, files.directory.name.rsplit("-", 1)[0])
    if made != files.directory:
        raise EmbeddingModelError(f"{files.ref}: the files of {files.distill_from.ref} changed while in use "
                                  f"({made.name} instead of {files.directory.name})")
    return made


class StaticEncoder:
    """Mean of token vectors (model2vec's `encode`), with token counts and cut flags."""

    def __init__(self, files: ModelFiles, max_seq_length: int, batch_size: int):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if not files.static:
            raise EmbeddingModelError(f"{files.ref}: the static backend needs a model2vec directory "
                                      "(e.g. all-minilm-l6-v2-static)")
        directory = ensure_distilled(files)
        self.files, self.max_seq_length, self.batch_size = files, max_seq_length, batch_size
        tensors = load_file(str(directory / "model.safetensors"))
        table = tensors["embeddings"].astype(np.float32)  # float16 and int8 vectors: scale is irrelevant
        if "mapping" in tensors:  # vocabulary quantisation: token id -> row of the table
            table = table[tensors["mapping"].astype(np.int64)]
        if "weights" in tensors:  # per-token weights of quantised vocabularies
            table = table * tensors["weights"].astype(np.float32)[:, None]
        self.table = np.ascontiguousarray(table)
        if self.table.shape[1] != files.dimension:
            raise EmbeddingModelError(f"{directory}: {self.table.shape[1]}-wide vectors, expected {files.dimension}")
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()  # cut below, after unknown tokens are dropped (as model2vec)
        self.unk = _unk_id(self.tokenizer)
        if self.table.shape[0] < self.tokenizer.get_vocab_size():
            raise EmbeddingModelError(f"{files.directory}: {self.table.shape[0]} vectors for a vocabulary of "
                                      f"{self.tokenizer.get_vocab_size()} tokens")

    def encode(self, texts: list[str]) -> Encoded:
        n = len(texts)
        vectors = np.zeros((n, self.table.shape[1]), dtype=np.float32)
        tokens = np.zeros(n, dtype=np.int32)
        truncated = np.zeros(n, dtype=bool)
        step = max(self.batch_size, 256)  # tokenizer calls are cheap; fewer, larger ones
        for start in range(0, n, step):
            rows = slice(start, min(start + step, n))
            vectors[rows], tokens[rows], truncated[rows] = self._encode(texts[rows])
        return Encoded(l2_normalize(vectors), tokens, truncated)

    def _tokenize(self, texts: list[str]) -> list:
        """Tokens of each text, enough of them to take its first max_seq_length known tokens exactly.

        Tokenising is ~80% of the encoder's time, and a 16 KB page is tokenised whole to use 512 of
        its tokens. So a long text is first tokenised from a prefix of PREFIX_CHARS_PER_TOKEN chars
        per token; when the prefix holds max_seq_length known tokens plus PREFIX_MARGIN (more than
        the last, possibly split, word of the prefix can produce: WordPiece makes at most 100 of
        one word), its first max_seq_length tokens are those of the whole text. Otherwise (few,
        long tokens) the text is tokenised again whole. The cut flag stays exact: a prefix with
        more tokens than max_seq_length means the text has more too."""
        limit = self.max_seq_length * PREFIX_CHARS_PER_TOKEN
        encodings = self.tokenizer.encode_batch_fast([t[:limit] for t in texts], add_special_tokens=False)
        need = self.max_seq_length + PREFIX_MARGIN
        again = [i for i, (t, e) in enumerate(zip(texts, encodings))
                 if len(t) > limit and len(e.ids) - (e.ids.count(self.unk) if self.unk is not None else 0) < need]
        if again:
            for i, e in zip(again, self.tokenizer.encode_batch_fast([texts[i] for i in again],
                                                                     add_special_tokens=False)):
                encodings[i] = e
        return encodings

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from scipy.sparse import csr_matrix

        n = len(texts)
        cut, was_cut = cut_texts(texts, self.max_seq_length)
        encodings = self._tokenize(cut)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=n)
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        row = np.repeat(np.arange(n), lengths)
        if self.unk is not None:
            known = ids != self.unk
            ids, row = ids[known], row[known]
        kept = np.bincount(row, minlength=n)
        # position of each token within its text: cut every text at max_seq_length tokens
        position = np.arange(len(ids)) - np.repeat(np.cumsum(kept) - kept, kept)
        inside = position < self.max_seq_length
        ids, row = ids[inside], row[inside]
        counts = np.minimum(kept, self.max_seq_length)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        # sum of the token vectors of each text (the mean's direction; normalised by the caller)
        bag = csr_matrix((np.ones(len(ids), dtype=np.float32), ids, indptr), shape=(n, self.table.shape[0]))
        return np.asarray(bag @ self.table), counts.astype(np.int32), was_cut | (kept > self.max_seq_length)


__all__ = ["DEFAULT_SETTINGS", "REFERENCE_TEXT", "STATIC_MODELS", "DistillSettings", "StaticEncoder", "distill",
           "distilled_directory", "ensure_distilled", "is_static_directory", "locate_static", "planned_files",
           "static_files"]
