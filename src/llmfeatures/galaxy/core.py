"""The galaxy scale of SAE geometry: spectra, power-law fits, participation ratio, clustering entropy.

A *point cloud* here is a matrix ``points [N, d]``: the decoder rows ``sae.W_dec [U, d_model]`` of
one SAE (one point per latent), or residual-stream activations of ``blocks.L.hook_resid_post``
(summarised by their covariance ``[d_model, d_model]`` from the feature engine).

Spectrum: the eigenvalues of the covariance of the cloud, largest first.  Power law: a straight
line through ``log10(eigenvalue)`` against ``log10(rank)`` over a rank range; ``alpha`` is minus
its slope.  Ranks are 1-based and the range is inclusive.

Clustering entropy: the Kozachenko-Leonenko k-nearest-neighbour estimate of the differential
entropy of the cloud (after z-scoring and PCA), compared with the entropy of a Gaussian of the same
covariance.  Their difference, the *negentropy*, is zero for a Gaussian and grows when points
gather in clumps.  The plain estimator is biased upwards, more so in high dimension; we measure
that bias on Gaussian surrogates with the same covariance and the same number of points and
remove it, so a Gaussian cloud scores zero up to noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sstats
from scipy.special import digamma, gammaln
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits


def _as_points(points, name: str = "points") -> np.ndarray:
    if hasattr(points, "detach"):
        points = points.detach().float().cpu().numpy()
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, d] (one row per point), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least two rows (points), got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; drop or fix those rows first")
    return x


# ------------------------------------------------------------------------------------------------
# spectra and power laws
# ------------------------------------------------------------------------------------------------
def spectrum_from_cov(cov) -> np.ndarray:
    """Eigenvalues of a symmetric covariance ``[d, d]``, largest first, ``[d]``."""
    c = np.asarray(cov, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"cov must be a square [d, d] matrix, got shape {c.shape}")
    return np.linalg.eigvalsh((c + c.T) / 2)[::-1].copy()


def spectrum(points) -> np.ndarray:
    """Eigenvalues of the covariance of ``points [N, d]`` (rows are points), largest first, ``[d]``."""
    x = _as_points(points)
    return spectrum_from_cov(np.cov(x, rowvar=False))


def rank_range(d: int, fraction: tuple[float, float] = (1 / 32, 1 / 2)) -> tuple[int, int]:
    """The fit range ``(first, last)`` of 1-based ranks, inclusive, scaled to the dimension ``d``.

    ``fraction = (1/32, 1/2)`` gives ranks 4..64 for ``d_model = 128``.  (The paper fits ranks
    11..150 of Gemma-2-2b's 2304 dimensions, i.e. fractions of about 1/200 and 1/15; on a
    128-dimensional model that would leave eight points, so the organism uses a wider range.)
    """
    lo_f, hi_f = fraction
    if not 0 < lo_f < hi_f <= 1:
        raise ValueError(f"fraction must satisfy 0 < low < high <= 1, got {fraction}")
    lo, hi = max(1, round(d * lo_f)), min(d, round(d * hi_f))
    if hi - lo < 3:
        raise ValueError(f"d = {d} is too small for a power-law fit over fractions {fraction}")
    return lo, hi


@dataclass(frozen=True)
class PowerLawFit:
    """``eigenvalue ~ 10**intercept * rank**(-alpha)`` over ranks ``first..last`` (1-based,
    inclusive); ``ci`` is the confidence interval of ``alpha`` from the least-squares fit
    (Student t, ``level``).  Neighbouring eigenvalues are not independent, so read the interval as
    the fit's precision, not as the spread over repeated samples."""

    alpha: float
    intercept: float
    ci: tuple[float, float]
    first: int
    last: int
    level: float = 0.95

    def line(self, ranks) -> np.ndarray:
        """The fitted eigenvalues at ``ranks``."""
        return 10 ** self.intercept * np.asarray(ranks, dtype=np.float64) ** (-self.alpha)


