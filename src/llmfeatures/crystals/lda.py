"""Linear discriminant analysis of difference vectors, always scored on held-out pairs.

LDA (scikit-learn's ``LinearDiscriminantAnalysis``, relation = class) projects the differences on
the directions where the spread *between* relations is largest against the spread *within* them,
so it discounts distractors such as word length that vary inside every relation.  With about as
many dimensions as pairs, LDA can separate *any* labelling of the training pairs: fit and scored
on the same pairs, even permuted labels give a high silhouette.  So every score here is on
held-out pairs: stratified ``n_folds``-fold cross-validation (each pair is held out once per
repetition), the scaler and LDA fit on the other folds, the silhouette (relation labels) of the
held-out fold's projections, averaged over folds and ``n_repeats`` repetitions; the null fits on
permuted training labels and scores the held-out pairs with their true labels.

With tens of pairs per relation in ``d_model`` dimensions the within-relation covariance must be
shrunk to be inverted.  ``shrinkage="cv"`` chooses the amount for every fold by an inner
cross-validation on that fold's training pairs alone (:func:`choose_shrinkage`), so the held-out
pairs never inform it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def heldout_split(relations: Sequence[str], test_size: float = 0.5, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of a split stratified by relation (every relation in both)."""
    from sklearn.model_selection import train_test_split

    rel = np.asarray(relations)
    counts = pd.Series(rel).value_counts()
    if (counts < 2).any():
        raise ValueError(f"every relation needs >= 2 pairs to be split; {counts[counts < 2].index.tolist()} "
                         "have fewer.")
    idx = np.arange(len(rel))
    train, test = train_test_split(idx, test_size=test_size, stratify=rel, random_state=seed)
    return np.sort(train), np.sort(test)


SHRINKAGE_GRID: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9)


