"""Figures of chapter 1 (book style, fitted to the text column)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from llmfeatures.plotting import fit_module_figures

FAMILY_STYLE = {"sae": ("SAE latents", "C0", "o"), "neuron": ("MLP neurons", "C1", "s"),
                "random": ("random directions (null)", "0.5", "^")}


def plot_monosemanticity(table: pd.DataFrame, kinds=("domain", "pos", "entity_type")):
    """Share of monosemantic units per layer, one panel per label kind, one line per family."""
    kinds = [k for k in kinds if k in set(table["kind"])]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 2.8), sharey=True,
                             squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for fam, (label, colour, marker) in FAMILY_STYLE.items():
            t = table[(table.kind == kind) & (table.family == fam)].sort_values("layer")
            if len(t):
                ax.plot(t.layer, t.frac_pure, marker=marker, color=colour, label=label)
        ax.set_title(kind)
        ax.set_xlabel("layer (resid_post)")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of multi-token units\nwith purity >= threshold")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_tradeoff(curve: pd.DataFrame, corpus_max: float):
    """Activation reached against the sequence's cross-entropy, per fluency penalty."""
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for i, (lam, g) in enumerate(curve.groupby("fluency")):
        ax.scatter(g.ce, g.activation, color=f"C{i}", label=f"fluency penalty {lam:g}", s=18)
    ax.axhline(corpus_max, color="0.4", ls="--", lw=1, label="corpus maximum")
    ax.set_xlabel("model's cross-entropy of the sequence (nats/token)")
    ax.set_ylabel("activation")
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def plot_training(scan: dict, probe_layer: int):
    """Loss per domain, task accuracy and probe accuracy at one layer over training steps."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.9))
    for dom, g in scan["loss"].groupby("domain"):
        axes[0].plot(g.step, g.loss, marker=".", label=dom)
    axes[0].set_ylabel("next-token loss")
    axes[0].legend(frameon=False, fontsize="x-small")
    for task, g in scan["tasks"].groupby("task"):
        axes[1].plot(g.step, g.accuracy, marker=".", label=task)
    axes[1].set_ylabel("task accuracy (top-1)")
    axes[1].legend(frameon=False, fontsize="small")
    p = scan["probes"][scan["probes"].layer == probe_layer]
    for probe, g in p.groupby("probe"):
        axes[2].plot(g.step, g.accuracy, marker=".", label=probe)
        axes[2].plot(g.step, g.majority, ls=":", color=axes[2].lines[-1].get_color())
    axes[2].set_ylabel(f"probe accuracy, layer {probe_layer}\n(dotted: majority class)")
    axes[2].legend(frameon=False, fontsize="small")
    for ax in axes:
        ax.set_xscale("symlog", linthresh=16)
        ax.set_xlabel("training step")
    fig.tight_layout()
    return fig


def plot_presence(table: pd.DataFrame, onsets: pd.DataFrame, tasks: pd.DataFrame,
                  groups: pd.Series | None = None, layer: int | None = None):
    """When the final features appear, beside the skills.

    Left: presence (held-out correlation of the linear readout) over training steps, median and
    interquartile band per group of latents (``groups``: unit -> group name), with the step-0
    value as the null.  Right: how many latents have their onset at each step (bars) and the
    task accuracies (lines, right axis)."""
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    ax = axes[0]
    grouped = table.assign(group="all latents" if groups is None else
                           groups.reindex(table.unit).to_numpy())
    for i, (name, g) in enumerate(grouped.groupby("group", sort=True)):
        q = g.groupby("step")["presence"].quantile([0.25, 0.5, 0.75]).unstack()
        ax.plot(q.index, q[0.5], marker=".", color=f"C{i}",
                label=f"{name} ({g.unit.nunique()})")
        ax.fill_between(q.index, q[0.25], q[0.75], color=f"C{i}", alpha=0.15, lw=0)
    ax.set_ylabel("presence: held-out correlation\nof the linear readout")
    ax.set_title(f"final SAE latents, layer {layer}" if layer is not None else "final SAE latents",
                 fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small", loc="upper left")
    ax = axes[1]
    steps = np.sort(table.step.unique())
    counts = onsets.onset.value_counts().reindex(steps, fill_value=0)
    ax.bar(steps, counts.to_numpy(), width=np.diff(np.r_[steps, steps[-1] * 1.4]) * 0.6,
           align="edge", color="0.75", label="latents with their onset here")
    ax.set_ylabel("number of latents")
    twin = ax.twinx()
    for i, (task, g) in enumerate(tasks.sort_values("step").groupby("task")):
        twin.plot(g.step, g.accuracy, marker=".", color=f"C{i + 3}", label=f"{task} accuracy")
    twin.set_ylim(0, 1.02)
    twin.set_ylabel("task accuracy (top-1)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, frameon=False, fontsize="x-small", loc="upper left")
    for a in axes:
        a.set_xscale("symlog", linthresh=16)
        a.set_xlim(0, steps[-1] * 1.3)
        a.set_xlabel("training step")
    fig.tight_layout()
    return fig


fit_module_figures(globals())
