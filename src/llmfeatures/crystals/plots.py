"""Figures of chapter 3.  Each function draws a new figure and returns it."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from llmfeatures.crystals.lda import LDASweep, heldout_split, lda_projection
from llmfeatures.plotting import fit_module_figures

COLOURS = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors


def _scatter_by_relation(ax, z: np.ndarray, rel: np.ndarray, names: Sequence[str]) -> None:
    for i, name in enumerate(names):
        m = rel == name
        ax.scatter(z[m, 0], z[m, 1], s=14, color=COLOURS[i % len(COLOURS)], label=name, alpha=0.8)


def plot_before_after(diffs: np.ndarray, relations: Sequence[str], n_components: int,
                      test_size: float = 0.5, shrinkage="auto", seed: int = 0,
                      title: str = "") -> Figure:
    """Held-out difference vectors coloured by relation: left, the first two principal components
    of the standardised differences; right, the first two LDA coordinates.  Scaler, PCA and LDA
    are fitted on the training half only; only the held-out half is drawn."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(diffs, np.float64)
    rel = np.asarray(relations)
    train, test = heldout_split(rel, test_size, seed)
    scaler = StandardScaler().fit(x[train])
    pca = PCA(2).fit(scaler.transform(x[train]))
    before = pca.transform(scaler.transform(x[test]))
    after = lda_projection(x, rel, train, max(2, n_components), shrinkage)[test]
    names = list(pd.unique(rel))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    _scatter_by_relation(axes[0], before, rel[test], names)
    _scatter_by_relation(axes[1], after[:, :2], rel[test], names)
    axes[0].set(xlabel="PC1", ylabel="PC2", title="before: PCA of standardised differences")
    axes[1].set(xlabel="LDA 1", ylabel="LDA 2",
                title=f"after: LDA ({max(2, n_components)} components), first two")
    axes[0].legend(loc="upper left", bbox_to_anchor=(0, -0.16), ncol=min(4, len(names)),
                   fontsize=8, frameon=False)
    fig.suptitle(title or "held-out pairs (fitted on the other half)")
    fig.tight_layout()
    return fig


