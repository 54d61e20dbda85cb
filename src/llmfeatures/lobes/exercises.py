"""Check functions for the exercises of chapter 4.  Each runs the reader's function on small cases
against the package's implementation and raises an ``AssertionError`` saying what differs, or
prints a confirmation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score

from llmfeatures.lobes.affinity import affinity, ami_test, winning_lobes


def _random_counts(rng: np.random.Generator, n_blocks: int, n_features: int) -> np.ndarray:
    on = rng.random((n_blocks, n_features)) < rng.uniform(0.05, 0.6, n_features)
    on[:, 0] = False  # a feature that is never on (0/0 cases)
    on[:, 1] = True  # one that is on in every block (phi: 0/0 as well)
    on = on.astype(np.int64)
    return on.T @ on


def check_phi(fn: Callable[[np.ndarray, int], np.ndarray]) -> None:
    """``fn(counts [U, U], n_blocks) -> [U, U]``: the phi coefficient of every pair, 0 where it
    is 0/0, plus 1 (the reference's affinity in [0, 2])."""
    rng = np.random.default_rng(4)
    for n_blocks, u in ((50, 6), (400, 12)):
        counts = _random_counts(rng, n_blocks, u)
        want = affinity(counts, n_blocks, "phi")
        got = np.asarray(fn(counts.copy(), n_blocks), dtype=np.float64)
        assert got.shape == want.shape, f"expected shape {want.shape}, got {got.shape}"
        assert not np.isnan(got).any(), (
            "the result holds NaN: feature 0 is never on and feature 1 is always on, so some "
            "denominators are 0; the reference sets those entries to 0 before adding 1")
        if np.allclose(got + 1, want, atol=1e-9):
            raise AssertionError("the values are phi itself: add 1 so the affinity is >= 0")
        bad = np.argwhere(~np.isclose(got, want, atol=1e-9, rtol=0))
        assert not len(bad), (
            f"n_blocks={n_blocks}: {len(bad)} entries differ, e.g. pair {tuple(bad[0])}: "
            f"got {got[tuple(bad[0])]:.6f}, expected {want[tuple(bad[0])]:.6f}. Check n00 = T - "
            "n_i - n_j + n_ij and the four margins under the square root")
    print("check_phi: correct")


def check_ami_null(fn: Callable[[np.ndarray, np.ndarray, int, int], tuple[float, float, float]]
                   ) -> None:
    """``fn(a [n], b [n], n_permutations, seed) -> (ami, null_mean, null_std)``: AMI of the two
    labelings and the mean and standard deviation of the AMI when ``b`` is shuffled."""
    rng = np.random.default_rng(7)
    a = rng.integers(0, 4, 600)
    for noise in (0.3, 1.0):
        b = np.where(rng.random(600) < noise, rng.integers(0, 4, 600), a)
        ami, mean, std = (float(x) for x in fn(a.copy(), b.copy(), 200, 0))
        ref = ami_test(a, b, 200, seed=1)
        assert np.isclose(ami, adjusted_mutual_info_score(a, b), atol=1e-9), (
            f"the AMI is {ami:.4f}, sklearn says {adjusted_mutual_info_score(a, b):.4f}")
        assert std > 0, ("the null has no spread: shuffle b anew for every permutation (with "
                         "np.random.default_rng(seed).permutation)")
        assert abs(mean - ref.null_mean) < 5 * ref.null_std / np.sqrt(20), (
            f"null mean {mean:.4f}, expected about {ref.null_mean:.4f} (AMI is ~0 for shuffled "
            "labels); is b shuffled before comparing with a?")
        assert 0.5 < std / ref.null_std < 2, (
            f"null sd {std:.4f}, expected about {ref.null_std:.4f}; use the standard deviation of "
            "the permuted AMIs")
    print("check_ami_null: correct")


def check_winning_lobe(fn: Callable[[np.ndarray, np.ndarray], int]) -> None:
    """``fn(on bool [U], labels [U]) -> int``: the lobe with the largest share of its own
    features on in the block (-1 if no feature is on)."""
    labels = np.array([0] * 10 + [1] * 2 + [2] * 4)
    cases = []
    on = np.zeros(16, bool)
    on[[0, 1, 2, 10]] = True  # 3 of lobe 0's ten, 1 of lobe 1's two: lobe 1 wins by share
    cases.append(on)
    on = np.zeros(16, bool)
    on[[12, 13, 14, 0]] = True
    cases.append(on)
    cases.append(np.zeros(16, bool))
    rng = np.random.default_rng(2)
    cases += [rng.random(16) < p for p in (0.2, 0.5, 0.8)]
    for on in cases:
        want = int(winning_lobes(on[None, :], labels)[0])
        got = int(fn(on.copy(), labels.copy()))
        if want == 1 and got == 0:
            raise AssertionError("lobe 0 has more features on, but lobe 1 has a larger *share* of "
                                 "its features on: divide by each lobe's size")
        assert got == want, (f"features on {np.flatnonzero(on).tolist()}: got lobe {got}, "
                             f"expected {want}")
    print("check_winning_lobe: correct")
