"""Figures of chapter 6 (matplotlib): training dynamics, error against the baselines, CD heatmap,
UMAP, patching, CD vs accuracy."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch


def plot_loss_and_cd(
    history: pd.DataFrame,
    cd: pd.DataFrame,
    layer: int,
    n_examples: int,
    curriculum: tuple[tuple[int, int], ...] = (),
):
    """Left: error per basis over training at context length ``n_examples``; right: CD per
    concept at ``layer``.  Both on a log step axis (step 0 drawn at 1).  The steps where a
    ``curriculum`` (``TrainConfig.curriculum``) brings in more bases are drawn as dotted lines."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for step, n in curriculum:
        if step > 0:
            for ax in (a1, a2):
                ax.axvline(step, color="grey", ls=":", lw=1)
            a2.text(step, 1.0, f" {n} bases", fontsize=7, color="grey", va="top")
    h = history[history.n_examples == n_examples]
    for basis, g in h.groupby("basis"):
        a1.plot(g.step.clip(lower=1), g.mse, marker="o", ms=3, label=f"B{basis + 1}")
    a1.set(xscale="log", yscale="log", xlabel="training step", ylabel=f"squared error ({n_examples} examples)",
           title="loss per concept")
    a1.legend(fontsize=8)
    c = cd[(cd.layer == layer) & (cd.concept != "mean")]
    for concept, g in c.groupby("concept"):
        a2.plot(g.step.clip(lower=1), g.cd, marker="o", ms=3, label=f"B{int(concept) + 1}")
    a2.set(xscale="log", ylim=(0, 1.05), xlabel="training step", ylabel="CD", title=f"CD at layer {layer}")
    fig.tight_layout()
    return fig


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
    fig, ax = plt.subplots(figsize=(8, 3.6))
    h = history[history.step == step]
    for basis, g in h.groupby("basis"):
        ax.plot(g.n_examples, g.mse, marker="o", ms=3, label=f"model, B{basis + 1}")
    missing = [m for m in methods if m not in set(baselines.method)]
    if missing:
        raise ValueError(f"baselines lack {missing}; recompute them with baseline_curves()")
    styles = [("k", "--"), ("k", "-."), ("grey", "--"), ("grey", "-.")]
    for i, m in enumerate(methods):
        g = baselines[baselines.method == m]
        color, ls = styles[i % len(styles)]
        ax.plot(g.n_examples, g.mse, color=color, ls=ls, lw=1.2, label=m)
    ax.set(yscale="log", xlabel="in-context examples", ylabel="squared error",
           title=f"model at step {step} against the baselines")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_cd_heatmap(cd: pd.DataFrame):
    """Mean CD as a heatmap: layer (rows) x checkpoint (columns)."""
    m = cd[cd.concept == "mean"].pivot(index="layer", columns="step", values="cd")
    fig, ax = plt.subplots(figsize=(1 + 0.5 * m.shape[1], 0.5 + 0.4 * m.shape[0]))
    im = ax.imshow(m.values, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(m.shape[1]), [str(s) for s in m.columns], rotation=60, fontsize=7)
    ax.set_yticks(range(m.shape[0]), [str(i) for i in m.index])
    ax.set(xlabel="training step", ylabel="layer", title="Concept Decodability")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def umap_embed(reps: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D UMAP (n_neighbors=15, min_dist=0.1) of ``(N, d)`` representations -> ``(N, 2)``."""
    import umap

    return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(
        reps.detach().cpu().float().numpy()
    )


def plot_umap_grid(panels: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]):
    """UMAP scatter per (row, column) key, e.g. (checkpoint, layer); values (reps, labels)."""
    rows = sorted({r for r, _ in panels}, key=lambda r: list(panels).index(next(k for k in panels if k[0] == r)))
    cols = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.4 * len(cols), 2.4 * len(rows)), squeeze=False)
    for (r, c), (reps, labels) in panels.items():
        ax = axes[rows.index(r), cols.index(c)]
        emb = umap_embed(reps)
        ax.scatter(emb[:, 0], emb[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=4, vmin=0, vmax=9)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{r}, {c}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_patching(delta: torch.Tensor, layer: int):
    """The ``(C, C)`` loss-change matrix of :func:`llmfeatures.icl.patching.patching_matrix`."""
    C = delta.shape[0]
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    v = float(delta.abs().max())
    im = ax.imshow(delta.numpy(), cmap="RdBu_r", vmin=-v, vmax=v)
    names = [f"B{i + 1}" for i in range(C)]
    ax.set_xticks(range(C), names), ax.set_yticks(range(C), names)
    ax.set(xlabel="mean patched in", ylabel="true concept", title=f"loss change, layer {layer}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig


def plot_cd_vs_accuracy(df: pd.DataFrame, cd_col: str = "cd", acc_col: str = "accuracy",
                        label_col: str = "task"):
    """Scatter of CD against accuracy across tasks, with the least-squares line and its R^2."""
    x, y = df[cd_col].to_numpy(float), df[acc_col].to_numpy(float)
    fig, ax = plt.subplots(figsize=(4, 3.4))
    ax.scatter(x, y)
    for _, row in df.iterrows():
        ax.annotate(str(row[label_col]), (row[cd_col], row[acc_col]), fontsize=7)
    r2 = float("nan")
    if len(x) > 2 and np.ptp(x) > 0:
        slope, icpt = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 10)
        ax.plot(xs, slope * xs + icpt, "k--", lw=1)
        r2 = float(np.corrcoef(x, y)[0, 1] ** 2)
    ax.set(xlabel="Concept Decodability", ylabel="ICL accuracy", title=f"R$^2$ = {r2:.2f}")
    fig.tight_layout()
    return fig