def fit_power_law(eigenvalues, ranks: tuple[int, int], level: float = 0.95) -> PowerLawFit:
    """Fit ``log10(eigenvalue) = intercept - alpha * log10(rank)`` over 1-based ranks
    ``ranks = (first, last)`` inclusive of ``eigenvalues [d]`` (largest first)."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    first, last = int(ranks[0]), int(ranks[1])
    if ev.ndim != 1:
        raise ValueError(f"eigenvalues must be 1-D [d], got shape {ev.shape}")
    if not 1 <= first < last <= ev.size or last - first < 2:
        raise ValueError(
            f"rank range {first}..{last} must lie in 1..{ev.size} and hold at least three ranks"
        )
    if np.any(np.diff(ev) > 1e-12 * max(1.0, abs(ev[0]))):
        raise ValueError("eigenvalues must be sorted largest first (use spectrum(...))")
    seg = ev[first - 1 : last]
    if np.any(seg <= 0):
        raise ValueError(
            f"eigenvalues at ranks {first}..{last} must be positive; the cloud has fewer than "
            f"{last} independent directions: choose a smaller rank range"
        )
    r = np.arange(first, last + 1, dtype=np.float64)
    res = sstats.linregress(np.log10(r), np.log10(seg))
    t = sstats.t.ppf(0.5 + level / 2, r.size - 2)
    alpha = -float(res.slope)
    half = float(t * res.stderr)
    return PowerLawFit(alpha, float(res.intercept), (alpha - half, alpha + half), first, last, level)


def participation_ratio(eigenvalues) -> float:
    """Effective number of dimensions ``(sum lambda)^2 / sum lambda^2`` (1 to d)."""
    ev = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0, None)
    if not ev.any():
        raise ValueError("all eigenvalues are zero: the cloud is a single point")
    return float(ev.sum() ** 2 / (ev**2).sum())


def gaussian_points(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """A same-shape Gaussian baseline: ``[n, d]`` independent standard normal entries."""
    return rng.standard_normal((n, d))


def shuffle_columns(points, rng: np.random.Generator) -> np.ndarray:
    """Permute every column of ``points [N, d]`` independently: each coordinate keeps its values
    (so its variance) but loses its pairing with the other coordinates (so every correlation)."""
    x = _as_points(points)
    return rng.permuted(x, axis=0)


# ------------------------------------------------------------------------------------------------
# entropy
# ------------------------------------------------------------------------------------------------
def gaussian_entropy(cov) -> float:
    """Differential entropy (nats) of a Gaussian with covariance ``cov [d, d]``."""
    c = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    sign, logdet = np.linalg.slogdet(c)
    if sign <= 0:
        raise ValueError("cov must be positive definite (the cloud spans fewer than d directions)")
    d = c.shape[0]
    return float(0.5 * d * (1 + np.log(2 * np.pi)) + 0.5 * logdet)


def _check_no_duplicates(x: np.ndarray) -> None:
    n_unique = np.unique(x, axis=0).shape[0]
    if n_unique < x.shape[0]:
        raise ValueError(
            f"points has {x.shape[0] - n_unique} duplicated rows: a k-NN entropy estimate needs "
            "distinct points (a zero neighbour distance has log -inf). Subsample without "
            "replacement, or drop duplicates with np.unique(points, axis=0)."
        )


def knn_log_distances(points, k: int = 1) -> np.ndarray:
    """``log`` of each point's distance to its ``k``-th nearest *other* point, ``[N]``."""
    x = _as_points(points)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k must be in 1..N-1 = 1..{x.shape[0] - 1}, got {k}")
    _check_no_duplicates(x)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    # column 0 is the point itself (distance 0); ties between distinct points cannot be zero
    return np.log(dist[:, k])


def knn_entropy(points, k: int = 1) -> float:
    """Kozachenko-Leonenko estimate of the differential entropy (nats) of ``points [N, d]``:
    ``psi(N) - psi(k) + log V_d + d * mean(log rho_k)``, with ``V_d`` the volume of the unit ball
    in ``d`` dimensions and ``rho_k`` each point's distance to its k-th nearest other point."""
    logr = knn_log_distances(points, k)
    n, d = np.shape(points)
    log_vd = 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1)
    return float(digamma(n) - digamma(k) + log_vd + d * logr.mean())


def knn_entropy_bias(cov, n: int, k: int = 1, n_rep: int = 5, seed: int = 0) -> tuple[float, float]:
    """Bias of :func:`knn_entropy` on ``n`` Gaussian points with covariance ``cov``: mean and
    standard deviation over ``n_rep`` draws of (estimate - true entropy)."""
    c = np.asarray(cov, dtype=np.float64)
    true = gaussian_entropy(c)
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(c)
    errs = [knn_entropy(rng.standard_normal((n, c.shape[0])) @ chol.T, k) - true for _ in range(n_rep)]
    return float(np.mean(errs)), float(np.std(errs, ddof=1) if n_rep > 1 else 0.0)


def entropy(points, k: int = 1, n_rep: int = 5, seed: int = 0) -> float:
    """Bias-corrected k-NN entropy (nats): :func:`knn_entropy` minus its bias on Gaussians with
    the sample covariance of ``points`` and as many points (:func:`knn_entropy_bias`).  Exact in
    expectation for Gaussian clouds; for clumped clouds the correction is the Gaussian one, so read
    differences between clouds of the same size and dimension, not absolute values."""
    x = _as_points(points)
    bias, _ = knn_entropy_bias(np.cov(x, rowvar=False), x.shape[0], k, n_rep, seed)
    return knn_entropy(x, k) - bias