def choose_shrinkage(x: np.ndarray, labels: Sequence[str], grid: Sequence[float] = SHRINKAGE_GRID,
                     n_folds: int = 4, seed: int = 0) -> float:
    """The shrinkage of the within-class covariance in ``grid`` whose LDA classifies best under a
    stratified ``n_folds``-fold cross-validation of ``x`` ``[n, d]`` (already standardised) with
    ``labels`` ``[n]`` (scikit-learn's ``GridSearchCV``, accuracy).  Pass training pairs only."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    labels = np.asarray(labels)
    folds = min(n_folds, int(pd.Series(labels).value_counts().min()))
    if folds < 2:
        raise ValueError("every relation needs >= 2 training pairs to choose a shrinkage; pass a "
                         "number or 'auto' as shrinkage instead.")
    search = GridSearchCV(LinearDiscriminantAnalysis(solver="eigen"), {"shrinkage": list(grid)},
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return float(search.fit(x, labels).best_params_["shrinkage"])


def _lda(n_components: int, shrinkage):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    if shrinkage is None:
        return LinearDiscriminantAnalysis(n_components=n_components)
    return LinearDiscriminantAnalysis(n_components=n_components, solver="eigen", shrinkage=shrinkage)


def lda_projection(diffs: np.ndarray, relations: Sequence[str], train: np.ndarray,
                   n_components: int, shrinkage: float | str | None = "auto",
                   fit_labels: Sequence[str] | None = None) -> np.ndarray:
    """Coordinates ``[n, n_components]`` of all ``diffs`` ``[n, d]`` on the LDA directions fitted
    on the rows ``train`` only (``StandardScaler`` then LDA, both fitted on ``train``).
    ``fit_labels``: the labels used for the fit (default ``relations``; the null passes permuted
    ones).  ``shrinkage``: ``None`` for plain LDA (the reference), ``"auto"`` (Ledoit-Wolf),
    ``"cv"`` (:func:`choose_shrinkage` on the training rows) or a number in ``[0, 1]`` for a
    regularised within-class covariance."""
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(diffs, dtype=np.float64)
    labels = np.asarray(relations if fit_labels is None else fit_labels)
    k = len(np.unique(labels[train]))
    if not 1 <= n_components <= min(k - 1, x.shape[1]):
        raise ValueError(f"n_components must be in 1..{min(k - 1, x.shape[1])} for {k} relations "
                         f"in {x.shape[1]} dimensions; got {n_components}.")
    scaler = StandardScaler().fit(x[train])
    xt = scaler.transform(x[train])
    if shrinkage == "cv":
        shrinkage = choose_shrinkage(xt, labels[train])
    lda = _lda(n_components, shrinkage).fit(xt, labels[train])
    return lda.transform(scaler.transform(x))


def _silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(x, labels))


@dataclass
class LDASweep:
    """``table``: one row per ``n_components`` with ``heldout`` (mean silhouette of the held-out
    projections over folds and repetitions) and ``heldout_sd``, ``null`` (permuted training
    labels, same scoring) and ``null_sd``; ``heldout_plain``: held-out silhouette of plain LDA (no
    shrinkage, the reference's); ``in_sample`` (plain LDA fit and scored on the same, training,
    pairs, as the reference scores) and ``in_sample_null`` (plain LDA fit on permuted labels and
    scored with those same permuted labels: the trap).  ``raw``: silhouette of the held-out
    standardised differences before LDA (mean over folds).  ``best``: the ``n_components`` with
    the highest held-out silhouette.  ``shrinkages``: the shrinkage used in each fold (the
    ``"cv"`` choices, or the fixed setting)."""

    table: pd.DataFrame
    raw: float
    best: int
    n_pairs: int
    n_relations: int
    shrinkage: float | str | None
    shrinkages: list = field(default_factory=list)

    @property
    def gain(self) -> float:
        """Held-out silhouette at ``best`` minus the raw silhouette."""
        return float(self.table.loc[self.best, "heldout"] - self.raw)


def lda_sweep(diffs: np.ndarray, relations: Sequence[str], components: Sequence[int] | None = None,
              n_folds: int = 5, n_repeats: int = 1, shrinkage: float | str | None = "cv",
              seed: int = 0) -> LDASweep:
    """Silhouette of held-out pairs against the number of LDA components, with its nulls.

    ``diffs`` ``[n_pairs, d]``, ``relations`` ``[n_pairs]``.  ``components``: the counts swept
    (default ``1 .. n_relations - 1``).  Stratified ``n_folds``-fold cross-validation, repeated
    ``n_repeats`` times with fresh shuffles (scikit-learn's ``RepeatedStratifiedKFold``): each
    fold is fit on the other folds and scored on itself; the null permutes the training labels
    (a fresh permutation per fold).  ``shrinkage`` (see :func:`lda_projection`; ``"cv"`` is chosen
    once per fold from its training pairs) applies to ``heldout`` and ``null``; the ``*_plain``
    and ``in_sample*`` columns use plain LDA, as the reference."""
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(diffs, dtype=np.float64)
    rel = np.asarray(relations)
    if x.ndim != 2 or len(x) != len(rel):
        raise ValueError(f"diffs must be [n_pairs, d] with one relation per pair; got {x.shape} "
                         f"and {len(rel)} relations.")
    k = len(np.unique(rel))
    if k < 3:
        raise ValueError(f"need >= 3 relations for a sweep of LDA components; got {k}.")
    counts = pd.Series(rel).value_counts()
    if n_folds < 2 or (counts < n_folds).any():
        raise ValueError(f"n_folds must be >= 2 and at most the pairs of the smallest relation "
                         f"({counts.idxmin()!r}: {counts.min()}); got {n_folds}.")
    components = list(components) if components is not None else list(range(1, k))
    rng = np.random.default_rng(seed)
    keys = ("heldout", "null", "heldout_plain", "in_sample", "in_sample_null")
    rows: dict[int, dict[str, list[float]]] = {c: {key: [] for key in keys} for c in components}
    raw, used = [], []
    folds = RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=n_repeats, random_state=seed)
    for train, test in folds.split(x, rel):
        scaler = StandardScaler().fit(x[train])
        raw.append(_silhouette(scaler.transform(x[test]), rel[test]))
        shr = choose_shrinkage(scaler.transform(x[train]), rel[train], seed=seed) \
            if shrinkage == "cv" else shrinkage
        used.append(shr)
        perm = rel.copy()
        perm[train] = rel[train][rng.permutation(len(train))]
        for c in components:
            z = lda_projection(x, rel, train, c, shr)
            zn = lda_projection(x, rel, train, c, shr, fit_labels=perm)
            rows[c]["heldout"].append(_silhouette(z[test], rel[test]))
            rows[c]["null"].append(_silhouette(zn[test], rel[test]))
            zp = lda_projection(x, rel, train, c, None)
            zpn = lda_projection(x, rel, train, c, None, fit_labels=perm)
            rows[c]["heldout_plain"].append(_silhouette(zp[test], rel[test]))
            rows[c]["in_sample"].append(_silhouette(zp[train], rel[train]))
            rows[c]["in_sample_null"].append(_silhouette(zpn[train], perm[train]))
    table = pd.DataFrame([{"n_components": c, **{key: float(np.mean(v)) for key, v in r.items()},
                           "heldout_sd": float(np.std(r["heldout"])),
                           "null_sd": float(np.std(r["null"]))} for c, r in rows.items()]
                         ).set_index("n_components")
    return LDASweep(table=table, raw=float(np.mean(raw)), best=int(table["heldout"].idxmax()),
                    n_pairs=len(x), n_relations=k, shrinkage=shrinkage, shrinkages=used)
