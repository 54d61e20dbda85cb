"""The planted structure of the organism, measured: the figures chapters 3-5 rely on.

:func:`structure_figures` measures, on a built organism,

- **pair-level parallelism** at the middle layer: per relation, the mean cosine of the
  difference vectors of its pairs against shuffled pairs (:func:`llmfeatures.crystals.parallelism`);
  words are represented alone, as in the reference (:func:`llmfeatures.crystals.word_representations`);
- **the word-length distractor** at every layer: the correlation of the first principal component
  of the differences (relation means removed) with the difference in characters, beside its
  permutation null (:func:`llmfeatures.crystals.length_distractor`);
- **lobes and the two domain groups**: the adjusted mutual information between the k = 2 phi lobes
  of the middle-layer SAE and each feature's dominant group (formal or prose), beside its
  permutation null (:func:`llmfeatures.lobes.analyse_lobes`).

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# the bars of the second-generation organism issue (book scale)
STRUCTURE_BARS: dict[str, float] = {
    "parallel_gap": 0.1,        # within - shuffled mean cosine, per relation ...
    "parallel_relations": 7,    # ... for at least this many of the 10 relations
    "length_abs_r": 0.4,        # |r| of PC1 vs length difference at some layer
    "group_ami": 0.3,           # AMI of the k = 2 phi lobes with the formal/prose groups
}


def parallelism_table(model, world, layer: int, n_shuffles: int = 50, seed: int = 0) -> pd.DataFrame:
    """:func:`llmfeatures.crystals.parallelism` of every relation at ``layer``, words alone."""
    from llmfeatures.crystals import pair_representations, parallelism

    pairs = world.relation_pairs()
    x, y = pair_representations(model, pairs, [layer])[layer]
    return parallelism(x, y, pairs["relation"].to_numpy(), n_shuffles=n_shuffles, seed=seed)


def length_table(model, world, layers, n_permutations: int = 500, seed: int = 0) -> pd.DataFrame:
    """Per layer: PC1 of the pairs' differences (relation means removed, standardised) against the
    difference in characters (output minus input), with the permutation null."""
    from llmfeatures.crystals import length_distractor, pair_representations

    pairs = world.relation_pairs()
    target = (pairs["output_chars"] - pairs["input_chars"]).to_numpy()
    reps = pair_representations(model, pairs, list(layers))
    rows = []
    for L, (x, y) in reps.items():
        t = length_distractor(y - x, target, pairs["relation"].to_numpy(),
                              n_permutations=n_permutations, seed=seed)
        rows.append({"layer": L, "r": t.r, "abs_r": abs(t.r), "null_mean": t.null_mean,
                     "null_q95": t.null_q95, "p": t.p, "pc1_explained": t.explained})
    return pd.DataFrame(rows).set_index("layer")


def group_lobes(scale: str | None = None, layer: int | None = None, n_permutations: int = 100
                ) -> dict[str, float]:
    """AMI between the k = 2 phi lobes of the SAE at ``layer`` (default: the middle layer) and the
    features' dominant domain group (formal/prose), with the AMI's permutation null."""
    from llmfeatures.loaders import load_model, load_sae
    from llmfeatures.lobes import analyse_lobes, lobe_config, lobe_stats

    cfg = lobe_config(scale, ks=(2,), affinities=("phi",), n_permutations=n_permutations,
                      **({} if layer is None else {"layer": layer}))
    stats = lobe_stats(cfg, scale=scale, progress=False)
    L = next(iter(stats.cooccurrence))
    model = load_model("organism", scale=scale)
    sae = load_sae("organism", L, scale=scale, model=model)
    res = analyse_lobes(stats, sae, L, cfg, domain_kind="group")
    row = res.row("phi", 2)
    return {"layer": L, "n_features": int(len(res.features)),
            "ami": float(row["ami_domain"]), "ami_null_mean": float(row["ami_domain_null_mean"]),
            "ami_null_std": float(row["ami_domain_null_std"])}


def structure_figures(scale: str | None = None, n_shuffles: int = 50,
                      n_permutations: int = 500) -> dict[str, Any]:
    """All structure figures of the organism at ``scale`` (built if missing) and the bars'
    verdicts: ``{"parallel": DataFrame, "length": DataFrame, "lobes": dict, "checks": dict}``."""
    from llmfeatures.loaders import load_model, load_world
    from llmfeatures.organism.pipeline import organism_config

    model = load_model("organism", scale=scale)
    world = load_world(scale=scale)
    mid = organism_config(scale).middle_layer
    par = parallelism_table(model, world, mid, n_shuffles=n_shuffles)
    length = length_table(model, world, range(-1, model.cfg.n_layers),
                          n_permutations=n_permutations)
    lobes = group_lobes(scale, mid)
    best = int(length["abs_r"].idxmax())
    checks = {
        "parallel": int((par.gap >= STRUCTURE_BARS["parallel_gap"]).sum())
        >= STRUCTURE_BARS["parallel_relations"],
        "length": bool(length.loc[best, "abs_r"] >= STRUCTURE_BARS["length_abs_r"]
                       and length.loc[best, "abs_r"] > length.loc[best, "null_q95"]),
        "group_lobes": lobes["ami"] >= STRUCTURE_BARS["group_ami"],
    }
    return {"middle_layer": mid, "parallel": par, "length": length, "length_best_layer": best,
            "lobes": lobes, "checks": checks,
            "n_parallel": int((par.gap >= STRUCTURE_BARS["parallel_gap"]).sum()),
            "mean_gap": float(np.mean(par.gap))}


def _plot_structure(parallel: pd.DataFrame, length: pd.DataFrame, layer: int):
    """Left: per relation, the mean cosine of true-pair and shuffled-pair difference vectors at
    ``layer``; right: |r| of PC1 vs length difference per layer, with the permutation null's 95th
    percentile."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.4, 1))
    y = np.arange(len(parallel))
    a.barh(y + 0.2, parallel["within"], height=0.4, color="#1f77b4", label="true pairs")
    a.barh(y - 0.2, parallel["shuffled"], height=0.4, xerr=parallel["shuffled_sd"],
           color="#bbbbbb", label="shuffled pairs (mean, sd)")
    a.set_yticks(y, [r.replace("_", " ") for r in parallel["relation"]])
    a.invert_yaxis()
    a.set(xlabel="mean cosine between difference vectors",
          title=f"Parallelism at layer {layer} (words alone)")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    x = length.index.to_numpy()
    b.plot(x, length["abs_r"], "o-", color="#d62728", label="|r|, PC1 vs length difference")
    b.plot(x, length["null_q95"], "--", color="#555555", label="permutation null, 95th pct")
    b.set_xticks(x, ["emb" if L < 0 else str(L) for L in x])
    b.set(xlabel="layer (resid_post; emb = embeddings)", ylabel="|Pearson r|", ylim=(0, 1),
          title="The word-length distractor")
    b.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_structure(parallel: pd.DataFrame, length: pd.DataFrame, layer: int):
    """The figure of :func:`structure_figures`' two word-level tables, sized for the book."""
    from llmfeatures.plotting import fit_column

    return fit_column(_plot_structure)(parallel, length, layer)
