"""Co-occurrence affinities between SAE features, and the statistics built on them.

Everything here works on the block co-occurrence counts of the feature engine
(:class:`llmfeatures.features.Cooccurrence`): ``counts [U, U]`` (``counts[i, j]`` = blocks in which
features ``i`` and ``j`` are both on, the diagonal = blocks in which ``i`` is on) and ``n_blocks``
(``T``).  For a pair ``(i, j)`` the 2 x 2 contingency table is

==========  ===================  =================================
            ``j`` on             ``j`` off
``i`` on    ``n11 = c_ij``       ``n10 = c_ii - c_ij``
``i`` off   ``n01 = c_jj - c_ij``  ``n00 = T - c_ii - c_jj + c_ij``
==========  ===================  =================================

and the five affinities of :data:`AFFINITIES` are functions of it (conventions of the Geometry of
Concepts reference code: a 0/0 ratio is 0, and the phi coefficient is shifted by +1 into [0, 2]
so that it can serve as a non-negative affinity).

The statistics: spectral clustering of an affinity into ``k`` lobes (scikit-learn, precomputed
affinity, seeded), the angular similarity of decoder directions (the geometry baseline),
adjusted mutual information against a permutation null, and the balanced accuracy of a logistic
regression from decoder vector to lobe, trained on the first 80% of features by index.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

AFFINITIES: tuple[str, ...] = ("simple_matching", "jaccard", "dice", "overlap", "phi")
AFFINITY_LABELS: dict[str, str] = {
    "simple_matching": "simple matching",
    "jaccard": "Jaccard",
    "dice": "Dice",
    "overlap": "overlap",
    "phi": "phi",
}


def _check_counts(counts: np.ndarray, n_blocks: int, dtype=np.float64) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"counts must be a square [U, U] matrix, got shape {c.shape}.")
    if not np.issubdtype(c.dtype, np.number) or np.any(c < 0):
        raise ValueError("counts must hold non-negative block counts (Cooccurrence.counts).")
    if int(n_blocks) < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}.")
    d = np.diag(c)
    if np.any(d > n_blocks):
        raise ValueError(f"a feature is on in more blocks ({int(d.max())}) than there are "
                         f"(n_blocks={n_blocks}); pass the Cooccurrence's own n_blocks.")
    if np.any(c > np.minimum(d[:, None], d[None, :])):
        raise ValueError("counts[i, j] exceeds counts[i, i] or counts[j, j]: the diagonal must be "
                         "the number of blocks in which each feature is on (Cooccurrence.counts).")
    return c.astype(dtype)


def contingency(counts: np.ndarray, n_blocks: int,
                dtype=np.float64) -> tuple[np.ndarray, ...]:
    """The four cells ``(n11, n10, n01, n00)`` of every pair's 2 x 2 table, each ``[U, U]`` of
    ``dtype``.  ``n10[i, j]``: blocks where ``i`` is on and ``j`` off; ``n01 = n10.T``.
    """
    n11 = _check_counts(counts, n_blocks, dtype)
    n = np.diag(n11)
    n10 = n[:, None] - n11
    n01 = n10.T
    n00 = n_blocks - n[:, None] - n[None, :] + n11
    return n11, n10, n01, n00


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def affinity(counts: np.ndarray, n_blocks: int, kind: str, dtype=np.float64) -> np.ndarray:
    """One affinity of every pair of features, ``[U, U]`` symmetric, from block counts.

    ``kind``:

    - ``"simple_matching"``: ``(n11 + n00) / T``, the share of blocks where the two agree;
    - ``"jaccard"``: ``n11 / (n11 + n10 + n01)``;
    - ``"dice"``: ``2 n11 / (2 n11 + n10 + n01)``;
    - ``"overlap"``: ``n11 / min(n1., n.1)``;
    - ``"phi"``: ``(n11 n00 - n10 n01) / sqrt(n1. n0. n.1 n.0) + 1``, in [0, 2].

    A ratio whose denominator is 0 (a feature never on, or, for phi, on in every block) is 0
    before the shift, as in the reference code.  ``dtype``: ``float64`` (exact for any count
    below 2**53); ``float32`` halves the memory for a 16k-feature SAE (each ``[U, U]`` array is
    then 1 GB), at about seven significant digits.
    """
    if kind not in AFFINITIES:
        raise ValueError(f"unknown affinity {kind!r}; choose one of {', '.join(AFFINITIES)}.")
    n11, n10, n01, n00 = contingency(counts, n_blocks, dtype)
    if kind == "simple_matching":
        return (n11 + n00) / n_blocks
    if kind == "jaccard":
        return _ratio(n11, n11 + n10 + n01)
    if kind == "dice":
        return _ratio(2 * n11, 2 * n11 + n10 + n01)
    if kind == "overlap":
        n = np.diag(n11)
        return _ratio(n11, np.minimum(n[:, None], n[None, :]))
    den = np.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    return _ratio(n11 * n00 - n10 * n01, den) + 1.0


def affinities(counts: np.ndarray, n_blocks: int, kinds: tuple[str, ...] = AFFINITIES,
               dtype=np.float64) -> dict[str, np.ndarray]:
    """:func:`affinity` for each of ``kinds``: ``{kind: [U, U]}``."""
    return {k: affinity(counts, n_blocks, k, dtype) for k in kinds}


def angular_similarity(vectors: np.ndarray) -> np.ndarray:
    """``1 - arccos(cos(v_i, v_j)) / pi`` for the rows of ``vectors [U, d]``: ``float64 [U, U]``
    in [0, 1] (1 for parallel, 0.5 for orthogonal, 0 for opposite directions).

    The geometry baseline of the reference: decoder rows ``sae.W_dec [U, d_model]``.
    """
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"vectors must be [U, d], got shape {v.shape}.")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a vector has zero length, so its angle is undefined; drop it first.")
    u = v / norms
    return 1.0 - np.arccos(np.clip(u @ u.T, -1.0, 1.0)) / np.pi


def spectral_lobes(aff: np.ndarray, k: int, seed: int = 42) -> np.ndarray:
    """Spectral clustering of a precomputed affinity ``[U, U]`` into ``k`` lobes: ``int [U]``.

    scikit-learn's ``SpectralClustering(affinity="precomputed", assign_labels="kmeans",
    random_state=seed)``, the reference's settings (seed 42).
    """
    from sklearn.cluster import SpectralClustering

    a = np.asarray(aff)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"the affinity must be a square [U, U] matrix, got shape {a.shape}.")
    if not 2 <= k < len(a):
        raise ValueError(f"k must be between 2 and the number of features - 1 ({len(a) - 1}), "
                         f"got {k}.")
    if np.any(a < 0) or not np.allclose(a, a.T, atol=1e-6):
        raise ValueError("the affinity must be symmetric and non-negative (use the phi + 1 form).")
    model = SpectralClustering(n_clusters=k, affinity="precomputed", assign_labels="kmeans",
                               random_state=seed)
    return model.fit_predict(a).astype(np.int64)


# -------------------------------------------------------------------------- agreement statistics
@dataclass(frozen=True)
class NullTest:
    """A statistic, the mean and standard deviation of its null distribution, and the z-score
    ``(value - null_mean) / null_std``."""

    value: float
    null_mean: float
    null_std: float
    n: int

    @property
    def z(self) -> float:
        if self.null_std == 0:
            return float("inf") if self.value > self.null_mean else 0.0
        return (self.value - self.null_mean) / self.null_std


def ami_test(a: np.ndarray, b: np.ndarray, n_permutations: int = 100,
             seed: int = 0) -> NullTest:
    """Adjusted mutual information between two labelings ``a, b [n]`` and its permutation null
    (``b`` shuffled ``n_permutations`` times with a seeded generator)."""
    from sklearn.metrics import adjusted_mutual_info_score

    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"labelings must be 1-D and of equal length, got {a.shape} and {b.shape}.")
    if n_permutations < 2:
        raise ValueError("n_permutations must be >= 2 to estimate a standard deviation.")
    rng = np.random.default_rng(seed)
    value = adjusted_mutual_info_score(a, b)
    null = np.array([adjusted_mutual_info_score(a, rng.permutation(b))
                     for _ in range(n_permutations)])
    return NullTest(float(value), float(null.mean()), float(null.std()), n_permutations)


def lobe_accuracy(vectors: np.ndarray, labels: np.ndarray, train_frac: float = 0.8) -> float:
    """Balanced test accuracy of a logistic regression from ``vectors [U, d]`` to ``labels [U]``.

    As in the reference: the first ``train_frac`` of the rows *by index* train
    (``LogisticRegression(max_iter=1000)``), the rest test, no shuffling.  Returns NaN when the
    training part holds a single lobe.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    x, y = np.asarray(vectors, dtype=np.float64), np.asarray(labels)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} vectors but {len(y)} labels.")
    if not 0 < train_frac < 1:
        raise ValueError(f"train_frac must lie in (0, 1), got {train_frac}.")
    cut = int(len(y) * train_frac)
    if len(np.unique(y[:cut])) < 2 or cut == len(y):
        return float("nan")
    clf = LogisticRegression(max_iter=1000).fit(x[:cut], y[:cut])
    with warnings.catch_warnings():  # a lobe absent from the test part is not an error here
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y[cut:], clf.predict(x[cut:])))


