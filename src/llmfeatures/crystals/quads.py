"""Parallelograms and trapezoids: the shapes four word vectors make.

Two pairs ``(a, b)`` and ``(c, d)`` of one relation make a **parallelogram** when their
differences ``b - a`` and ``d - c`` are parallel *and* equally long (``b - a = d - c``, so
``a + d = b + c``: "man is to king as woman is to queen"); a **trapezoid** when they are parallel
but of unequal length (the relation moves both words the same way, by different amounts).
:func:`quadrilateral` classifies four points; :func:`shape_table` counts both shapes among all
pairs of pairs of each relation, beside shuffled pairs (each output moved to another input of
the same relation), the control of :func:`~llmfeatures.crystals.parallelism`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# a pair of differences is "parallel" above this cosine and "equal" above this length ratio
MIN_COSINE = 0.7
MIN_RATIO = 0.8


@dataclass(frozen=True)
class Quadrilateral:
    """``cosine`` of ``b - a`` with ``d - c``; ``length_ratio`` shorter over longer difference
    (1 for equal lengths); ``residual``: ``|(b - a) - (d - c)|`` over the mean difference length
    (0 for an exact parallelogram); ``kind``: ``"parallelogram"``, ``"trapezoid"`` or
    ``"neither"``."""

    cosine: float
    length_ratio: float
    residual: float
    kind: str


def _kind(cos, ratio, min_cosine: float, min_ratio: float):
    return np.where(cos < min_cosine, "neither", np.where(ratio >= min_ratio, "parallelogram",
                                                          "trapezoid"))


def quadrilateral(a, b, c, d, min_cosine: float = MIN_COSINE, min_ratio: float = MIN_RATIO
                  ) -> Quadrilateral:
    """The shape of the pairs ``a -> b`` and ``c -> d`` (four vectors ``[dim]``)."""
    a, b, c, d = (np.asarray(v, dtype=np.float64) for v in (a, b, c, d))
    if not a.shape == b.shape == c.shape == d.shape or a.ndim != 1:
        raise ValueError(f"a, b, c, d must be vectors of one length; got {[v.shape for v in (a, b, c, d)]}.")
    u, v = b - a, d - c
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError("a pair has two identical points; its difference has no direction.")
    cos = float(u @ v / (nu * nv))
    ratio = float(min(nu, nv) / max(nu, nv))
    return Quadrilateral(cos, ratio, float(np.linalg.norm(u - v) / ((nu + nv) / 2)),
                         str(_kind(cos, ratio, min_cosine, min_ratio)))


def _shapes(diffs: np.ndarray, min_cosine: float, min_ratio: float) -> dict[str, float]:
    n = np.linalg.norm(diffs, axis=1)
    unit = diffs / np.where(n > 0, n, 1)[:, None]
    iu = np.triu_indices(len(diffs), 1)
    cos = (unit @ unit.T)[iu]
    ratio = (np.minimum.outer(n, n) / np.maximum(np.maximum.outer(n, n), 1e-12))[iu]
    kind = _kind(cos, ratio, min_cosine, min_ratio)
    return {"cosine": float(cos.mean()), "length_ratio": float(ratio.mean()),
            "parallelograms": float((kind == "parallelogram").mean()),
            "trapezoids": float((kind == "trapezoid").mean())}


def shape_table(inputs: np.ndarray, outputs: np.ndarray, relations: Sequence[str],
                min_cosine: float = MIN_COSINE, min_ratio: float = MIN_RATIO, n_shuffles: int = 20,
                seed: int = 0) -> pd.DataFrame:
    """Per relation, over all pairs of its pairs: mean cosine and length ratio of the two
    differences, and the shares of parallelograms and trapezoids (:func:`quadrilateral`'s
    thresholds); the same four numbers for shuffled pairs (``shuffled_*``, mean over
    ``n_shuffles`` within-relation permutations of the outputs).  ``inputs``/``outputs``
    ``[n_pairs, d]``."""
    x, y = np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)
    rel = np.asarray(relations)
    if x.shape != y.shape or x.ndim != 2 or len(rel) != len(x):
        raise ValueError(f"inputs and outputs must both be [n_pairs, d] with one relation per pair; "
                         f"got {x.shape}, {y.shape} and {len(rel)} relations.")
    rng = np.random.default_rng(seed)
    rows = []
    for name in pd.unique(rel):
        m = rel == name
        if m.sum() < 3:
            raise ValueError(f"relation {name!r} has {m.sum()} pairs; shapes need >= 3.")
        real = _shapes(y[m] - x[m], min_cosine, min_ratio)
        shuf = [_shapes(y[m][rng.permutation(m.sum())] - x[m], min_cosine, min_ratio)
                for _ in range(n_shuffles)]
        rows.append({"relation": name, "n_pairs": int(m.sum()), **real,
                     **{f"shuffled_{k}": float(np.mean([s[k] for s in shuf])) for k in real}})
    return pd.DataFrame(rows)
