"""An int64 -> int32 hash table probed for a whole array of keys at once (numpy, open addressing).

The featurizer's bigram memo: a bigram is the key (id_a << 32 | id_b) of its two token ids, and
every bigram of a batch is looked up in one vectorised pass, without first deduplicating them
(sorting or hashing half a million keys per batch cost more than the lookups themselves). Linear
probing with multiplicative (Fibonacci) hashing; the load stays at or below one half, so a lookup
takes ~1.5 probes and each round of probing is a handful of numpy operations over the keys still
unresolved. Keys are non-negative; -1 marks an empty slot.

Thread safety: lookups take no lock. `insert` writes a slot's value before its key, so a reader
sees a key only with its value; growing builds a new pair of arrays and swaps them in as one
tuple. Inserts themselves are serialised by the caller.
"""

from __future__ import annotations

import numpy as np

EMPTY = -1
MISSING = -1  # what `lookup` returns for a key not in the table
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_MIN_BITS = 12


def _slots(keys: np.ndarray, bits: int) -> np.ndarray:
    hashed = np.multiply(keys.view(np.uint64), _FIBONACCI)  # wraps modulo 2**64, as intended
    np.right_shift(hashed, np.uint64(64 - bits), out=hashed)
    return hashed.view(np.int64)  # below 2**bits


class PairTable:
    """int64 keys (>= 0) -> int32 values."""

    def __init__(self) -> None:
        self._arrays = self._empty(_MIN_BITS)
        self.size = 0

    @staticmethod
    def _empty(bits: int) -> tuple[int, np.ndarray, np.ndarray]:
        return bits, np.full(1 << bits, EMPTY, dtype=np.int64), np.zeros(1 << bits, dtype=np.int32)

    @property
    def nbytes(self) -> int:
        _, keys, values = self._arrays
        return keys.nbytes + values.nbytes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The value of every key (int64 array, any order, repeats allowed); MISSING where absent."""
        bits, table_keys, table_values = self._arrays
        mask = (1 << bits) - 1
        slots = _slots(keys, bits)
        out = table_values[slots]  # right wherever the key sits in its first slot (most keys)
        found = table_keys[slots]
        unresolved = found != keys
        if not unresolved.any():
            return out
        pending = np.flatnonzero(unresolved)
        out[pending] = MISSING
        # keys displaced by collisions probe on, a round per slot, until found or at an empty slot
        occupied = found[pending] != EMPTY
        pending, slots = pending[occupied], (slots[pending[occupied]] + 1) & mask
        while len(pending):
            found = table_keys[slots]
            hit = found == keys[pending]
            out[pending[hit]] = table_values[slots[hit]]
            again = ~hit & (found != EMPTY)
            pending, slots = pending[again], (slots[again] + 1) & mask
        return out

    def insert(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add distinct keys that are not in the table yet."""
        if not len(keys):
            return
        bits, table_keys, table_values = self._arrays
        if 2 * (self.size + len(keys)) > 1 << bits:  # keep the load at or below one half
            while 2 * (self.size + len(keys)) > 1 << bits:
                bits += 1
            old = table_keys != EMPTY
            grown = self._empty(bits)
            self._place(grown, np.concatenate([table_keys[old], keys]),
                        np.concatenate([table_values[old], values.astype(np.int32)]))
            self._arrays = grown
        else:
            self._place(self._arrays, keys, values.astype(np.int32))
        self.size += len(keys)

    @staticmethod
    def _place(arrays: tuple[int, np.ndarray, np.ndarray], keys: np.ndarray, values: np.ndarray) -> None:
        bits, table_keys, table_values = arrays
        mask = (1 << bits) - 1
        slots = _slots(keys, bits)
        while len(keys):
            free = table_keys[slots] == EMPTY
            candidates = np.flatnonzero(free)
            # several keys may want the same free slot: the first of each takes it
            _, first = np.unique(slots[candidates], return_index=True)
            winners = candidates[first]
            table_values[slots[winners]] = values[winners]  # value before key: see the module docstring
            table_keys[slots[winners]] = keys[winners]
            rest = np.ones(len(keys), dtype=bool)
            rest[winners] = False
            # a key whose slot was taken moves on; one that lost a tie retries the slot, now taken
            slots = np.where(free, slots, (slots + 1) & mask)[rest]
            keys, values = keys[rest], values[rest]
