"""Figures of chapter 7.  Each function draws a new figure from the tables of
:func:`llmfeatures.finetune.chapter_results` and returns it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from llmfeatures.plotting import fit_module_figures

RUN_COLOURS = {"base": "0.35", "full": "tab:blue", "early": "tab:green", "late": "tab:red",
               "icl_early": "tab:green", "icl_late": "tab:red"}
GROUP_COLOURS = {"shift": "tab:orange", "untouched": "tab:blue", "other": "0.6"}


def plot_behaviour(beh: pd.DataFrame) -> Figure:
    """Accuracies (left) and the recipe loss (right) of the base model and each run."""
    acc_cols = [c for c in beh.columns if c != "recipe_loss"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), width_ratios=(4, 1))
    x = np.arange(len(acc_cols))
    w = 0.8 / len(beh)
    for i, (name, row) in enumerate(beh.iterrows()):
        ax.bar(x + i * w, row[acc_cols].astype(float), w, label=name,
               color=RUN_COLOURS.get(name, None))
        ax2.bar(i, float(row["recipe_loss"]), color=RUN_COLOURS.get(name, None))
    ax.set_xticks(x + 0.4 - w / 2, [c.replace("_", "\n") for c in acc_cols], fontsize=8)
    ax.set(ylabel="share correct", ylim=(0, 1.05), title="Behaviour before and after tuning")
    ax.legend(frameon=False, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax2.set_xticks(range(len(beh)), list(beh.index), rotation=45, fontsize=8)
    ax2.set(ylabel="nats per token", title="recipe loss")
    fig.tight_layout()
    return fig


def plot_sae_fit(fit: pd.DataFrame) -> Figure:
    """FVE and loss recovered per layer: base SAE on the base model, on the tuned model, and the
    SAE trained further on the tuned model."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    styles = {("base", "base"): ("0.35", "o", "base SAE on base model"),
              ("tuned", "base"): ("tab:red", "s", "base SAE on tuned model"),
              ("tuned", "tuned"): ("tab:blue", "^", "tuned SAE on tuned model")}
    for (model, sae), g in fit.groupby(["model", "sae"]):
        c, m, label = styles[(model, sae)]
        for ax, col in zip(axes, ("fve", "loss_recovered"), strict=True):
            ax.plot(g["layer"], g[col], marker=m, color=c, label=label)
    for ax, name in zip(axes, ("fraction of variance explained", "loss recovered"), strict=True):
        ax.set(xlabel="layer (blocks.L.hook_resid_post)", ylabel=name)
        ax.set_xticks(sorted(fit["layer"].unique()))
    axes[1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_drift(drift: pd.DataFrame) -> Figure:
    """Distributions of activation drift (1 - correlation) and decoder change (1 - cosine) for
    latents tied to the shift, latents of untouched domains and the others."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    groups = [g for g in ("shift", "untouched", "other") if (drift["group"] == g).any()]
    for ax, col, name in zip(axes, ("drift", "dec_change"),
                             ("activation drift (1 - correlation)", "decoder change (1 - cosine)"),
                             strict=True):
        data = [drift.loc[drift["group"] == g, col].dropna().to_numpy() for g in groups]
        parts = ax.boxplot(data, tick_labels=[f"{g}\n(n={len(d)})" for g, d in zip(groups, data,
                                                                                 strict=True)],
                           patch_artist=True, showfliers=False)
        for patch, g in zip(parts["boxes"], groups, strict=True):
            patch.set_facecolor(GROUP_COLOURS[g])
            patch.set_alpha(0.6)
        for i, d in enumerate(data, 1):
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(d))
            ax.scatter(i + jitter, d, s=4, color="k", alpha=0.3)
        ax.set(ylabel=name)
        if col == "dec_change":
            ax.set_yscale("symlog", linthresh=1e-3)
    fig.suptitle("Which latents moved (all layers)")
    fig.tight_layout()
    return fig


def plot_explanations(expl: pd.DataFrame) -> Figure:
    """Share of explanations that hold after tuning, by layer and drift tercile."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = list(dict.fromkeys(expl["drift_bin"].astype(str)))
    layers = sorted(expl["layer"].unique())
    w = 0.8 / len(bins)
    for i, b in enumerate(bins):
        g = expl[expl["drift_bin"].astype(str) == b].set_index("layer").reindex(layers)
        ax.bar(np.arange(len(layers)) + i * w, g["share"], w, label=f"{b} drift")
    ax.set_xticks(np.arange(len(layers)) + 0.4 - w / 2, [str(L) for L in layers])
    ax.set(xlabel="layer", ylabel="explanations that hold", ylim=(0, 1.05))
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_early_late(acc: pd.DataFrame, cd: pd.DataFrame) -> Figure:
    """ICL accuracy per task (left) and Concept Decodability by layer (right) for the base model
    and the early- and late-tuned ones."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    tasks = list(dict.fromkeys(acc["task"]))
    models = list(dict.fromkeys(acc["model"]))
    w = 0.8 / len(models)
    for i, m in enumerate(models):
        g = acc[acc["model"] == m].set_index("task").reindex(tasks)
        ax.bar(np.arange(len(tasks)) + i * w, g["accuracy"], w, label=m,
               color=RUN_COLOURS.get(m))
        c = cd[cd["model"] == m].sort_values("layer")
        ax2.plot(c["layer"], c["cd"], marker="o", label=m, color=RUN_COLOURS.get(m))
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - w / 2, tasks, rotation=30, fontsize=8)
    ax.set(ylabel="4-shot exact match", ylim=(0, 1.05), title="ICL accuracy per task")
    ax.legend(frameon=False, fontsize=8)
    ax2.set(xlabel="layer (-1 = embeddings)", ylabel="Concept Decodability", ylim=(0, 1.05),
            title="CD at the last prompt token")
    ax2.set_xticks(sorted(cd["layer"].unique()))
    fig.tight_layout()
    return fig


fit_module_figures(globals())
