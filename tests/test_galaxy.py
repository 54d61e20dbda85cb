"""Chapter 5 (galaxies): power-law fits, baselines, the k-NN entropy estimator and its bias, the
reference estimator, the layer table, the figures, the exercise checks and the Gemma Scope path
(offline, with a stand-in file system)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

from llmfeatures.galaxy import (
    GalaxyConfig,
    clustering_entropy,
    entropy,
    exercises,
    fit_power_law,
    galaxy_layers,
    gaussian_entropy,
    gemma,
    knn_entropy,
    participation_ratio,
    plots,
    rank_range,
    shuffle_columns,
    spectrum,
)

matplotlib.use("Agg")


def _rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q


def _power_law_cloud(n: int, d: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` Gaussian points whose covariance has eigenvalues ``rank**-alpha`` in a random basis."""
    ev = np.arange(1, d + 1, dtype=float) ** (-alpha)
    return (rng.standard_normal((n, d)) * np.sqrt(ev)) @ _rotation(d, rng).T


# ---------------------------------------------------------------------------- power-law fits
def test_rank_range_scales_with_d_model() -> None:
    assert rank_range(128) == (4, 64)
    assert rank_range(2304) == (72, 1152)
    with pytest.raises(ValueError, match="too small"):
        rank_range(6)


@pytest.mark.parametrize("alpha", [0.25, 0.7, 1.2])
def test_fit_is_exact_on_an_exact_power_law(alpha: float) -> None:
    ev = 3.0 * np.arange(1, 129, dtype=float) ** (-alpha)
    fit = fit_power_law(ev, (4, 64))
    assert fit.alpha == pytest.approx(alpha, abs=1e-10)
    assert fit.ci[0] <= fit.alpha <= fit.ci[1]
    assert np.allclose(fit.line([4, 64]), ev[[3, 63]])


@pytest.mark.parametrize("alpha", [0.3, 0.7, 1.2])
def test_fit_recovers_alpha_from_a_sampled_cloud_within_0_02(alpha: float) -> None:
    """Acceptance: the spectrum of a finite cloud is noisy; over the organism's range (ranks
    4..64 of 128) the fitted exponent is still within 0.02 of the true one."""
    rng = np.random.default_rng(int(alpha * 10))
    x = _power_law_cloud(40_000, 128, alpha, rng)
    fit = fit_power_law(spectrum(x), rank_range(128))
    assert abs(fit.alpha - alpha) < 0.02, fit


def test_fit_rejects_bad_input() -> None:
    ev = np.arange(1, 65, dtype=float) ** -0.5
    with pytest.raises(ValueError, match="largest first"):
        fit_power_law(ev[::-1], (2, 20))
    with pytest.raises(ValueError, match="at least three"):
        fit_power_law(ev, (10, 100))
    with pytest.raises(ValueError, match="positive"):
        fit_power_law(np.r_[ev[:30], np.zeros(34)], (2, 40))


def test_baselines_gaussian_flat_shuffle_decorrelates() -> None:
    rng = np.random.default_rng(0)
    x = _power_law_cloud(1024, 128, 0.8, rng)
    ranks = rank_range(128)
    steep = fit_power_law(spectrum(x), ranks).alpha
    gauss = fit_power_law(spectrum(rng.standard_normal((1024, 128))), ranks).alpha
    shuffled = shuffle_columns(x, rng)
    # every column keeps its values, but the cross-correlations are gone
    assert np.allclose(np.sort(shuffled, axis=0), np.sort(x, axis=0))
    off = np.abs(np.corrcoef(shuffled, rowvar=False) - np.eye(128)).max()
    assert off < 0.2 < np.abs(np.corrcoef(x, rowvar=False) - np.eye(128)).max()
    flat = fit_power_law(spectrum(shuffled), ranks).alpha
    assert gauss < 0.3 and flat < 0.4 < steep


def test_participation_ratio() -> None:
    assert participation_ratio(np.ones(10)) == pytest.approx(10)
    assert participation_ratio(np.r_[1.0, np.zeros(9)]) == pytest.approx(1)
    with pytest.raises(ValueError, match="single point"):
        participation_ratio(np.zeros(3))


