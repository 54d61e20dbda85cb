"""Figures of chapter 5: spectra with fits and baselines, alpha and negentropy against depth, and
the first principal components of each layer's decoder cloud."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from llmfeatures.galaxy.analysis import PAPER_ALPHA, PAPER_N_LAYERS, PAPER_NEGENTROPY, Galaxy
from llmfeatures.plotting import fit_module_figures

COLORS = {
    "SAE decoder": "tab:blue",
    "raw activations": "tab:red",
    "shuffled decoder": "tab:green",
    "Gaussian": "0.55",
}
PAPER_COLOR = "tab:purple"


def _depth(layers, n_layers: int) -> np.ndarray:
    return np.asarray(layers, dtype=float) / max(n_layers - 1, 1)


def plot_spectra(gal: Galaxy, ncols: int = 2) -> Figure:
    """One log-log panel per layer: every spectrum divided by its mean eigenvalue (so the clouds
    share an axis), with the power-law fits (dashed) over the shaded rank range."""
    layers = sorted(gal.spectra)
    ncols = min(ncols, len(layers))
    nrows = -(-len(layers) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.8, 3.3 * nrows),
                             sharex=True, sharey=True, squeeze=False)
    for ax, L in zip(axes.flat, layers):
        first, last = gal.fits[L]["SAE decoder"].first, gal.fits[L]["SAE decoder"].last
        ax.axvspan(first, last, color="0.92", zorder=0)
        for name, ev in gal.spectra[L].items():
            ev = np.clip(ev, 1e-12, None)
            scale = ev.mean()
            r = np.arange(1, ev.size + 1)
            fit = gal.fits[L][name]
            wide = name == "Gaussian"  # drawn wide and underneath: the shuffled decoder lies on it
            ax.loglog(r, ev / scale, color=COLORS[name], lw=3.5 if wide else 1.6, zorder=1 if wide else 2)
            fr = np.arange(fit.first, fit.last + 1)
            ax.loglog(fr, fit.line(fr) / scale, color=COLORS[name], ls="--", lw=1)
        ax.set_title(f"layer {L}")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("rank")
    for ax in axes[:, 0]:
        ax.set_ylabel("eigenvalue / mean eigenvalue")
    for ax in axes.flat[len(layers):]:
        ax.set_visible(False)
    present = [n for n in COLORS if n in gal.spectra[layers[0]]]
    handles = [plt.Line2D([], [], color=COLORS[n], lw=3.5 if n == "Gaussian" else 1.6) for n in present]
    names = present
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.92"))
    names.append(f"fit range (ranks {first}..{last}); dashed: fits")
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=9)
    fig.tight_layout()
    return fig


def plot_depth(gal: Galaxy, paper: bool = True) -> Figure:
    """Left: alpha against relative depth (layer / (layers - 1)) for the decoder (with its fit
    interval), the raw activations and both baselines; the paper's Gemma Scope alphas on the
    right-hand axis.  Right: the clustering negentropy with its standard error, the Gaussian
    surrogates' spread around zero, and the paper's three quoted values on the right-hand axis."""
    t = gal.table
    x = _depth(t.index, gal.n_layers)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.3))
    yerr = np.vstack([t.alpha_sae - t.alpha_sae_lo, t.alpha_sae_hi - t.alpha_sae])
    a1.errorbar(x, t.alpha_sae, yerr=yerr, marker="o", capsize=4, color=COLORS["SAE decoder"],
                label="SAE decoder")
    if t.alpha_raw.notna().any():
        yerr = np.vstack([t.alpha_raw - t.alpha_raw_lo, t.alpha_raw_hi - t.alpha_raw])
        a1.errorbar(x, t.alpha_raw, yerr=yerr, marker="s", capsize=4, color=COLORS["raw activations"],
                    label="raw activations")
    a1.plot(x, t.alpha_shuffled, marker="^", color=COLORS["shuffled decoder"], label="shuffled decoder")
    a1.errorbar(x, t.alpha_gauss, yerr=t.alpha_gauss_sd, marker="v", capsize=4,
                color=COLORS["Gaussian"], label="same-shape Gaussian")
    a1.set(xlabel="relative depth (layer / last layer)", ylabel="alpha (this model)", ylim=(0, None))
    handles, labels = a1.get_legend_handles_labels()
    if paper:
        b1 = a1.twinx()
        b1.plot(_depth(range(PAPER_N_LAYERS), PAPER_N_LAYERS), PAPER_ALPHA, color=PAPER_COLOR,
                ls=":", marker=".", label="paper: Gemma Scope decoder")
        b1.set_ylabel("alpha (paper, Gemma-2-2b)", color=PAPER_COLOR)
        b1.tick_params(axis="y", labelcolor=PAPER_COLOR)
        b1.set_ylim(0, None)
        h, lab = b1.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    a1.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=3)
    a1.set_title("power-law exponent")
    if "negentropy" in t:
        a2.errorbar(x, t.negentropy, yerr=t.negentropy_se, marker="o", capsize=4,
                    color=COLORS["SAE decoder"], label="SAE decoder (bias-corrected k-NN)")
        a2.fill_between(x, -2 * t.surrogate_sd, 2 * t.surrogate_sd, color="0.85",
                        label="Gaussian surrogates (0 +- 2 sd)")
        a2.set(xlabel="relative depth (layer / last layer)", ylabel="negentropy, nats (this model)")
        handles, labels = a2.get_legend_handles_labels()
        if paper:
            b2 = a2.twinx()
            px = _depth(list(PAPER_NEGENTROPY), PAPER_N_LAYERS)
            b2.plot(px, list(PAPER_NEGENTROPY.values()), ls="none", marker="D", color=PAPER_COLOR,
                    label="paper: Gemma Scope (3 quoted layers)")
            b2.set_ylabel("negentropy (paper's estimator)", color=PAPER_COLOR)
            b2.tick_params(axis="y", labelcolor=PAPER_COLOR)
            h, lab = b2.get_legend_handles_labels()
            handles, labels = handles + h, labels + lab
        a2.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
        a2.set_title("clustering negentropy")
    else:
        a2.set_visible(False)
    fig.tight_layout()
    return fig


def plot_principal_components(gal: Galaxy, color: dict[int, np.ndarray] | None = None,
                              color_label: str = "firing frequency") -> Figure:
    """Rows = layers; columns = the decoder cloud projected on PC1-PC2, PC1-PC3, PC2-PC3.  Points
    are coloured by ``color[L]`` (e.g. firing frequency, log scale; never-firing latents grey)."""
    layers = sorted(gal.decoders)
    pairs = [(0, 1), (0, 2), (1, 2)]
    fig, axes = plt.subplots(len(layers), 3, figsize=(11.5, 3.2 * len(layers)), squeeze=False)
    sc = None
    for row, L in zip(axes, layers):
        pca = PCA(n_components=3, svd_solver="full")
        y = pca.fit_transform(gal.decoders[L])
        lim = np.abs(y).max() * 1.05
        c = None if color is None else np.asarray(color[L], dtype=float)
        for ax, (i, j) in zip(row, pairs):
            if c is None:
                ax.scatter(y[:, i], y[:, j], s=4, alpha=0.6, color=COLORS["SAE decoder"])
            else:
                dead = c <= 0
                ax.scatter(y[dead, i], y[dead, j], s=4, color="0.7", label="never fires")
                sc = ax.scatter(y[~dead, i], y[~dead, j], s=4, c=c[~dead], cmap="viridis",
                                norm=LogNorm(vmin=max(c[~dead].min(), 1e-6), vmax=c.max()))
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
                   xlabel=f"PC{i + 1} ({pca.explained_variance_ratio_[i]:.1%} of variance)",
                   ylabel=f"PC{j + 1} ({pca.explained_variance_ratio_[j]:.1%})")
        row[0].set_title(f"layer {L}", loc="left", fontweight="bold")
    fig.tight_layout()
    if sc is not None:
        fig.colorbar(sc, ax=axes, shrink=0.5, label=f"{color_label} (log scale)", pad=0.02)
        axes[0, 2].legend(loc="upper right", fontsize=8, markerscale=3)
    return fig


# every figure of this chapter fits the book's text column (see llmfeatures.plotting.fit_column)
fit_module_figures(globals())