def random_vector_accuracy(labels: np.ndarray, dim: int, n_trials: int = 100, seed: int = 0,
                           train_frac: float = 0.8) -> np.ndarray:
    """:func:`lobe_accuracy` with the vectors replaced by random unit Gaussian vectors in ``dim``
    dimensions, ``n_trials`` times: ``float64 [n_trials]`` (the reference's random baseline)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_trials)
    for t in range(n_trials):
        v = rng.standard_normal((len(labels), dim))
        out[t] = lobe_accuracy(v / np.linalg.norm(v, axis=1, keepdims=True), labels, train_frac)
    return out


# -------------------------------------------------------------------------- what the lobes do
def winning_lobes(blocks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The winning lobe of every block: ``int [n_blocks]``.

    ``blocks``: ``bool [n_blocks, U]`` (``Cooccurrence.block_matrix()`` restricted to the
    clustered features); ``labels [U]`` lobe of each feature.  A block's winner is the lobe with
    the largest *fraction* of its features on in the block (so big lobes do not win by size);
    ``-1`` for a block in which none of the features is on.
    """
    b = np.asarray(blocks, dtype=bool)
    labels = np.asarray(labels)
    if b.ndim != 2 or b.shape[1] != len(labels):
        raise ValueError(f"blocks must be [n_blocks, {len(labels)}] for {len(labels)} labels, "
                         f"got shape {b.shape}.")
    k = int(labels.max()) + 1
    onehot = np.zeros((len(labels), k))
    onehot[np.arange(len(labels)), labels] = 1.0
    frac = (b.astype(np.float64) @ onehot) / np.maximum(onehot.sum(0), 1)
    win = frac.argmax(1)
    win[~b.any(1)] = -1
    return win