# ---------------------------------------------------------------------------- entropy
@pytest.mark.parametrize("d, n", [(16, 2000), (64, 4000)])
def test_entropy_within_2_percent_on_gaussians_of_known_covariance(d: int, n: int) -> None:
    """Acceptance: the bias-corrected estimator on anisotropic, rotated Gaussians."""
    rng = np.random.default_rng(d)
    ev = 2.0 * np.arange(1, d + 1, dtype=float) ** (-0.6)
    q = _rotation(d, rng)
    cov = (q * ev) @ q.T
    true = gaussian_entropy(cov)
    x = rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T
    assert abs(entropy(x, seed=1) - true) < 0.02 * abs(true)


def test_plain_estimator_bias_grows_with_dimension() -> None:
    """Why the correction: the plain estimator is within 2% at d = 16 but not at d = 64."""
    rng = np.random.default_rng(0)
    for d, n, ok in ((16, 4000, True), (64, 4000, False)):
        x = rng.standard_normal((n, d))
        true = gaussian_entropy(np.eye(d))
        assert (abs(knn_entropy(x) - true) < 0.02 * true) is ok


def test_knn_entropy_refuses_duplicated_points() -> None:
    x = np.random.default_rng(0).standard_normal((50, 3))
    with pytest.raises(ValueError, match="duplicated rows"):
        knn_entropy(np.vstack([x, x[:5]]))


def test_negentropy_zero_for_a_gaussian_positive_for_clumps() -> None:
    rng = np.random.default_rng(3)
    gauss = rng.standard_normal((1024, 64)) @ _rotation(64, rng)
    centres = 4 * rng.standard_normal((8, 64))
    clumps = centres[rng.integers(8, size=1024)] + rng.standard_normal((1024, 64))
    g = clustering_entropy(gauss, d=16, n_boot=0)
    c = clustering_entropy(clumps, d=16, n_boot=0)
    assert abs(g.negentropy) < 3 * max(g.se, g.surrogate_sd)
    assert c.negentropy > g.negentropy + 10 * c.se
    assert np.isnan(g.reference)


def test_reference_bootstrap_duplicates_most_points() -> None:
    """The reference resamples with replacement: about 1 - 1/e of the points then have a copy of
    themselves as nearest neighbour, and its offset decides their distance."""
    x = np.random.default_rng(0).standard_normal((500, 8))
    ce = clustering_entropy(x, d=8, n_boot=5, n_rep=2)
    assert ce.zero_fraction == pytest.approx(1 - np.exp(-1), abs=0.03)
    assert abs(ce.reference) > 5 * abs(ce.negentropy)  # far from zero on a Gaussian cloud


# ---------------------------------------------------------------------------- layers and figures
@pytest.fixture(scope="module")
def synthetic_galaxy():
    rng = np.random.default_rng(0)
    decoders = {L: _power_law_cloud(512, 64, a, rng) for L, a in enumerate((0.4, 0.9))}
    covs = {L: np.cov(_power_law_cloud(4000, 64, 1.5, rng), rowvar=False) for L in decoders}
    cfg = GalaxyConfig(n_gaussian=3, n_rep=2, n_boot=3, entropy_dims=8)
    return galaxy_layers(decoders, covs, cfg)


def test_galaxy_layers_table(synthetic_galaxy) -> None:
    t = synthetic_galaxy.table
    assert list(t.index) == [0, 1]
    assert synthetic_galaxy.ranks == (2, 32)
    assert t.alpha_sae[0] < t.alpha_sae[1]
    assert (t.alpha_raw > t.alpha_sae).all()
    assert (t.alpha_gauss < t.alpha_sae).all()
    assert (t.alpha_sae_lo < t.alpha_sae).all() and (t.alpha_sae < t.alpha_sae_hi).all()
    assert t.negentropy.notna().all() and t.reference_negentropy.notna().all()


def test_figures_draw(synthetic_galaxy) -> None:
    import matplotlib.pyplot as plt

    f1 = plots.plot_spectra(synthetic_galaxy)
    assert f1.axes[0].get_xscale() == "log" and f1.legends
    f2 = plots.plot_depth(synthetic_galaxy)
    assert f2.axes[0].get_ylabel().startswith("alpha") and len(f2.axes) == 4  # two twin axes
    freq = {L: np.r_[0.0, np.full(511, 0.01)] for L in (0, 1)}
    f3 = plots.plot_principal_components(synthetic_galaxy, freq)
    assert len(f3.axes) == 7  # 2 layers x 3 projections + colour bar
    plt.close("all")


