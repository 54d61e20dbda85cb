"""Figures of chapter 6 (matplotlib): training dynamics, error against the baselines, CD heatmap,
UMAP, patching, accuracy per task, CD vs accuracy.

All are drawn in the book's style (:func:`llmfeatures.plotting.book_style`): at most
:data:`~llmfeatures.plotting.MAX_WIDTH` inches wide, every axis labelled, every colour keyed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from llmfeatures.plotting import MAX_WIDTH, book_style


def concept_names(n: int) -> list[str]:
    """Names of the ``n`` concepts (bases) as the chapter writes them: B1, B2, ..."""
    return [f"B{i + 1}" for i in range(n)]


def _concept_colour(i: int):
    return plt.get_cmap("tab10")(i % 10)


@book_style
def plot_loss_and_cd(
    history: pd.DataFrame,
    cd: pd.DataFrame,
    layer: int,
    n_examples: int,
    curriculum: tuple[tuple[int, int], ...] = (),
):
    """Left: error per basis over training at context length ``n_examples``; right: CD per
    concept at ``layer``.  Both on a log step axis (step 0 drawn at 1).  The steps where a
    ``curriculum`` (``ICLTrainConfig.curriculum``) brings in more bases are drawn as dotted lines."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.6))
    for step, n in curriculum:
        if step > 0:
            for ax in (a1, a2):
                ax.axvline(step, color="grey", ls=":", lw=1.2)
            a2.text(step, 0.02, f" {n} bases", color="dimgrey", va="bottom", rotation=90)
    h = history[history.n_examples == n_examples]
    for basis, g in h.groupby("basis"):
        a1.plot(g.step.clip(lower=1), g.mse, marker="o", color=_concept_colour(int(basis)),
                label=f"B{basis + 1}")
    a1.set(xscale="log", yscale="log", xlabel="training step (log)",
           ylabel=f"squared error, {n_examples} examples", title="error per concept")
    c = cd[(cd.layer == layer) & (cd.concept != "mean")]
    for concept, g in c.groupby("concept"):
        a2.plot(g.step.clip(lower=1), g.cd, marker="o", color=_concept_colour(int(concept)),
                label=f"B{int(concept) + 1}")
    a2.set(xscale="log", ylim=(0, 1.05), xlabel="training step (log)", ylabel="CD",
           title=f"CD at layer {layer}")
    a1.legend(title="concept")
    a2.legend(title="concept", loc="upper left")
    fig.tight_layout()
    return fig


@book_style
def plot_baselines(curves: pd.DataFrame):
    """Error against the number of in-context examples for every method of
    :func:`~llmfeatures.icl.baselines.baseline_curves` (columns ``method, n_examples, mse``)."""
    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 4.6))
    for i, (method, g) in enumerate(curves.groupby("method", sort=False)):
        ax.plot(g.n_examples, g.mse, marker="o", ms=3.5, color=plt.get_cmap("tab10")(i % 10),
                label=method)
    ax.set(yscale="log", xlabel="in-context examples", ylabel="squared error (log)",
           title="exact baselines")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


def closest_baseline(
    history: pd.DataFrame,
    baselines: pd.DataFrame,
    step: int,
    methods: tuple[str, ...],
    min_examples: int = 1,
) -> pd.DataFrame:
    """For each concept, which reference curve the model's error curve at ``step`` follows.

    The distance to a method is the mean absolute difference of log errors over context lengths
    ``>= min_examples`` (at 0 examples every predictor says 0).  Returns one row per concept:
    ``concept`` (B1, ...), ``model error`` at the longest context, one column per method with
    its distance, and ``closest``.
    """
    missing = [m for m in methods if m not in set(baselines.method)]
    if missing:
        raise ValueError(f"baselines lack {missing}; recompute them with baseline_curves()")
    h = history[(history.step == step) & (history.n_examples >= min_examples)]
    if h.empty:
        raise ValueError(f"no history at step {step}; steps are {sorted(history.step.unique())}")
    ref = baselines.pivot(index="n_examples", columns="method", values="mse")
    rows = []
    for basis, g in h.groupby("basis"):
        model = g.set_index("n_examples").mse
        n = model.index.intersection(ref.index)
        dist = {m: float(np.mean(np.abs(np.log(model[n]) - np.log(ref.loc[n, m])))) for m in methods}
        rows.append({"concept": f"B{int(basis) + 1}", "model error": float(model.iloc[-1]), **dist,
                     "closest": min(dist, key=dist.get)})
    return pd.DataFrame(rows)


