"""Figures of chapter 2 (matplotlib).  Each function returns its ``Figure``."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from llmfeatures.circuits.ablation import PatchingResult
from llmfeatures.circuits.heads import HeadScores
from llmfeatures.circuits.lens import DLAResult
from llmfeatures.plotting import fit_module_figures, plot_attention_pattern, plot_heatmap


def _tok(t: str) -> str:
    return repr(t)[1:-1]


def _contrast(ax, values: np.ndarray, lim: float) -> None:
    """Cell labels written by ``plot_heatmap``: white on dark cells, black elsewhere."""
    for t, v in zip(ax.texts, np.asarray(values).ravel(), strict=False):
        t.set_color("w" if abs(v) > 0.6 * lim else "k")


def plot_write_norms(norms: pd.DataFrame):
    """Bars: mean norm of each attention and MLP layer's write; line: the residual stream's norm
    after each block; dotted lines: the token and position embeddings."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    layers = sorted(norms.loc[norms.kind.isin(["attn", "mlp"]), "layer"].unique())
    x = np.arange(len(layers))
    for off, kind, color in ((-0.2, "attn", "C0"), (0.2, "mlp", "C1")):
        v = norms[norms.kind == kind].set_index("layer").loc[layers, "norm"]
        ax.bar(x + off, v, width=0.4, color=color, label=f"{kind} write (hook_{kind}_out)")
    r = norms[norms.kind == "resid"].sort_values("layer")
    ax.plot(r.layer + 0.0, r.norm, "k-o", ms=4, label="residual stream (embed, after block L)")
    for name, ls in (("embed", ":"), ("pos_embed", "--")):
        ax.axhline(float(norms.loc[norms.component == name, "norm"].iloc[0]), color="grey",
                   ls=ls, lw=1, label=f"hook_{name}")
    ax.set_xticks([-1, *x], ["embed", *map(str, layers)])
    ax.set(xlabel="layer", ylabel="mean L2 norm per token", title="How much each component writes")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_head_scores(scores: Sequence[HeadScores], ncols: int = 3):
    """One heatmap per probe: each head's score, with its random-key control in brackets."""
    n = len(scores)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.4 * nrows), squeeze=False)
    for ax, s in zip(axes.flat, scores, strict=False):
        n_layers, n_heads = s.score.shape
        im = ax.imshow(s.score, cmap="Blues", vmin=0, vmax=max(0.05, float(s.score.max())),
                       aspect="auto")
        for layer in range(n_layers):
            for h in range(n_heads):
                dark = s.score[layer, h] > 0.6 * s.score.max()
                ax.text(h, layer, f"{s.score[layer, h]:.2f}\n({s.control[layer, h]:.2f})",
                        ha="center", va="center", fontsize=7, color="w" if dark else "k")
        ax.set_xticks(range(n_heads))
        ax.set_yticks(range(n_layers))
        ax.set(xlabel="head", ylabel="layer", title=s.name)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="mean attention")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Attention to the expected tokens (in brackets: to random tokens)", y=1.0)
    fig.tight_layout()
    return fig