# ---------------------------------------------------------------------------- exercise checks
def test_exercise_checks_accept_the_package() -> None:
    exercises.check_power_law_alpha(lambda ev, a, b: fit_power_law(ev, (a, b)).alpha)
    exercises.check_gaussian_spectrum(
        lambda n, d, s: spectrum(np.random.default_rng(s).standard_normal((n, d))))
    exercises.check_knn_entropy(knn_entropy)


def test_exercise_checks_reject_wrong_answers() -> None:
    def zero_based(ev, a, b):  # ranks counted from 0 (and one rank short)
        r = np.arange(a, b)
        return -np.polyfit(np.log10(r), np.log10(ev[a:b]), 1)[0]

    with pytest.raises(AssertionError):
        exercises.check_power_law_alpha(zero_based)
    with pytest.raises(AssertionError, match="Marchenko-Pastur|eigenvalues"):
        exercises.check_gaussian_spectrum(  # d points in n dimensions
            lambda n, d, s: np.sort(np.linalg.eigvalsh(
                np.cov(np.random.default_rng(s).standard_normal((d, d)), rowvar=False)))[::-1])

    def with_self(x):  # the point itself as its nearest neighbour
        from scipy.special import digamma, gammaln
        from sklearn.neighbors import NearestNeighbors

        n, d = x.shape
        dist, _ = NearestNeighbors(n_neighbors=1).fit(x).kneighbors(x)
        with np.errstate(divide="ignore"):
            return digamma(n) - digamma(1) + d / 2 * np.log(np.pi) - gammaln(d / 2 + 1) + d * np.log(dist[:, 0]).mean()

    with pytest.raises(AssertionError, match="own nearest"):
        exercises.check_knn_entropy(with_self)


# ---------------------------------------------------------------------------- Gemma Scope path
def test_gemma_scope_path_is_the_canonical_sae() -> None:
    assert gemma.gemma_scope_path(12, "16k") == (
        "google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82/params.npz")
    assert gemma.gemma_scope_path(12, "65k").endswith("layer_12/width_65k/average_l0_72/params.npz")
    with pytest.raises(ValueError, match="layers 0..25"):
        gemma.gemma_scope_path(26)
    with pytest.raises(ValueError, match="width"):
        gemma.gemma_scope_path(3, "1m")


def test_decoder_download_sizes() -> None:
    assert gemma.decoder_bytes("16k", 1) == 16384 * 2304 * 4
    assert gemma.decoder_bytes("65k") == 4 * gemma.decoder_bytes("16k")


class _StandInHub:
    """An fsspec-like file system holding params.npz files in memory; records what is opened."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.opened = files, []

    def open(self, path, mode="rb"):
        self.opened.append(path)
        if path not in self.files:
            raise FileNotFoundError(path)
        return io.BytesIO(self.files[path])


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_gemma_galaxy_offline_with_a_stand_in_hub() -> None:
    rng = np.random.default_rng(0)
    d = 32
    files = {}
    for L in (0, 1):
        w = _power_law_cloud(300, d, 0.5 + L, rng).astype(np.float32)
        files[gemma.gemma_scope_path(L)] = _npz(W_enc=w.T.copy(), W_dec=w, b_enc=np.zeros(300),
                                                 b_dec=np.zeros(d), threshold=np.zeros(300))
    hub = _StandInHub(files)
    w0 = gemma.gemma_scope_decoder(0, fs=hub, d_model=d)
    assert w0.shape == (300, d) and w0.dtype == np.float32
    cfg = GalaxyConfig(ranks=(2, 16), n_gaussian=2, n_rep=2, n_boot=0, entropy_dims=8)
    gal = gemma.gemma_galaxy([0, 1], fs=hub, config=cfg, d_model=d, keep_rows=100)
    assert gal.n_layers == 26 and gal.decoders[1].shape == (100, d)
    assert gal.table.alpha_sae[1] > gal.table.alpha_sae[0]
    with pytest.raises(ValueError, match="expected"):
        gemma.gemma_scope_decoder(0, fs=hub)  # real width 2304 != 32


def test_gemma_decoder_offline_gives_a_clear_error() -> None:
    from llmfeatures.loaders import ModelUnavailableError

    class Offline:
        def open(self, path, mode="rb"):
            raise ConnectionError("no network")

    with pytest.raises(ModelUnavailableError, match="Gemma Scope decoder"):
        gemma.gemma_scope_decoder(5, fs=Offline())
