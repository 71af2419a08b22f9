"""LSH banding: a document's signature cut into `bands` bands of `rows` values, each hashed to one
64-bit key. Two documents are LSH candidates when they share the key of at least one band.

Band keys are stored wide, one int64 column per band (`band_00`, `band_01`, ...), so that the
cluster step reads one band of every shard at a time: 8 bytes per document per band.
"""

from __future__ import annotations

import functools

import numpy as np

from thresher.dedup.hashing import U64, fixed_constants, fmix64


def band_column(band: int) -> str:
    return f"band_{band:02d}"


@functools.lru_cache(maxsize=16)
def _band_constants(bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    return fixed_constants("thresher-band-rows", rows), fixed_constants("thresher-band-id", bands)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(num_docs, bands) int64 keys: fmix64(sum_j sig[band * rows + j] * K_j ^ C_band)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} hashes, signatures have "
                         f"{signatures.shape[1]}")
    row_constants, band_constants = _band_constants(bands, rows)
    keys = np.empty((signatures.shape[0], bands), dtype=U64)
    for band in range(bands):
        block = signatures[:, band * rows : (band + 1) * rows].astype(U64)
        block *= row_constants
        keys[:, band] = fmix64(block.sum(axis=1, dtype=U64) ^ band_constants[band])
    return keys.view(np.int64)
