"""Check functions for the exercises of chapter 5.  Each runs the reader's function on small cases
with known answers and raises an ``AssertionError`` saying what is wrong, or prints a confirmation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmfeatures.galaxy.core import fit_power_law, knn_entropy


def check_power_law_alpha(fn: Callable[[np.ndarray, int, int], float]) -> None:
    """``fn(eigenvalues [d] largest first, first, last) -> alpha`` over 1-based ranks
    ``first..last`` inclusive."""
    rng = np.random.default_rng(0)
    for d, alpha, (first, last) in ((128, 0.7, (4, 64)), (300, 1.3, (10, 150)), (64, 0.3, (2, 20))):
        r = np.arange(1, d + 1)
        ev = 2.0 * r ** (-alpha) * np.exp(0.05 * rng.standard_normal(d))
        ev = np.sort(ev)[::-1]
        want = fit_power_law(ev, (first, last)).alpha
        got = float(fn(ev, first, last))
        assert np.isfinite(got), f"alpha is {got}"
        assert got > 0, f"got alpha = {got:.3f}: alpha is minus the slope, so a falling spectrum has alpha > 0"
        assert abs(got - want) < 1e-6, (
            f"d={d}, ranks {first}..{last}: got alpha {got:.4f}, expected {want:.4f}. Fit log10(eigenvalue) "
            "against log10(rank) with ranks counted from 1 and both ends included."
        )
    print("check_power_law_alpha: correct")


def check_gaussian_spectrum(fn: Callable[[int, int, int], np.ndarray]) -> None:
    """``fn(n, d, seed) -> eigenvalues [d]``, largest first, of the covariance of an ``[n, d]``
    standard Gaussian cloud.  Checked against the Marchenko-Pastur law: for ``n`` points in ``d``
    dimensions the eigenvalues fill ``[(1 - sqrt(d/n))^2, (1 + sqrt(d/n))^2]`` and average 1."""
    for n, d in ((1024, 128), (4000, 64)):
        ev = np.asarray(fn(n, d, 0), dtype=float)
        assert ev.shape == (d,), f"n={n}, d={d}: expected {d} eigenvalues (one per dimension), got shape {ev.shape}"
        assert np.all(np.diff(ev) <= 1e-12), "sort the eigenvalues largest first"
        assert abs(ev.mean() - 1) < 0.05, f"mean eigenvalue {ev.mean():.3f}, expected about 1: is the covariance per point (rowvar=False)?"
        q = np.sqrt(d / n)
        lo, hi = (1 - q) ** 2, (1 + q) ** 2
        assert ev[0] < hi * 1.1 and ev[-1] > lo * 0.9, (
            f"n={n}, d={d}: eigenvalues span {ev[-1]:.3f}..{ev[0]:.3f}, but Marchenko-Pastur puts them in "
            f"{lo:.3f}..{hi:.3f}. Did you draw n points of d dimensions?"
        )
        ev2 = np.asarray(fn(n, d, 1), dtype=float)
        assert not np.allclose(ev, ev2), "different seeds should give different draws"
    print("check_gaussian_spectrum: correct")


def check_knn_entropy(fn: Callable[[np.ndarray], float]) -> None:
    """``fn(points [N, d]) -> entropy`` in nats: the Kozachenko-Leonenko estimate with k = 1."""
    rng = np.random.default_rng(2)
    for n, d, s in ((500, 2, 1.0), (800, 8, 0.3), (300, 16, 3.0)):
        x = rng.standard_normal((n, d)) * s
        want = knn_entropy(x, 1)
        got = float(fn(x))
        assert np.isfinite(got), (
            f"got {got}: is each point counted as its own nearest neighbour (distance 0)?"
        )
        assert abs(got - want) < 1e-6, (
            f"n={n}, d={d}: got {got:.4f}, expected {want:.4f}. Check the unit-ball volume "
            "(log V_d = d/2 log pi - log Gamma(d/2 + 1)), the digamma terms psi(N) - psi(1) and the "
            "factor d on the mean log distance."
        )
    print("check_knn_entropy: correct")