@book_style
def plot_error_by_context(
    history: pd.DataFrame,
    baselines: pd.DataFrame,
    step: int,
    methods: tuple[str, ...] | None = None,
):
    """The model's error per concept against the number of in-context examples at checkpoint
    ``step`` (solid), with the reference ``methods`` from :func:`~llmfeatures.icl.baselines.baseline_curves`
    (dashed): which algorithm does the model run for each concept?  By default: least squares and
    one GD step on the true basis, LASSO and one GD step on all dimensions."""
    if methods is None:
        D = next((m[m.index("(") + 1 : m.index(" dims")] for m in baselines.method if m.startswith("LASSO")), "16")
        methods = ("least squares on true basis", "one GD step on true basis", f"LASSO ({D} dims)",
                   f"one GD step ({D} dims)")
    fig, ax = plt.subplots(figsize=(MAX_WIDTH, 4.6))
    h = history[history.step == step]
    for basis, g in h.groupby("basis"):
        ax.plot(g.n_examples, g.mse, marker="o", color=_concept_colour(int(basis)),
                label=f"model, B{basis + 1}")
    missing = [m for m in methods if m not in set(baselines.method)]
    if missing:
        raise ValueError(f"baselines lack {missing}; recompute them with baseline_curves()")
    styles = [("k", "--"), ("k", "-."), ("grey", "--"), ("grey", "-.")]
    for i, m in enumerate(methods):
        g = baselines[baselines.method == m]
        color, ls = styles[i % len(styles)]
        ax.plot(g.n_examples, g.mse, color=color, ls=ls, lw=1.2, label=m)
    ax.set(yscale="log", xlabel="in-context examples", ylabel="squared error (log)",
           title=f"model at step {step} against the baselines")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    fig.tight_layout()
    return fig


@book_style
def plot_cd_heatmap(cd: pd.DataFrame):
    """Mean CD as a heatmap: layer (rows) x checkpoint (columns)."""
    m = cd[cd.concept == "mean"].pivot(index="layer", columns="step", values="cd")
    fig, ax = plt.subplots(figsize=(min(MAX_WIDTH, 2.5 + 0.45 * m.shape[1]),
                                    1.6 + 0.35 * m.shape[0]))
    im = ax.imshow(m.values, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(m.shape[1]), [str(s) for s in m.columns], rotation=60)
    ax.set_yticks(range(m.shape[0]), [str(i) for i in m.index])
    ax.set(xlabel="training step", ylabel="layer", title="Concept Decodability (mean over concepts)")
    fig.colorbar(im, ax=ax, label="mean CD")
    fig.tight_layout()
    return fig


