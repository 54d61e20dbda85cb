"""Figures of chapter 4.  Each function draws on a new figure (or the axes given) and returns the
figure; all take a :class:`~llmfeatures.lobes.analysis.LobeResult` or its tables."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from llmfeatures.lobes.affinity import AFFINITY_LABELS
from llmfeatures.lobes.analysis import GEOMETRY, LobeResult
from llmfeatures.plotting import fit_module_figures

STYLE = {  # one colour and marker per affinity, the same in every figure
    "simple_matching": ("tab:gray", "v"),
    "jaccard": ("tab:orange", "s"),
    "dice": ("tab:green", "D"),
    "overlap": ("tab:blue", "o"),
    "phi": ("tab:red", "^"),
    GEOMETRY: ("black", "x"),
}
LOBE_COLOURS = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors


def _label(name: str) -> str:
    return "decoder geometry" if name == GEOMETRY else AFFINITY_LABELS[name]


def _lobe_colour(i: int) -> tuple:
    return LOBE_COLOURS[i % len(LOBE_COLOURS)]


def plot_affinity_by_lobe(result: LobeResult, affinity: str, k: int) -> Figure:
    """The ``[F, F]`` affinity matrix with features ordered by lobe (and, inside a lobe, by dominant
    domain), lobe boundaries drawn; a strip on the left marks each lobe's colour."""
    lab = result.labels[(affinity, k)]
    dom = result.domain if result.domain is not None else np.zeros_like(lab)
    order = np.lexsort((dom, lab))
    a = result.affinity[affinity][np.ix_(order, order)].copy()
    np.fill_diagonal(a, np.nan)
    vmin, vmax = np.nanpercentile(a, [1, 99])
    fig, ax = plt.subplots(figsize=(7.2, 6))
    im = ax.imshow(a, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    sizes = np.bincount(lab, minlength=k)
    ends = np.cumsum(sizes)
    for e in ends[:-1] - 0.5:
        ax.axhline(e, color="white", lw=0.8)
        ax.axvline(e, color="white", lw=0.8)
    centres = ends - sizes / 2 - 0.5
    ax.set_xticks(centres, [str(i) for i in range(k)])
    ax.set_yticks(centres, [f"{i} ({n})" for i, n in enumerate(sizes)])
    ax.set(xlabel="lobe (features ordered by lobe, then by dominant domain)",
           ylabel="lobe (number of features)",
           title=f"{_label(affinity)} affinity of {len(a)} features, {k} lobes")
    shown = "phi + 1" if affinity == "phi" else _label(affinity)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"{shown} (diagonal blank)")
    fig.tight_layout()
    return fig


