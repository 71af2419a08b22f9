"""The text a fastText classifier reads: one line per row, the same at training and scoring time.

fastText splits words on any run of ASCII whitespace and reads a newline as end of line, so the
only whitespace work needed is turning newlines into spaces: collapsing whitespace runs (DCLM's
`" ".join(text.split())`) yields the same tokens and, as a regex, cost more than fastText's own
prediction (bench: ~10k vs ~200k texts/s on C4 pages). Lowercasing (DCLM's preprocessing) and the
cut to `max_chars` run in pyarrow.compute, over the whole batch at once.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

LABEL_POSITIVE = "__label__pos"
LABEL_NEGATIVE = "__label__neg"
_NEWLINE = pa.scalar("\n", pa.large_string())
_EMPTY = pa.scalar("", pa.large_string())


def normalised(texts: pa.Array | pa.ChunkedArray, *, lowercase: bool, max_chars: int) -> pa.Array:
    """`texts` as fastText reads them: lowercased (optionally), newlines as spaces, cut to
    `max_chars` characters; nulls stay null."""
    texts = texts.cast(pa.large_string())
    if lowercase:
        texts = pc.utf8_lower(texts)
    texts = pc.replace_substring(texts, "\n", " ")
    return pc.utf8_slice_codeunits(texts, 0, max_chars)


def prediction_lines(texts: pa.Array | pa.ChunkedArray, *, lowercase: bool, max_chars: int) -> list[str]:
    """One newline-terminated line per row for fastText's batch predict (a null row: an empty line)."""
    lines = pc.binary_join_element_wise(normalised(texts, lowercase=lowercase, max_chars=max_chars),
                                        _NEWLINE, _EMPTY, null_handling="replace", null_replacement="")
    return lines.to_pylist()


def training_lines(texts: list[str], positive: list[bool], *, lowercase: bool, max_chars: int) -> list[str]:
    """`__label__pos <text>` / `__label__neg <text>` lines of a fastText training file."""
    lines = normalised(pa.array(texts, pa.large_string()), lowercase=lowercase, max_chars=max_chars).to_pylist()
    return [f"{LABEL_POSITIVE if p else LABEL_NEGATIVE} {line}\n" for line, p in zip(lines, positive)]
