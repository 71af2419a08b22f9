"""Stable, vectorised integer hashes used by the dedup stage.

Everything here is a fixed function of its input bytes: no seed, no dependence on the platform,
the Python hash seed or the library versions, because signatures and band keys written by one run
are matched against those of later runs (incremental dedup). All arithmetic is on unsigned numpy
integers, whose wraparound *is* the intended modulo 2^64 / 2^32 arithmetic.
"""

from __future__ import annotations

import hashlib

import numpy as np

U64 = np.uint64
U32 = np.uint32

# MurmurHash3's 64- and 32-bit finalisers: fixed avalanching bijections.
_F64 = (U64(33), U64(0xFF51AFD7ED558CCD), U64(33), U64(0xC4CEB9FE1A85EC53), U64(33))
_F32 = (U32(16), U32(0x85EBCA6B), U32(13), U32(0xC2B2AE35), U32(16))

# The multiplier of the polynomial string hash (odd, so invertible modulo 2^64) and its inverse.
POLY_MULTIPLIER = 0x9E3779B97F4A7C15
POLY_INVERSE = pow(POLY_MULTIPLIER, -1, 1 << 64)


def _fmix(h: np.ndarray, constants: tuple) -> np.ndarray:
    s1, m1, s2, m2, s3 = constants
    h = h ^ (h >> s1)  # the first op copies, so the caller's array is never modified
    h *= m1
    h ^= h >> s2
    h *= m2
    h ^= h >> s3
    return h


def fmix64(h: np.ndarray) -> np.ndarray:
    return _fmix(h, _F64)


def fmix32(h: np.ndarray) -> np.ndarray:
    return _fmix(h, _F32)


def fixed_constants(label: str, n: int, *, odd: bool = True) -> np.ndarray:
    """`n` fixed pseudo-random uint64 constants named by `label` (blake2b of the label and index)."""
    values = [int.from_bytes(hashlib.blake2b(f"{label}:{i}".encode(), digest_size=8).digest(), "little")
              for i in range(n)]
    out = np.array(values, dtype=U64)
    return out | U64(1) if odd else out


_LOW_BITS = 16
_LOW = 1 << _LOW_BITS


def _geometric(base: int, count: int) -> np.ndarray:
    """base**i mod 2^64 for i < count (cumprod on uint64 wraps: exactly modular powers)."""
    out = np.full(count, base, dtype=U64)
    out[0] = 1
    return np.cumprod(out)


class _Powers:
    """M**i and M**-i for any i, from two small tables: M**i = HIGH[i >> 16] * LOW[i & 0xFFFF].

    A batch of n bytes needs n consecutive powers; building them as an outer product of the two
    tables costs one multiply per byte and keeps no table larger than a few hundred KB alive."""

    def __init__(self) -> None:
        self.low = _geometric(POLY_MULTIPLIER, _LOW)
        self.low_inverse = _geometric(POLY_INVERSE, _LOW)
        self.high = self.high_inverse = np.ones(0, dtype=U64)

    def _ensure_high(self, blocks: int) -> None:
        if blocks > len(self.high):
            blocks = max(blocks, 2 * len(self.high), 64)
            self.high = _geometric(pow(POLY_MULTIPLIER, _LOW, 1 << 64), blocks)
            self.high_inverse = _geometric(pow(POLY_INVERSE, _LOW, 1 << 64), blocks)

    def upto(self, n: int) -> np.ndarray:
        """A new array of M**i for i < n."""
        blocks = -(-n // _LOW)
        self._ensure_high(blocks)
        return np.multiply.outer(self.high[:blocks], self.low).ravel()[:n]

    def inverse_at(self, positions: np.ndarray) -> np.ndarray:
        self._ensure_high(int(positions.max(initial=0) >> _LOW_BITS) + 1)
        return self.high_inverse[positions >> _LOW_BITS] * self.low_inverse[positions & (_LOW - 1)]


_POWERS = _Powers()


def span_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """64-bit hashes of the byte spans codes[starts[i]:ends[i]], all at once.

    h = fmix64(sum_k codes[start + k] * M**k  XOR  length * M), computed through one prefix sum
    over the whole buffer: sum over a span = (prefix[end] - prefix[start]) * M**-start, since M is
    odd and hence invertible modulo 2^64. Costs a few passes over the bytes, then O(1) per span.
    """
    n = len(codes)
    prefix = np.empty(n + 1, dtype=U64)
    prefix[0] = 0
    body = prefix[1:]
    np.multiply(_POWERS.upto(n), codes, out=body)
    np.cumsum(body, out=body)  # in place: one n-sized uint64 buffer fewer
    h = prefix[ends]
    h -= prefix[starts]
    h *= _POWERS.inverse_at(starts)
    lengths = ends - starts
    h ^= lengths.astype(U64, copy=False) * U64(POLY_MULTIPLIER)
    return fmix64(h)


def string_key64(value: str) -> int:
    """A signed 64-bit key of a string (blake2b): the integer node id of a doc_id in DuckDB."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little", signed=True)
