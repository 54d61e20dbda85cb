"""Layer-by-layer galaxy measurements of the organism (and of any set of decoders).

Layer ``L`` is the SAE on ``blocks.L.hook_resid_post``; its raw-activation spectrum comes from the
feature engine's covariance of that same hook (``stats.resid[L].cov``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmfeatures.config import pick
from llmfeatures.galaxy.core import (
    ClusteringEntropy,
    PowerLawFit,
    clustering_entropy,
    fit_power_law,
    gaussian_points,
    participation_ratio,
    rank_range,
    shuffle_columns,
    spectrum,
    spectrum_from_cov,
)

# The paper's figures for Gemma Scope (residual SAEs of Gemma-2-2b, 65k latents), layers 0..25:
# alpha fitted over ranks 11..150 (1-based) of the decoder spectrum.
PAPER_ALPHA: tuple[float, ...] = (
    0.238, 0.267, 0.267, 0.270, 0.316, 0.337, 0.340, 0.347, 0.351, 0.364, 0.365, 0.463, 0.468,
    0.486, 0.481, 0.374, 0.362, 0.359, 0.342, 0.311, 0.282, 0.276, 0.247, 0.232, 0.255, 0.324,
)
PAPER_N_LAYERS = 26
PAPER_RANKS = (11, 150)
PAPER_GAUSSIAN_SLOPE = -0.028
# The paper's clustering negentropy: its peak (layer 11) and its two lowest layers, read off the
# figure as about 355-356 (we plot 355.5); the reference's estimator and offset, see chapter 5.
PAPER_NEGENTROPY: dict[int, float] = {0: 355.5, 11: 368.6, 23: 355.5}


@dataclass(frozen=True)
class GalaxyConfig:
    """Settings of the galaxy measurements.

    ``rank_fraction``: the power-law fit range as fractions of ``d_model`` (:func:`rank_range`),
    unless ``ranks`` gives 1-based inclusive ranks outright.  ``n_gaussian``: draws of the
    same-shape Gaussian baseline.  Entropy: ``entropy_points`` rows (subsampled without
    replacement), PCA to ``entropy_dims``, ``k``-th neighbour, ``n_rep`` Gaussian surrogates for
    the bias, ``n_boot`` resamples for the reference estimator."""

    rank_fraction: tuple[float, float] = (1 / 32, 1 / 2)
    ranks: tuple[int, int] | None = None
    n_gaussian: int = 5
    entropy_points: int = 5000
    entropy_dims: int = 16
    k: int = 1
    n_rep: int = 5
    n_boot: int = 30
    seed: int = 0

    def fit_ranks(self, d: int) -> tuple[int, int]:
        """The 1-based inclusive rank range used for a cloud of dimension ``d``."""
        return tuple(self.ranks) if self.ranks is not None else rank_range(d, self.rank_fraction)


PRESETS: dict[str, GalaxyConfig] = {
    "ci": GalaxyConfig(n_gaussian=3, n_rep=3, n_boot=10),
    "book": GalaxyConfig(),
    "gpu": GalaxyConfig(entropy_dims=32),
    "paper": GalaxyConfig(entropy_dims=64),
}
# Gemma Scope in the paper's settings (decoder rows of 2304 dimensions).
GEMMA_CONFIG = GalaxyConfig(ranks=PAPER_RANKS, entropy_points=5000, entropy_dims=100)


def galaxy_config(scale: str | None = None) -> GalaxyConfig:
    """The preset for ``scale`` (default: ``$LLMFEATURES_SCALE``)."""
    return pick(PRESETS, scale)


@dataclass
class Galaxy:
    """Results for a set of layers.

    ``table``: one row per layer (alphas with confidence intervals, baselines, participation
    ratios, negentropy).  ``spectra[L][name]`` ``[d]`` and ``fits[L][name]`` for the names
    ``"SAE decoder"``, ``"shuffled decoder"``, ``"Gaussian"`` and, when given,
    ``"raw activations"``.  ``decoders[L]`` ``[U, d]``; ``entropy[L]`` the
    :class:`ClusteringEntropy`."""

    table: pd.DataFrame
    spectra: dict[int, dict[str, np.ndarray]]
    fits: dict[int, dict[str, PowerLawFit]]
    decoders: dict[int, np.ndarray]
    entropy: dict[int, ClusteringEntropy]
    config: GalaxyConfig
    n_layers: int
    extra: dict = field(default_factory=dict)

    @property
    def ranks(self) -> tuple[int, int]:
        first = next(iter(self.fits.values()))["SAE decoder"]
        return first.first, first.last


def galaxy_layers(decoders: Mapping[int, np.ndarray | Callable[[], np.ndarray]],
                  raw_covs: Mapping[int, np.ndarray] | None = None,
                  config: GalaxyConfig | None = None, n_layers: int | None = None,
                  entropy: bool = True, keep_rows: int | None = None) -> Galaxy:
    """Measure every layer of ``decoders`` (``{L: W_dec [U, d]}``, or ``{L: loader}`` with a
    function returning it, called one layer at a time so only one decoder is in memory), with the
    raw-activation covariance ``raw_covs[L] [d, d]`` where given.  ``keep_rows``: keep only that
    many random rows of each decoder in ``Galaxy.decoders`` (``None``: all)."""
    cfg = config or galaxy_config()
    raw_covs = dict(raw_covs or {})
    rows, spectra, fits, decs, ents = [], {}, {}, {}, {}
    for L in sorted(decoders):
        w = decoders[L]() if callable(decoders[L]) else decoders[L]
        w = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float64)
        n, d = w.shape
        ranks = cfg.fit_ranks(d)
        rng = np.random.default_rng(cfg.seed + 1000 * L)
        sp = {"SAE decoder": spectrum(w), "shuffled decoder": spectrum(shuffle_columns(w, rng))}
        gauss = [spectrum(gaussian_points(n, d, rng)) for _ in range(cfg.n_gaussian)]
        sp["Gaussian"] = gauss[0]
        if L in raw_covs:
            sp["raw activations"] = spectrum_from_cov(raw_covs[L])
        ft = {name: fit_power_law(ev, ranks) for name, ev in sp.items()}
        g_alphas = [fit_power_law(ev, ranks).alpha for ev in gauss]
        row = {
            "layer": L,
            "alpha_sae": ft["SAE decoder"].alpha,
            "alpha_sae_lo": ft["SAE decoder"].ci[0],
            "alpha_sae_hi": ft["SAE decoder"].ci[1],
            "alpha_gauss": float(np.mean(g_alphas)),
            "alpha_gauss_sd": float(np.std(g_alphas, ddof=1)) if len(g_alphas) > 1 else 0.0,
            "alpha_shuffled": ft["shuffled decoder"].alpha,
            "alpha_raw": ft["raw activations"].alpha if L in raw_covs else np.nan,
            "alpha_raw_lo": ft["raw activations"].ci[0] if L in raw_covs else np.nan,
            "alpha_raw_hi": ft["raw activations"].ci[1] if L in raw_covs else np.nan,
            "pr_sae": participation_ratio(sp["SAE decoder"]),
            "pr_raw": participation_ratio(sp["raw activations"]) if L in raw_covs else np.nan,
            "pr_gauss": participation_ratio(sp["Gaussian"]),
        }
        if entropy:
            ce = clustering_entropy(w, n_points=cfg.entropy_points, d=min(cfg.entropy_dims, d),
                                    k=cfg.k, n_rep=cfg.n_rep, n_boot=cfg.n_boot, seed=cfg.seed + L)
            ents[L] = ce
            row.update(negentropy=ce.negentropy, negentropy_se=ce.se,
                       surrogate_sd=ce.surrogate_sd, knn_bias=ce.bias,
                       reference_negentropy=ce.reference, reference_ci=ce.reference_ci)
        rows.append(row)
        if keep_rows is not None and n > keep_rows:
            w = w[np.sort(np.random.default_rng(cfg.seed).choice(n, keep_rows, replace=False))]
        spectra[L], fits[L], decs[L] = sp, ft, w
    table = pd.DataFrame(rows).set_index("layer")
    n_layers = n_layers if n_layers is not None else max(decoders) + 1
    return Galaxy(table, spectra, fits, decs, ents, cfg, n_layers)


def organism_galaxy(scale: str | None = None, config: GalaxyConfig | None = None,
                    stats=None) -> Galaxy:
    """The galaxy measurements of every layer of the organism at ``scale``: its SAEs' decoders and
    the residual covariances of the feature engine (``organism_feature_stats``, cached; pass
    ``stats`` to reuse one already loaded).  ``extra["frequency"][L]`` holds each latent's firing
    frequency on the validation documents.

    The organism's middle-layer SAE is wider than the others (chapter 4 needs the width); so that
    every layer's point cloud has the same number of points, a wider decoder is measured on a
    seeded random subset of its rows, as many as the narrowest SAE has (``extra["rows"][L]``: the
    latents kept, ``None`` when all are)."""
    from llmfeatures.features import organism_feature_stats
    from llmfeatures.loaders import load_model, load_sae

    cfg = config or galaxy_config(scale)
    model = load_model("organism", scale=scale)
    layers = list(range(model.cfg.n_layers))
    if stats is None:
        stats = organism_feature_stats(scale=scale, progress=False)
    decoders = {L: load_sae("organism", L, scale=scale, model=model).W_dec for L in layers}
    width = min(w.shape[0] for w in decoders.values())
    rng = np.random.default_rng(0)
    rows = {L: (None if w.shape[0] == width else np.sort(rng.choice(w.shape[0], width, replace=False)))
            for L, w in decoders.items()}
    decoders = {L: (w if rows[L] is None else w[rows[L]]) for L, w in decoders.items()}
    covs = {L: stats.resid[L].cov for L in layers}
    gal = galaxy_layers(decoders, covs, cfg, n_layers=model.cfg.n_layers)
    freq = {L: stats.sae[L].frequency() for L in layers}
    gal.extra["frequency"] = {L: (f if rows[L] is None else f[rows[L]]) for L, f in freq.items()}
    gal.extra["rows"] = rows
    gal.extra["d_model"] = model.cfg.d_model
    return gal