def umap_embed(reps: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D UMAP (n_neighbors=15, min_dist=0.1) of ``(N, d)`` representations -> ``(N, 2)``."""
    import umap

    return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(
        reps.detach().cpu().float().numpy()
    )


@book_style
def plot_umap_grid(
    panels: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]],
    names: list[str] | None = None,
):
    """UMAP scatter per (row, column) key, e.g. (checkpoint, layer); values ``(reps [N, d],
    labels [N])``.  Points are coloured by label, keyed by ``names`` (default B1, B2, ...);
    rows and columns are named in the margins."""
    rows = list(dict.fromkeys(r for r, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    n_labels = 1 + max(int(lab.max()) for _, lab in panels.values())
    names = names or concept_names(n_labels)
    side = min(2.3, (MAX_WIDTH - 1.3) / len(cols))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(side * len(cols) + 1.3,
                                                            side * len(rows) + 0.4), squeeze=False)
    for (r, c), (reps, labels) in panels.items():
        ax = axes[rows.index(r), cols.index(c)]
        emb = umap_embed(reps)
        lab = labels.cpu().numpy()
        ax.scatter(emb[:, 0], emb[:, 1], c=[_concept_colour(int(i)) for i in lab], s=7,
                   linewidths=0)
        ax.set_xticks([]), ax.set_yticks([])
    for j, c in enumerate(cols):
        axes[0, j].set_title(c)
        axes[-1, j].set_xlabel("UMAP 1")
    for i, r in enumerate(rows):
        axes[i, 0].set_ylabel(f"{r}\nUMAP 2")
    handles = [Line2D([], [], ls="", marker="o", color=_concept_colour(i), label=n)
               for i, n in enumerate(names)]
    fig.legend(handles=handles, title="concept", loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 1.2 / fig.get_figwidth(), 1))
    return fig


@book_style
def plot_patching(delta: torch.Tensor, layer: int):
    """The ``(C, C)`` loss-change matrix of :func:`llmfeatures.icl.patching.patching_matrix`,
    with each cell's value written in it."""
    C = delta.shape[0]
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    v = float(delta.abs().max())
    im = ax.imshow(delta.numpy(), cmap="RdBu_r", vmin=-v, vmax=v)
    names = concept_names(C)
    ax.set_xticks(range(C), names), ax.set_yticks(range(C), names)
    for i in range(C):
        for j in range(C):
            val = float(delta[i, j])
            ax.text(j, i, f"{val:+.2f}", ha="center", va="center",
                    color="white" if abs(val) > 0.6 * v else "black")
    ax.set(xlabel="concept whose mean is patched in", ylabel="true concept",
           title=f"error change, layer {layer}")
    fig.colorbar(im, ax=ax, label="change in squared error")
    fig.tight_layout()
    return fig


@book_style
def plot_accuracy_by_task(accuracy: pd.DataFrame, chance: dict[str, float] | None = None):
    """Horizontal bars of ICL accuracy per task, grouped and coloured by family.

    ``accuracy`` has columns ``family, task, accuracy`` (from
    :func:`llmfeatures.icl.lm.icl_accuracy`).  ``chance`` optionally maps family -> a reference
    accuracy drawn as a dotted line.
    """
    acc = accuracy.reset_index(drop=True)
    families = list(dict.fromkeys(acc.family))
    fig, ax = plt.subplots(figsize=(MAX_WIDTH * 0.8, 0.9 + 0.24 * len(acc)))
    y = np.arange(len(acc))[::-1]
    colours = {f: plt.get_cmap("Set2")(i) for i, f in enumerate(families)}
    ax.barh(y, acc.accuracy, color=[colours[f] for f in acc.family])
    ax.set_yticks(y, acc.task)
    for f in families:
        if chance and f in chance:
            rows = y[(acc.family == f).to_numpy()]
            ax.vlines(chance[f], rows.min() - 0.4, rows.max() + 0.4, color="k", ls=":")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[f], label=f) for f in families]
    ax.legend(handles=handles, title="family", loc="lower right")
    ax.set(xlim=(0, 1), xlabel="exact-match accuracy", ylabel="task",
           title="few-shot accuracy per task")
    fig.tight_layout()
    return fig


