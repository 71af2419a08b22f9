"""Hugging Face export of a selection: Parquet shards + dataset card, and upload to the Hub.

    exports/<name>/data/train-00000-of-0000N.parquet   the selected rows, sorted by doc_id
    exports/<name>/README.md                           dataset card (YAML header + provenance)
    exports/<name>/recipe.yaml, selection.json         the selection recipe and its metadata

`export_selection` writes the directory (no Hub access needed); `push_to_hub` uploads it.
"""

from thresher.export.config import DEFAULT_COLUMNS, DEFAULT_MAX_SHARD_BYTES, ExportConfig
from thresher.export.dataset import ExportError, export_selection

__all__ = ["DEFAULT_COLUMNS", "DEFAULT_MAX_SHARD_BYTES", "ExportConfig", "ExportError", "export_selection",
           "push_to_hub"]


def __getattr__(name: str):
    # huggingface_hub is imported only when an upload is asked for.
    if name == "push_to_hub":
        from thresher.export.hub import push_to_hub

        return push_to_hub
    raise AttributeError(name)