def plot_ami_vs_k(result: LobeResult) -> Figure:
    """AMI against k for every affinity: with the dominant domains (left, when known) and with
    the clusters of decoder directions (right); grey band: permutation null, mean +- 3 sd."""
    t = result.table
    panels = [("ami_geometry", "AMI with decoder-geometry clusters")]
    if "ami_domain" in t:
        panels.insert(0, ("ami_domain", "AMI with the features' dominant domains"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (col, title) in zip(axes[0], panels):
        names = [n for n in t.affinity.unique() if col in t and t[t.affinity == n][col].notna().any()]
        for name in names:
            g = t[t.affinity == name].sort_values("k")
            c, m = STYLE[name]
            ax.plot(g.k, g[col], color=c, marker=m, ls="--" if name == GEOMETRY else "-",
                    label=_label(name))
        null = t.dropna(subset=[col]).groupby("k")
        hi = (null[f"{col}_null_mean"].max() + 3 * null[f"{col}_null_std"].max())
        lo = (null[f"{col}_null_mean"].min() - 3 * null[f"{col}_null_std"].max())
        ax.fill_between(hi.index, lo.values, hi.values, color="0.6", alpha=0.5,
                        label="permutation null (mean ± 3 sd)")
        ax.set_xscale("log", base=2)
        ks = sorted(t.k.unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(xlabel="number of lobes k", ylabel="adjusted mutual information", title=title)
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="upper left",
               bbox_to_anchor=(0.845, 0.93))
    return fig


def plot_accuracy_vs_k(result: LobeResult) -> Figure:
    """Balanced test accuracy of the logistic regression decoder direction -> lobe, against k,
    for every affinity, with the random-decoder baseline of the best affinity (mean +- 2 sd) and
    the decoder-geometry clusters as a ceiling."""
    t = result.table
    fig, ax = plt.subplots(figsize=(10.5, 4.2))
    for name in t.affinity.unique():
        g = t[t.affinity == name].sort_values("k")
        c, m = STYLE[name]
        ax.plot(g.k, g.accuracy, color=c, marker=m, ls="--" if name == GEOMETRY else "-",
                label=_label(name) + (" (clusters of the decoders themselves)"
                                      if name == GEOMETRY else ""))
    b = t[t.random_mean.notna()].sort_values("k") if "random_mean" in t else t.iloc[:0]
    if len(b):
        ax.fill_between(b.k, b.random_mean - 2 * b.random_std, b.random_mean + 2 * b.random_std,
                        color="0.6", alpha=0.5,
                        label=f"random unit decoders, {_label(result.best)} lobes (mean ± 2 sd)")
    ax.set_xscale("log", base=2)
    ks = sorted(t.k.unique())
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set(xlabel="number of lobes k", ylabel="balanced test accuracy", ylim=(0, 1.02),
           title="Predicting a feature's lobe from its decoder direction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


def plot_domain_lobes(tables: Sequence[pd.DataFrame], titles: Sequence[str]) -> Figure:
    """Heatmaps of the share of each domain's blocks won by each lobe (one per table from
    :func:`~llmfeatures.lobes.analysis.domain_table`), annotated."""
    widths = [max(2.2, 0.75 * t.shape[1] + 1.5) for t in tables]
    fig, axes = plt.subplots(1, len(tables), figsize=(sum(widths) + 2.5, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, t, title in zip(axes[0], tables, titles):
        im = ax.imshow(t.values, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(t.shape[1]), [c.replace("lobe ", "") for c in t.columns])
        ax.set_yticks(range(t.shape[0]), t.index)
        for i in range(t.shape[0]):
            for j in range(t.shape[1]):
                v = t.values[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if v > 0.6 else "black")
        ax.set(xlabel="winning lobe", title=title)
    axes[0, 0].set_ylabel("document domain")
    for ax in axes[0, 1:]:
        ax.set_yticklabels([])
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, pad=0.02,
                 label="share of the domain's blocks")
    return fig


def plot_decoder_cloud(result: LobeResult, affinity: str, k: int, seed: int = 0) -> Figure:
    """The unit decoder directions of the clustered features in 2-D (t-SNE, cosine distance),
    coloured by co-occurrence lobe (left) and by decoder-geometry cluster (right)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    tsne = TSNE(n_components=2, metric="cosine", init="pca", random_state=seed, max_iter=500,
                n_jobs=1, perplexity=min(30, (len(result.directions) - 1) / 3))
    with threadpool_limits(limits=result.config.threads):
        xy = tsne.fit_transform(result.directions)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.4))
    for ax, name in zip(axes, (affinity, GEOMETRY)):
        lab = result.labels[(name, k)]
        for i in range(k):
            m = lab == i
            ax.scatter(xy[m, 0], xy[m, 1], s=9, color=_lobe_colour(i), alpha=0.75,
                       label=f"{i} ({m.sum()})")
        kind = "lobe" if name != GEOMETRY else "cluster"
        ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2", xticks=[], yticks=[],
               title=f"coloured by {_label(name)} {kind} (k = {k})")
        ax.legend(fontsize=7, title=f"{kind} (features)", loc="upper left",
                  bbox_to_anchor=(1.0, 1), markerscale=2)
    fig.suptitle("Decoder directions of the SAE features (t-SNE of unit W_dec rows)")
    fig.tight_layout()
    return fig


def plot_sensitivity(grid: pd.DataFrame, affinity: str, k: int) -> Figure:
    """Annotated heatmaps over block length x threshold: AMI of the lobes with the dominant
    domains and with the geometry clusters (both at ``k``), and the balanced accuracy at k = 2."""
    panels = [("ami_domain", f"AMI with dominant domains (k = {k})", "{:.2f}"),
              ("ami_geometry", f"AMI with geometry clusters (k = {k})", "{:.3f}"),
              ("accuracy_k2", "balanced accuracy, decoder -> lobe (k = 2)", "{:.2f}")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, (col, title, fmt) in zip(axes, panels):
        p = grid.pivot(index="threshold", columns="block_size", values=col)
        im = ax.imshow(p.values, cmap="Blues", aspect="auto", origin="lower")
        lo, hi = np.nanmin(p.values), np.nanmax(p.values)
        for i in range(p.shape[0]):
            for j in range(p.shape[1]):
                v = p.values[i, j]
                dark = hi > lo and (v - lo) / (hi - lo) > 0.6
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=10,
                        color="white" if dark else "black")
        ax.set_xticks(range(p.shape[1]), [str(c) for c in p.columns])
        ax.set_yticks(range(p.shape[0]), [f"{v:g}" for v in p.index])
        ax.set(xlabel="block length (tokens)", ylabel="firing threshold", title=title)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Sensitivity of the {_label(affinity)} lobes to how co-occurrence is counted")
    fig.tight_layout()
    return fig



# every figure of this chapter fits the book's text column (see llmfeatures.plotting.fit_column)
fit_module_figures(globals())