def domain_lobe_table(winners: np.ndarray, block_domain: np.ndarray, n_domains: int,
                      k: int) -> np.ndarray:
    """Share of each domain's blocks won by each lobe: ``float64 [n_domains, k]`` (rows sum to 1
    over blocks with a winner).  ``block_domain [n_blocks]``: the domain code of each block's
    document (``stats.corpus.doc_labels["domain"][cooc.block_doc]``)."""
    w, d = np.asarray(winners), np.asarray(block_domain)
    ok = (w >= 0) & (d >= 0)
    table = np.zeros((n_domains, k))
    np.add.at(table, (d[ok], w[ok]), 1.0)
    return table / np.maximum(table.sum(1, keepdims=True), 1)


def dominant_domain(blocks: np.ndarray, block_domain: np.ndarray, n_domains: int) -> np.ndarray:
    """Each feature's dominant domain: the domain in whose blocks it is on most *often*
    (the share of that domain's blocks, so large domains are not favoured): ``int [U]``,
    ``-1`` for a feature never on."""
    b = np.asarray(blocks, dtype=bool)
    d = np.asarray(block_domain)
    onehot = np.zeros((len(d), n_domains))
    ok = d >= 0
    onehot[np.flatnonzero(ok), d[ok]] = 1.0
    rate = (onehot.T @ b.astype(np.float64)) / np.maximum(onehot.sum(0), 1)[:, None]  # [D, U]
    dom = rate.argmax(0)
    dom[~b.any(0)] = -1
    return dom
