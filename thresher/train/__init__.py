"""Training the models the perplexity stage scores with: KenLM n-gram models and proxy LMs.

- `train_kenlm`: CCNet-style KenLM model (lmplz + build_binary, or kaldingram without them);
- `train_proxy`: a small GPT-2-style causal LM and BPE tokenizer, trained from scratch;
- `reference_texts` / `texts_from`: reference text from .txt files or any thresher input format.

Imports are lazy: `import thresher.train` loads neither torch nor KenLM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thresher.train.corpus import CorpusStats, reference_texts, texts_from
    from thresher.train.kenlm import train_kenlm
    from thresher.train.proxy import train_proxy

__all__ = ["CorpusStats", "reference_texts", "texts_from", "train_kenlm", "train_proxy"]

_WHERE = {
    "CorpusStats": "thresher.train.corpus",
    "reference_texts": "thresher.train.corpus",
    "texts_from": "thresher.train.corpus",
    "train_kenlm": "thresher.train.kenlm",
    "train_proxy": "thresher.train.proxy",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'thresher.train' has no attribute {name!r}")