def plot_silhouette_sweep(sweeps: dict[str, LDASweep]) -> Figure:
    """Held-out silhouette against the number of LDA components (mean and spread over splits),
    the permuted-label null, the raw differences' silhouette (dashed), and the in-sample trap:
    plain LDA, as the reference, fit and scored on the same pairs with their labels (dash-dot) and
    with permuted labels (dotted)."""
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4.8 * len(sweeps), 5.2), squeeze=False,
                             gridspec_kw={"height_ratios": [4, 1.4]})
    for ax in axes[1]:
        ax.remove()
    key = fig.add_subplot(2, 1, 2)
    key.axis("off")
    for ax, (name, sw) in zip(axes[0], sweeps.items()):
        t = sw.table
        k = t.index.to_numpy()
        ax.plot(k, t.heldout, "o-", color="tab:blue", label="LDA, held-out pairs")
        ax.fill_between(k, t.heldout - t.heldout_sd, t.heldout + t.heldout_sd, color="tab:blue",
                        alpha=0.2)
        ax.plot(k, t.null, "s-", color="tab:gray", label="null: permuted training labels")
        ax.fill_between(k, t.null - t.null_sd, t.null + t.null_sd, color="tab:gray", alpha=0.2)
        ax.plot(k, t.in_sample, "-.", color="tab:orange", label="plain LDA, scored in-sample")
        ax.plot(k, t.in_sample_null, ":", color="tab:red",
                label="plain LDA, permuted labels, in-sample")
        ax.axhline(sw.raw, ls="--", color="black", label="raw differences (held-out)")
        ax.set(xlabel="LDA components", ylabel="silhouette", title=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    key.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center",
               ncol=3 if len(sweeps) > 1 else 1, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_pc1_length(scores: np.ndarray, length: np.ndarray, relations: Sequence[str],
                    r: float, null_q95: float, title: str = "") -> Figure:
    """PC1 score of each difference (relation means removed) against its difference in length."""
    rel = np.asarray(relations)
    fig, ax = plt.subplots(figsize=(6, 4.4))
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(length))
    _scatter_by_relation(ax, np.column_stack([np.asarray(length) + jitter, scores]), rel,
                         list(pd.unique(rel)))
    ax.set(xlabel="length difference, output minus input (characters, jittered)",
           ylabel="PC1 score", title=title or f"r = {r:.2f} (null 95%: |r| < {null_q95:.2f})")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def plot_distractor_by_layer(table: pd.DataFrame) -> Figure:
    """|r| of PC1 with the length difference per layer (``-1``: embeddings), beside the null's
    95th percentile, for each representation kind and target."""
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    styles = {"chars": "o-", "tokens": "s--"}
    for i, ((kind, target), g) in enumerate(table.groupby(["kind", "target"])):
        g = g.sort_values("layer")
        line, = ax.plot(g.layer, g.abs_r, styles.get(target, "o-"), color=COLOURS[i],
                        label=f"{kind}, {target}")
        ax.plot(g.layer, g.null_q95, ":", color=line.get_color(), lw=1)
    layers = sorted(table.layer.unique())
    ax.set_xticks(layers, ["emb" if L == -1 else str(L) for L in layers])
    ax.set(xlabel="layer (emb: embeddings)", ylabel="|r| of PC1 with length difference",
           title="the length distractor (dotted: null 95th percentile)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def plot_gallery(candidates: pd.DataFrame, vectors: np.ndarray, words: Sequence[str],
                 planted: set | None = None, n: int = 6, ncols: int = 3) -> Figure:
    """The ``n`` best candidate parallelograms, each drawn in the plane of its four points' first
    two principal components, labelled by their words; a planted quadrilateral's title is marked
    "planted"."""
    index = {w: i for i, w in enumerate(words)}
    rows = candidates.head(n)
    nrows = max(1, int(np.ceil(len(rows) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows.itertuples(index=False)):
        quad = [row.a, row.b, row.c, row.d]
        p = np.asarray(vectors, np.float64)[[index[w] for w in quad]]
        p = p - p.mean(0)
        u, s, vt = np.linalg.svd(p, full_matrices=False)
        z = p @ vt[:2].T
        ax.axis("on")
        for (i, j), style in (((0, 1), "-"), ((2, 3), "-"), ((0, 2), ":"), ((1, 3), ":")):
            ax.annotate("", xy=z[j], xytext=z[i], arrowprops={"arrowstyle": "->" if style == "-"
                                                                else "-", "ls": style, "lw": 1.2})
        ax.scatter(z[:, 0], z[:, 1], color=[COLOURS[0], COLOURS[1], COLOURS[0], COLOURS[1]], zorder=3)
        for w, (px, py) in zip(quad, z):
            ax.annotate(w, (px, py), textcoords="offset points", xytext=(3, 3), fontsize=8)
        tag = " planted" if planted is not None and frozenset(quad) in planted else ""
        ax.set_title(f"cos {row.cosine:.2f}, ratio {row.length_ratio:.2f}{tag}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.margins(0.25)
    fig.tight_layout()
    return fig


def plot_quad_scores(scores: pd.DataFrame, best: float | None = None,
                     best_label: str = "a score the search ranks first", title: str = "") -> Figure:
    """Histogram (density) of the parallelogram score of planted and random quadrilaterals
    (:func:`~llmfeatures.crystals.search.quad_scores`); ``best``: a score to mark (dashed line,
    labelled ``best_label``), e.g. the ``k``-th best candidate of the search."""
    fig, ax = plt.subplots(figsize=(6.6, 3.9))
    bins = np.linspace(min(-0.2, float(scores.score.min())), 1.0, 49)
    for colour, kind in zip(("tab:gray", "tab:blue"), ("random", "planted")):
        s = scores.loc[scores.kind == kind, "score"]
        ax.hist(s, bins=bins, density=True, alpha=0.55, color=colour,
                label=f"{kind} quadrilaterals (n = {len(s):,})")
    if best is not None:
        ax.axvline(best, ls="--", color="black", label=best_label)
    ax.set(xlabel="parallelogram score (weaker pair of sides: cosine x length ratio)",
           ylabel="density", title=title or "planted against random quadrilaterals")
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


fit_module_figures(globals())
