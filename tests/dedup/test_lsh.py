"""DedupConfig validation and parameter derivation; band keys; the LSH S-curve on real text."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHashLSH
from pydantic import ValidationError

from tests.dedup.planted import build
from thresher.dedup.config import DedupConfig, candidate_probability, s_curve_midpoint
from thresher.dedup.lsh import band_keys
from thresher.dedup.minhash import MinHasher


def test_defaults_are_finewebs_setting():
    config = DedupConfig()
    assert (config.ngram, config.num_perm, config.lsh_shape) == (5, 112, (14, 8))
    assert round(s_curve_midpoint(14, 8), 3) == 0.719
    assert round(candidate_probability(0.8, 14, 8), 3) == 0.924  # FineWeb's quoted 92 %


@pytest.mark.parametrize(("threshold", "weights"), [(0.5, (0.5, 0.5)), (0.7, (0.5, 0.5)), (0.8, (0.5, 0.5)),
                                                    (0.8, (0.2, 0.8)), (0.9, (0.7, 0.3))])
def test_bands_and_rows_derive_from_threshold_as_datasketch_does(threshold, weights):
    config = DedupConfig(bands=None, rows=None, threshold=threshold, false_positive_weight=weights[0],
                         false_negative_weight=weights[1])
    lsh = MinHashLSH(threshold=threshold, num_perm=112, weights=weights)
    assert config.lsh_shape == (lsh.b, lsh.r)
    assert config.lsh_shape[0] * config.lsh_shape[1] <= config.num_perm


@pytest.mark.parametrize(("fields", "message"), [
    ({"bands": 20, "rows": 8}, "exceeds num_perm"),
    ({"bands": 14, "rows": None}, "both bands and rows"),
    ({"bands": None, "rows": None, "false_positive_weight": 0.6}, "must be 1"),
    ({"survivor": "highest_score"}, "needs survivor_column"),
    ({"survivor_column": "gopher_word_count"}, "only used by"),
    ({"memory_limit": "lots"}, "not a size"),
    ({"ngram": 0}, "greater than or equal"),
    ({"threshold": 1.0}, "less than"),
    ({"verfiy": True}, "Extra inputs"),
])
def test_invalid_combinations_are_rejected(fields, message):
    with pytest.raises(ValidationError, match=message):
        DedupConfig(**fields)


def test_band_keys_match_iff_the_band_matches():
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, size=(4, 112), dtype=np.uint32)
    sig[1] = sig[0]
    sig[2, :8] = sig[0, :8]          # shares band 0 only
    sig[3] = np.roll(sig[0], 8)      # same values, other bands: must not match
    keys = band_keys(sig, 14, 8)
    assert keys.dtype == np.int64 and keys.shape == (4, 14)
    assert (keys[1] == keys[0]).all()
    assert keys[2, 0] == keys[0, 0] and (keys[2, 1:] != keys[0, 1:]).all()
    assert not np.isin(keys[3], keys[0]).any()
    with pytest.raises(ValueError):
        band_keys(sig, 15, 8)


@pytest.fixture(scope="module")
def planted(sample_data):
    return build(sample_data)


def test_candidate_rate_follows_the_s_curve_on_real_text(planted):
    """For pairs of real documents binned by exact Jaccard, the fraction that shares a band equals
    the S-curve 1-(1-J^r)^b averaged over the bin, within binomial noise: the signatures behave like
    ideal MinHash, so the LSH does what its parameters promise."""
    signatures = MinHasher()(planted.texts)
    keys = band_keys(signatures, 14, 8)
    pairs = np.array(list(planted.pairs))
    jac = np.array([planted.pairs[tuple(p)] for p in pairs])
    shared = (keys[pairs[:, 0]] == keys[pairs[:, 1]]).any(axis=1)
    checked = 0
    for lo, hi in ((0.0, 0.3), (0.3, 0.5), (0.5, 0.65), (0.65, 0.8), (0.8, 0.9), (0.9, 1.01)):
        in_bin = (jac >= lo) & (jac < hi)
        if in_bin.sum() < 20:
            continue
        expected = np.array([candidate_probability(j, 14, 8) for j in jac[in_bin]])
        observed = shared[in_bin].mean()
        sd = np.sqrt((expected * (1 - expected)).sum()) / in_bin.sum()
        print(f"J in [{lo}, {hi}): {in_bin.sum()} pairs, candidates {observed:.3f}, S-curve {expected.mean():.3f}")
        assert abs(observed - expected.mean()) <= 4 * sd + 0.01
        checked += 1
    assert checked >= 4
