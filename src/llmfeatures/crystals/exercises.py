"""Check functions for the exercises of chapter 3.  Each runs the reader's function on small cases
with known answers and raises an ``AssertionError`` saying what is wrong, or prints a confirmation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmfeatures.crystals.geometry import mean_pairwise_cosine
from llmfeatures.crystals.lda import _silhouette, heldout_split, lda_projection
from llmfeatures.crystals.quads import MIN_COSINE, MIN_RATIO, quadrilateral


def check_difference_cosine(fn: Callable[[np.ndarray, np.ndarray], float]) -> None:
    """``fn(inputs [n, d], outputs [n, d]) -> float``: the mean cosine over all pairs ``i < j`` of
    the difference vectors ``outputs - inputs``."""
    rng = np.random.default_rng(3)
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    y = x + np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
    got = float(fn(x, y))
    assert abs(got - 1 / 3) < 1e-9, (
        f"three differences (1,0), (3,0), (0,1) have cosines 1, 0, 0 pairwise, mean 1/3; got "
        f"{got:.4f}. Normalise each difference to unit length, and leave out each vector's cosine "
        "with itself.")
    for n, d in ((5, 8), (20, 16)):
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 2.0
        want = mean_pairwise_cosine(y - x)
        got = float(fn(x, y))
        assert abs(got - want) < 1e-9, f"n={n}, d={d}: got {got:.4f}, expected {want:.4f}."
    print("check_difference_cosine: correct")


def check_heldout_lda(fn: Callable[..., float]) -> None:
    """``fn(diffs [n, d], relations [n], train, test, n_components) -> float``: fit a
    ``StandardScaler`` and a shrinkage LDA (``solver="eigen", shrinkage="auto"``) on the rows
    ``train``, project the rows ``test`` and return their silhouette with their relations."""
    rng = np.random.default_rng(4)
    n_rel, m, d = 5, 12, 40
    rel = np.repeat([f"r{i}" for i in range(n_rel)], m)
    diffs = rng.normal(size=(n_rel, d))[np.repeat(np.arange(n_rel), m)] * 0.7 \
        + rng.normal(size=(n_rel * m, d))
    for seed, k in ((0, 2), (1, 4)):
        train, test = heldout_split(rel, 0.5, seed)
        want = _silhouette(lda_projection(diffs, rel, train, k, "auto")[test], rel[test])
        inside = _silhouette(lda_projection(diffs, rel, train, k, "auto")[train], rel[train])
        got = float(fn(diffs, rel, train, test, k))
        assert abs(got - inside) > 1e-6 or abs(got - want) < 1e-6, (
            "you scored the training pairs: score the projections of the test rows only.")
        assert abs(got - want) < 1e-6, (
            f"{k} components: got {got:.4f}, expected {want:.4f}. Fit the scaler and the LDA on "
            "the training rows only, transform the test rows with both, and call "
            "silhouette_score(projected_test, relations[test]).")
    print("check_heldout_lda: correct")


def check_quadrilateral(fn: Callable[..., str]) -> None:
    """``fn(a, b, c, d) -> "parallelogram" | "trapezoid" | "neither"`` for the pairs ``a -> b`` and
    ``c -> d``: parallel when the cosine of ``b - a`` and ``d - c`` is at least ``MIN_COSINE``,
    a parallelogram when also the shorter difference is at least ``MIN_RATIO`` of the longer."""
    rng = np.random.default_rng(5)
    o = np.zeros(3)
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    cases = [((o, e1, e2, e2 + e1), "parallelogram"), ((o, e1, e2, e2 + 2 * e1), "trapezoid"),
             ((o, e1, e2, e2 - e1), "neither"), ((o, e1, e2, 2 * e2), "neither")]
    for _ in range(20):
        pts = rng.normal(size=(4, 6))
        cases.append((tuple(pts), quadrilateral(*pts, MIN_COSINE, MIN_RATIO).kind))
        u = rng.normal(size=6)
        a, c = rng.normal(size=6), rng.normal(size=6)
        s = rng.uniform(0.3, 1.5)
        d = c + s * u + 0.3 * rng.normal(size=6)
        cases.append(((a, a + u, c, d), quadrilateral(a, a + u, c, d).kind))
    for (a, b, c, d), want in cases:
        got = fn(a, b, c, d)
        assert got == want, (
            f"expected {want!r}, got {got!r} for the differences {np.round(b - a, 2)} and "
            f"{np.round(d - c, 2)}. Parallel means cosine >= {MIN_COSINE} (an opposite direction is "
            f"not parallel here); equal means shorter/longer >= {MIN_RATIO}.")
    print("check_quadrilateral: correct")
