"""What an export writes: the shard and row-group sizes, the licence, the columns. Defaults suit
the Hugging Face Hub (Parquet shards of about 250 MB, zstd)."""

from __future__ import annotations

from pydantic import Field

from thresher.config_base import StrictModel

DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "documents": ("doc_id", "text", "url", "source", "timestamp"),
    "instructions": ("doc_id", "instruction", "input", "output", "conversation", "text"),
}
# Columns a selection may carry besides doc_id; exported when present (and not all null).
SELECTION_COLUMNS = ("weight", "rank")

DEFAULT_MAX_SHARD_BYTES = 250_000_000
DEFAULT_ROW_GROUP_ROWS = 10_000
DEFAULT_ROW_GROUP_BYTES = 64 << 20  # estimated in-memory bytes of one row group
COMPRESSION = "zstd"
SPLIT = "train"


class ExportConfig(StrictModel):
    shard_rows: int | None = Field(None, gt=0, description="at most this many rows per shard (default: no limit)")
    max_shard_bytes: int = Field(DEFAULT_MAX_SHARD_BYTES, gt=0, description="target Parquet bytes per shard")
    row_group_rows: int = Field(DEFAULT_ROW_GROUP_ROWS, gt=0, description="rows per Parquet row group at most")
    license: str | None = Field(None, description="licence id for the card (default: the selection recipe's)")
    columns: tuple[str, ...] | None = Field(
        None, description="export only these columns (doc_id always first); default: the table's text columns, "
        "every score column and the selection's weight/rank")