def reference_knn_entropy(points, k: int = 1, offset: float = 1e-2) -> float:
    """The estimator of the reference notebook, for comparison only: ``d * mean(log(rho_k +
    offset)) + mean(log lambda) + log(N - 1) - psi(k)``, with ``lambda`` the covariance
    eigenvalues (in place of the unit-ball volume) and an ``offset`` added to every distance, so
    duplicated points (distance 0) do not give ``-inf``."""
    x = _as_points(points)
    n, d = x.shape
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    # a duplicated point can come back as its own neighbour in any column; sort to be safe
    rho = np.sort(dist, axis=1)[:, k]
    ev = np.maximum(spectrum(x), 1e-10)
    psi_k = digamma(k)
    return float(d * np.mean(np.log(rho + offset)) + np.mean(np.log(ev)) + np.log(n - 1) - psi_k)


@dataclass(frozen=True)
class ClusteringEntropy:
    """Negentropy (nats) of one cloud after z-scoring and PCA to ``d`` dimensions, ``n`` points.

    ``negentropy`` = Gaussian entropy of the PCA cloud's covariance - bias-corrected k-NN entropy
    (0 for a Gaussian cloud); ``se``: its standard error from the spread of the per-point terms;
    ``bias``: the k-NN estimator's bias removed (measured on Gaussian surrogates);
    ``surrogate_sd``: spread of the negentropy of those surrogates (the Gaussian baseline's noise).
    ``reference``/``reference_ci``: the reference notebook's negentropy (its estimator, offset
    and 30 bootstrap resamples drawn *with* replacement) on the same PCA cloud; ``zero_fraction``:
    share of points whose nearest neighbour in those resamples is a copy of themselves."""

    negentropy: float
    se: float
    h_knn: float
    h_gauss: float
    bias: float
    surrogate_sd: float
    n: int
    d: int
    reference: float
    reference_ci: float
    zero_fraction: float


def pca_cloud(points, n_points: int | None, d: int, seed: int = 0) -> np.ndarray:
    """Subsample ``n_points`` rows *without replacement*, z-score each column, project on the
    first ``d`` principal components: ``[min(N, n_points), d]`` (the reference's preprocessing)."""
    x = _as_points(points)
    rng = np.random.default_rng(seed)
    if n_points is not None and x.shape[0] > n_points:
        x = x[np.sort(rng.choice(x.shape[0], n_points, replace=False))]
    sd = x.std(axis=0)
    if np.any(sd == 0):
        raise ValueError("a column of points is constant; drop it before z-scoring")
    z = (x - x.mean(axis=0)) / sd
    if not 1 <= d <= min(z.shape):
        raise ValueError(f"PCA dimension d = {d} must be in 1..{min(z.shape)} for points {x.shape}")
    return PCA(n_components=d, svd_solver="full").fit_transform(z)


def clustering_entropy(points, *, n_points: int | None = 5000, d: int = 100, k: int = 1,
                       n_rep: int = 5, n_boot: int = 30, seed: int = 0) -> ClusteringEntropy:
    """Clustering entropy of ``points [N, D]`` (see :class:`ClusteringEntropy`).  ``n_boot = 0``
    skips the reference estimator.  Runs single-threaded: the many small neighbour searches are
    faster so than with a thread pool, markedly so on a busy machine."""
    with threadpool_limits(1):
        return _clustering_entropy(points, n_points, d, k, n_rep, n_boot, seed)


def _clustering_entropy(points, n_points, d, k, n_rep, n_boot, seed) -> ClusteringEntropy:
    y = pca_cloud(points, n_points, d, seed)
    _check_no_duplicates(y)
    n = y.shape[0]
    cov = np.cov(y, rowvar=False)
    h_gauss = gaussian_entropy(cov)
    logr = knn_log_distances(y, k)
    h_knn = knn_entropy(y, k)
    bias, sd = knn_entropy_bias(cov, n, k, n_rep, seed + 1)
    neg = h_gauss - (h_knn - bias)
    se = float(d * logr.std(ddof=1) / np.sqrt(n))
    ref, ref_ci, zero = float("nan"), float("nan"), float("nan")
    if n_boot:
        rng = np.random.default_rng(seed + 2)
        vals, zeros = [], []
        for _ in range(n_boot):
            idx = rng.choice(n, n, replace=True)
            yb = y[idx]
            vals.append(h_gauss - reference_knn_entropy(yb, k))
            counts = np.bincount(idx, minlength=n)
            zeros.append(float(np.mean(counts[idx] > 1)))
        ref = float(np.mean(vals))
        ref_ci = float(sstats.t.ppf(0.975, n_boot - 1) * np.std(vals, ddof=1) / np.sqrt(n_boot))
        zero = float(np.mean(zeros))
    return ClusteringEntropy(float(neg), se, h_knn, h_gauss, bias, sd, n, d, ref, ref_ci, zero)
