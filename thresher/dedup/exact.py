"""Exact duplicates: a stable 128-bit hash of each document's normalised text.

`exact_hash` is blake2b-128 (hex) over the document's normalised token sequence, each token given
by its 64-bit thresher token hash (little-endian); two documents share it iff their normalised
texts (see `normalize`) are equal, up to a 2^-64 chance per distinct pair of tokens. Normalisation
makes this "exact up to case, punctuation, digits and whitespace", as CCNet's line hashes are.
"""

from __future__ import annotations

import hashlib

import numpy as np

from thresher.dedup.minhash import Shingles


def exact_hashes(shingles: Shingles) -> list[str]:
    """One 32-hex-digit hash per document of the batch."""
    tokens = np.ascontiguousarray(shingles.token_hashes).astype("<u8", copy=False)
    buffer = memoryview(tokens.view(np.uint8))
    offsets = (shingles.doc_token_offsets * 8).tolist()
    return [hashlib.blake2b(buffer[lo:hi], digest_size=16).hexdigest() for lo, hi in zip(offsets, offsets[1:])]