def plot_patterns(panels: Sequence[tuple[np.ndarray, list[str], str]], ncols: int = 2):
    """Attention patterns ``[query, key]`` with their tokens and a title, side by side."""
    n = len(panels)
    nrows = -(-n // ncols)
    size = max(len(t) for _, t, _ in panels)
    side = min(7.0, 1.5 + 0.3 * size)
    fig, axes = plt.subplots(nrows, ncols, figsize=(side * ncols + 2.5, side * nrows),
                             squeeze=False, layout="constrained")
    for ax, (pattern, tokens, title) in zip(axes.flat, panels, strict=False):
        plot_attention_pattern(pattern, tokens, title=title, ax=ax)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.get_layout_engine().set(wspace=0.08)
    return fig


def plot_logit_lens(lens: pd.DataFrame, prompt_labels: Sequence[str], k: int = 5):
    """Left: rank of the right answer (log colour) per prompt and layer, the first layer where it
    is in the top ``k`` outlined.  Right: how many prompts first reach the top ``k`` at each
    layer."""
    from llmfeatures.circuits.lens import first_layer_in_top

    ranks = lens.pivot(index="prompt", columns="depth", values="rank")
    labels = lens.drop_duplicates("depth").sort_values("depth")["layer"].tolist()
    first = first_layer_in_top(lens, k)
    n = len(ranks)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, max(3.5, 0.22 * n + 1.2)),
                                  gridspec_kw={"width_ratios": [1.3, 1]})
    im = ax.imshow(ranks.values, aspect="auto", cmap="viridis_r",
                   norm=LogNorm(vmin=1, vmax=max(2, int(ranks.values.max()))))
    for row, d in enumerate(first.loc[ranks.index]):
        if d >= 0:
            ax.add_patch(plt.Rectangle((d - 0.5, row - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(n), [prompt_labels[i] for i in ranks.index], fontsize=7)
    ax.set(xlabel="layer (embed = blocks.0.hook_resid_pre)", ylabel="prompt",
           title=f"rank of the right answer (red: first in top {k})")
    fig.colorbar(im, ax=ax, label="rank (1 = top)")
    counts = first.value_counts().reindex([*range(len(labels)), -1], fill_value=0)
    ax2.bar(range(len(labels) + 1), counts.values, color=["C0"] * len(labels) + ["grey"])
    ax2.set_xticks(range(len(labels) + 1), [*labels, "never"])
    ax2.set(xlabel="first layer in the top 5".replace("5", str(k)), ylabel="prompts",
            title="where the answer appears")
    fig.tight_layout()
    return fig


def plot_lens_curves(lens_by_task: dict[str, pd.DataFrame]):
    """Per task: the share of prompts whose answer beats its competitors, and the answer's median
    probability, read off each layer."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, lens in lens_by_task.items():
        g = lens.groupby("depth")
        labels = lens.drop_duplicates("depth").sort_values("depth")["layer"].tolist()
        a1.plot(g.depth.first(), g.rank_among.apply(lambda r: (r == 1).mean()), "-o", label=name)
        a2.plot(g.depth.first(), g.prob.median(), "-o", label=name)
    for ax in (a1, a2):
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("layer (embed = blocks.0.hook_resid_pre)")
        ax.legend(fontsize=8)
    a1.set(ylabel="answer beats competitors", ylim=(0, 1.05), title="logit lens: accuracy")
    a2.set(ylabel="median probability of the answer", yscale="log", title="logit lens: probability")
    fig.tight_layout()
    return fig


def plot_dla(dla: DLAResult, title: str, n_neurons: int = 10):
    """Direct logit attribution: per component, per head, and the top neurons."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1.3, 1, 1.2]})
    c = dla.components
    axes[0].bar(range(len(c)), c.values, color=["C2" if "mlp" in k else "C0" if "attn" in k
                                                 else "grey" for k in c.index])
    axes[0].set_xticks(range(len(c)), c.index, rotation=45, ha="right")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set(ylabel="mean direct effect on the metric", title="per component")
    lim = float(np.abs(dla.heads).max()) or 1.0
    plot_heatmap(dla.heads, xlabel="head", ylabel="layer", title="per head", cmap="RdBu",
                 annotate=True, ax=axes[1], vmin=-lim, vmax=lim)
    axes[1].set_xticks(range(dla.heads.shape[1]))
    axes[1].set_yticks(range(dla.heads.shape[0]))
    _contrast(axes[1], dla.heads, lim)
    axes[1].images[0].colorbar.set_label("mean direct effect")
    top = dla.top_neurons(n_neurons)
    axes[2].barh(range(len(top))[::-1], top.dla, color=np.where(top.dla > 0, "C2", "C3"))
    axes[2].set_yticks(range(len(top))[::-1], [f"L{r.layer} N{r.neuron}"
                                               for r in top.itertuples()], fontsize=8)
    axes[2].axvline(0, color="k", lw=0.5)
    axes[2].set(xlabel="mean direct effect", title=f"top {n_neurons} MLP neurons")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_ablation(table: pd.DataFrame, title: str, value: str = "d_accuracy"):
    """Change of accuracy (or metric) when each component alone is ablated, per mode."""
    order = list(dict.fromkeys(table.component))
    m = table.pivot(index="component", columns="mode", values=value).loc[order]
    lim = float(np.abs(m.values).max()) or 1.0
    fig, ax = plt.subplots(figsize=(5.5, 0.28 * len(m) + 1.6))
    plot_heatmap(m.values, xlabels=list(m.columns), ylabels=list(m.index), cmap="RdBu",
                 annotate=True, ax=ax, vmin=-lim, vmax=lim, xlabel="ablation",
                 ylabel="component", title=title)
    ax.set_xticks(range(m.shape[1]), list(m.columns), rotation=0, ha="center")
    _contrast(ax, m.values, lim)
    ax.images[0].colorbar.set_label({"d_accuracy": "change of accuracy",
                                     "d_metric": "change of the metric"}.get(value, value))
    fig.tight_layout()
    return fig


def plot_head_set_curve(curve: pd.DataFrame, chance: float, clean: float, title: str):
    """Accuracy when the top-k heads of a ranking are ablated together, against k random heads
    (mean and 10-90% range of the draws), with chance and the clean model."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    r = curve[curve.kind == "ranked"].sort_values("k")
    ax.plot(r.k, r.accuracy, "-o", color="C3", label="top-k heads by attention score")
    rnd = curve[(curve.kind == "random") | (curve.k == 0)].groupby("k").accuracy
    ax.plot(rnd.mean().index, rnd.mean().values, "-s", color="C0", label="k random heads (mean)")
    ax.fill_between(rnd.mean().index, rnd.quantile(0.1).values, rnd.quantile(0.9).values,
                    color="C0", alpha=0.2, label="random heads, 10-90% of draws")
    ax.axhline(chance, color="grey", ls="--", label="chance")
    ax.axhline(clean, color="k", ls=":", label="no ablation")
    ax.set(xlabel="heads ablated together (k)", ylabel="accuracy", title=title,
           ylim=(min(chance, float(curve.accuracy.min())) - 0.05, 1.02))
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def plot_patching(result: PatchingResult, title: str):
    """Layer x position patching effect for the residual stream, attention and MLP outputs."""
    kinds = ("residual stream (resid_pre)", "attention output", "MLP output")
    n_layers = result.values.shape[1]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.5 * n_layers + 2.8), sharey=True,
                             layout="constrained")
    for ax, v, kind in zip(axes, result.values, kinds, strict=True):
        im = ax.imshow(v, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
        for layer in range(v.shape[0]):
            for p in range(v.shape[1]):
                if abs(v[layer, p]) >= 0.05:
                    ax.text(p, layer, f"{v[layer, p]:.2f}", ha="center", va="center", fontsize=8,
                            color="w" if abs(v[layer, p]) > 0.6 else "k")
        ax.set_xticks(range(len(result.labels)), [_tok(t) for t in result.labels], rotation=45,
                      ha="right")
        ax.set(title=kind, xlabel="position (tokens of the first pair's clean prompt)")
    axes[0].set_yticks(range(n_layers))
    axes[0].set_ylabel("block")
    fig.colorbar(im, ax=list(axes), label="share of the clean logit difference restored")
    fig.suptitle(title)
    return fig


def plot_patch_heads(result: PatchingResult, title: str):
    """Layer x head patching effect."""
    fig, ax = plt.subplots(figsize=(5, 0.5 * result.values.shape[0] + 2))
    plot_heatmap(result.values, xlabel="head", ylabel="layer", title=title, cmap="RdBu",
                 annotate=True, ax=ax, vmin=-1, vmax=1)
    ax.set_xticks(range(result.values.shape[1]))
    ax.set_yticks(range(result.values.shape[0]))
    _contrast(ax, result.values, 1.0)
    ax.images[0].colorbar.set_label("share of the clean logit difference restored")
    fig.tight_layout()
    return fig


def plot_dla_vs_ablation(tables: dict[str, tuple[pd.DataFrame, float]], n_labels: int = 4):
    """Per task: each head and MLP layer by its direct logit attribution (x) and the drop of the
    metric when it is ablated (y).  Points far from the diagonal act through later components."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 4.2), squeeze=False)
    for ax, (name, (df, rho)) in zip(axes[0], tables.items(), strict=True):
        is_mlp = df.component.str.endswith("mlp")
        ax.scatter(df.dla[~is_mlp], df.effect[~is_mlp], color="C0", label="head")
        ax.scatter(df.dla[is_mlp], df.effect[is_mlp], color="C2", marker="s", label="MLP layer")
        lo = float(min(df.dla.min(), df.effect.min(), 0))
        hi = float(max(df.dla.max(), df.effect.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1, label="effect = DLA")
        # label the components far from the origin (the cluster near zero stays unlabelled)
        size = np.hypot(df.dla / (hi - lo), df.effect / (hi - lo))
        show = df[size > 0.08].nlargest(n_labels + 2, "effect")
        for r in show.itertuples():
            ax.annotate(r.component, (r.dla, r.effect), fontsize=8, xytext=(6, -3),
                        textcoords="offset points")
        ax.set(xlabel="direct logit attribution", ylabel="metric drop when ablated (mean)",
               title=f"{name}: Spearman rho = {rho:.2f}")
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


__all__ = [
    "plot_ablation",
    "plot_dla",
    "plot_dla_vs_ablation",
    "plot_head_scores",
    "plot_head_set_curve",
    "plot_lens_curves",
    "plot_logit_lens",
    "plot_patch_heads",
    "plot_patching",
    "plot_patterns",
    "plot_write_norms",
]


# every figure of this chapter fits the book's text column (see llmfeatures.plotting.fit_column)
fit_module_figures(globals())