@book_style
def plot_cd_vs_accuracy(df: pd.DataFrame, cd_col: str = "cd", acc_col: str = "accuracy",
                        label_col: str = "task", title: str = ""):
    """Scatter of CD against accuracy across tasks, with the least-squares line and its R^2.

    Each task is a marker of its own colour and shape, named in the legend (labels written
    next to the points overlap when tasks score alike)."""
    x, y = df[cd_col].to_numpy(float), df[acc_col].to_numpy(float)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    markers = "osD^vP*Xh<>p"
    for i, (_, row) in enumerate(df.iterrows()):
        ax.scatter(row[cd_col], row[acc_col], s=55, marker=markers[i % len(markers)],
                   color=plt.get_cmap("tab10")(i % 10), label=str(row[label_col]),
                   edgecolors="black", linewidths=0.5, zorder=3)
    r2 = float("nan")
    if len(x) > 2 and np.ptp(x) > 0:
        slope, icpt = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 10)
        ax.plot(xs, slope * xs + icpt, "k--", lw=1, label="least squares")
        r2 = float(np.corrcoef(x, y)[0, 1] ** 2)
    ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="Concept Decodability",
           ylabel="ICL accuracy", title=f"{title}{': ' if title else ''}R$^2$ = {r2:.2f}")
    ax.legend(title=label_col, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


@book_style
def plot_cd_with_baselines(table: pd.DataFrame):
    """Per family, the best block layer's mean CD against the number of shots, beside the
    input-only CD (the query alone), the CD at the embeddings (the prompt's length alone) and
    chance.  ``table`` from :func:`llmfeatures.icl.lm.baseline_table`."""
    families = list(dict.fromkeys(table.family))
    fig, axes = plt.subplots(1, len(families), figsize=(MAX_WIDTH, 3.6), sharey=True, squeeze=False)
    styles = (("cd", "full prompt (best block layer)", "-", "o"),
              ("cd_input", "query alone, same layer", "--", "s"),
              ("cd_length", "embeddings (length only)", "-.", "^"))
    for ax, fam in zip(axes[0], families, strict=True):
        g = table[table.family == fam].sort_values("n_shots")
        for i, (col, label, ls, marker) in enumerate(styles):
            ax.plot(g.n_shots, g[col], ls=ls, marker=marker, color=plt.get_cmap("tab10")(i),
                    label=label)
        ax.axhline(float(g.chance.iloc[0]), color="grey", ls=":", label="chance")
        ax.set(title=fam, xlabel="shots", ylim=(0, 1.05), xticks=sorted(g.n_shots.unique()))
    axes[0][0].set_ylabel("mean CD")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.15, 1, 1))
    return fig


@book_style
def plot_emergence(summary: pd.DataFrame, onsets: pd.DataFrame | None = None):
    """ICL accuracy (left) and best-layer CD (right) per family against the organism's training
    step (log axis, step 0 drawn at 1).  ``summary`` from
    :meth:`llmfeatures.icl.emergence.Emergence.summary`; chance as dotted lines, the CD at the
    embeddings (prompt length only) as faint dashed lines; ``onsets`` (from
    :func:`~llmfeatures.icl.emergence.co_emergence`) as markers on the curves."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(MAX_WIDTH, 3.6))
    families = list(dict.fromkeys(summary.family))
    on = {} if onsets is None else onsets.set_index("family").to_dict("index")
    for i, fam in enumerate(families):
        g = summary[summary.family == fam].sort_values("step")
        colour = plt.get_cmap("tab10")(i)
        x = g.step.clip(lower=1)
        a1.plot(x, g.accuracy, marker="o", ms=3, color=colour, label=fam)
        a2.plot(x, g.cd, marker="o", ms=3, color=colour, label=fam)
        a2.plot(x, g.cd_length, ls="--", lw=1, alpha=0.5, color=colour)
        a2.axhline(float(g.chance.iloc[0]), color=colour, ls=":", lw=1)
        for ax, key, col in ((a1, "accuracy_onset", "accuracy"), (a2, "cd_onset", "cd")):
            step = on.get(fam, {}).get(key)
            if step is not None and not pd.isna(step):
                y = float(g.loc[g.step == int(step), col].iloc[0])
                ax.plot(max(int(step), 1), y, marker="*", ms=12, color=colour, mec="k")
    a1.set(xscale="log", ylim=(0, 1.05), xlabel="training step (log)",
           ylabel="exact-match accuracy", title="few-shot accuracy")
    a2.set(xscale="log", ylim=(0, 1.05), xlabel="training step (log)",
           ylabel="mean CD, best block layer", title="concept decodability")
    a1.legend(title="family", loc="upper left")
    a2.legend(handles=[Line2D([], [], color="k", ls=":", lw=1, label="chance"),
                       Line2D([], [], color="k", ls="--", lw=1, alpha=0.5,
                              label="embeddings (length)"),
                       Line2D([], [], color="w", marker="*", ms=12, mfc="grey", mec="k",
                              label="onset")], loc="upper left")
    fig.tight_layout()
    return fig
