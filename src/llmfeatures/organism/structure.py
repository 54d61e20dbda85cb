"""The planted structure of the organism, measured: the figures chapters 3-5 rely on.

:func:`structure_figures` measures, on a built organism,

- **pair-level parallelism** at the middle layer: per relation, the mean cosine of the
  difference vectors of its pairs against shuffled pairs (:func:`llmfeatures.crystals.parallelism`);
  words are represented alone, as in the reference (:func:`llmfeatures.crystals.word_representations`),
  and averaged over corpus contexts that name neither partner (:func:`pair_reps`);
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


REPRESENTATIONS: tuple[str, ...] = ("alone", "context")
# how the book and the benchmark name each representation
REPRESENTATION_NAMES: dict[str, str] = {"alone": "words alone", "context": "words in context"}


def pair_reps(model, world, layers, kind: str = "alone", scale: str | None = None
              ) -> tuple[pd.DataFrame, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """The relation pairs and the representations of their two words at ``layers``.

    ``kind="alone"``: each word fed alone after ``<|bos|>``, as the reference code does;
    ``kind="context"``: each word averaged over corpus contexts that contain neither of its
    partners (chapter 3's settings, :func:`llmfeatures.crystals.crystal_config` of ``scale``).
    Pairs with a word the corpus never shows are dropped.  Returns ``(pairs, {L: (inputs
    [n, d], outputs [n, d])})``; layer ``L`` is ``blocks.L.hook_resid_post`` (``-1``: the
    embeddings).
    """
    from llmfeatures.crystals import pair_representations

    pairs = world.relation_pairs()
    layers = list(layers)
    if kind == "alone":
        return pairs, pair_representations(model, pairs, layers)
    if kind != "context":
        raise ValueError(f"kind must be one of {REPRESENTATIONS}, got {kind!r}.")
    from llmfeatures.crystals.analysis import crystal_config
    from llmfeatures.features.corpus import organism_corpus

    cfg = crystal_config(scale)
    corpus = organism_corpus(world, model.tokenizer, splits=cfg.context_splits,
                             max_docs=cfg.context_docs)
    reps = pair_representations(model, pairs, layers, corpus=corpus, n_contexts=cfg.n_contexts,
                                window=cfg.window, seed=cfg.seed)
    x, y = reps[layers[0]]
    keep = ~(np.isnan(x).any(1) | np.isnan(y).any(1))
    return (pairs[keep].reset_index(drop=True),
            {L: (a[keep], b[keep]) for L, (a, b) in reps.items()})


def _parallel(pairs, x, y, n_shuffles: int, seed: int) -> pd.DataFrame:
    from llmfeatures.crystals import parallelism

    return parallelism(x, y, pairs["relation"].to_numpy(), n_shuffles=n_shuffles, seed=seed)


def _length(pairs, reps, n_permutations: int, seed: int) -> pd.DataFrame:
    from llmfeatures.crystals import length_distractor

    target = (pairs["output_chars"] - pairs["input_chars"]).to_numpy()
    rows = []
    for L, (x, y) in reps.items():
        t = length_distractor(y - x, target, pairs["relation"].to_numpy(),
                              n_permutations=n_permutations, seed=seed)
        rows.append({"layer": L, "r": t.r, "abs_r": abs(t.r), "null_mean": t.null_mean,
                     "null_q95": t.null_q95, "p": t.p, "pc1_explained": t.explained})
    return pd.DataFrame(rows).set_index("layer")


def parallelism_table(model, world, layer: int, n_shuffles: int = 50, seed: int = 0,
                      kind: str = "alone", scale: str | None = None) -> pd.DataFrame:
    """:func:`llmfeatures.crystals.parallelism` of every relation at ``layer``
    (``blocks.L.hook_resid_post``), for words alone or in context (:func:`pair_reps`)."""
    pairs, reps = pair_reps(model, world, [layer], kind, scale)
    return _parallel(pairs, *reps[layer], n_shuffles, seed)


def length_table(model, world, layers, n_permutations: int = 500, seed: int = 0,
                 kind: str = "alone", scale: str | None = None) -> pd.DataFrame:
    """Per layer: PC1 of the pairs' differences (relation means removed, standardised) against the
    difference in characters (output minus input), with the permutation null; words alone or in
    context (:func:`pair_reps`)."""
    pairs, reps = pair_reps(model, world, layers, kind, scale)
    return _length(pairs, reps, n_permutations, seed)


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


def structure_tables(model, world, layer: int, n_shuffles: int = 50, n_permutations: int = 500,
                     scale: str | None = None
                     ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Both word-level tables for each representation of :data:`REPRESENTATIONS`:
    ``({kind: parallelism at layer}, {kind: length table over every layer})``, each kind's
    representations computed once."""
    par, length = {}, {}
    for kind in REPRESENTATIONS:
        pairs, reps = pair_reps(model, world, range(-1, model.cfg.n_layers), kind, scale)
        par[kind] = _parallel(pairs, *reps[layer], n_shuffles, 0)
        length[kind] = _length(pairs, reps, n_permutations, 0)
    return par, length


def structure_figures(scale: str | None = None, n_shuffles: int = 50,
                      n_permutations: int = 500) -> dict[str, Any]:
    """All structure figures of the organism at ``scale`` (built if missing) and the bars'
    verdicts, for both representations of :data:`REPRESENTATIONS` (the issue's bars accept words
    alone or in context: a bar is met when either kind meets it).

    Returns ``{"parallel": {kind: DataFrame}, "length": {kind: DataFrame}, "lobes": dict,
    "checks": dict, "n_parallel": {kind: int}, "length_best": {kind: (layer, |r|, null_q95)}}``.
    """
    from llmfeatures.loaders import load_model, load_world
    from llmfeatures.organism.pipeline import organism_config

    model = load_model("organism", scale=scale)
    world = load_world(scale=scale)
    mid = organism_config(scale).middle_layer
    par, length = structure_tables(model, world, mid, n_shuffles, n_permutations, scale)
    n_par, best = {}, {}
    for kind in REPRESENTATIONS:
        n_par[kind] = int((par[kind].gap >= STRUCTURE_BARS["parallel_gap"]).sum())
        L = int(length[kind]["abs_r"].idxmax())
        best[kind] = (L, float(length[kind].loc[L, "abs_r"]), float(length[kind].loc[L, "null_q95"]))
    lobes = group_lobes(scale, mid)
    checks = {
        "parallel": max(n_par.values()) >= STRUCTURE_BARS["parallel_relations"],
        "length": any(r >= STRUCTURE_BARS["length_abs_r"] and r > q for _, r, q in best.values()),
        "group_lobes": lobes["ami"] >= STRUCTURE_BARS["group_ami"],
    }
    return {"middle_layer": mid, "parallel": par, "length": length, "length_best": best,
            "lobes": lobes, "checks": checks, "n_parallel": n_par,
            "mean_gap": {k: float(np.mean(v.gap)) for k, v in par.items()}}


_KIND_STYLE = {k: (c, REPRESENTATION_NAMES[k])
               for k, c in (("alone", "#1f77b4"), ("context", "#ff7f0e"))}


def _plot_structure(parallel: dict[str, pd.DataFrame], length: dict[str, pd.DataFrame],
                    layer: int, margin: float):
    """Left: per relation, true-pair minus shuffled-pair mean cosine of the difference vectors at
    ``layer`` for each representation, with the bar's margin; right: |r| of PC1 vs length
    difference per layer, with each permutation null's 95th percentile."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=(1.4, 1))
    kinds = list(parallel)
    rel = list(parallel[kinds[0]]["relation"])
    y = np.arange(len(rel))
    h = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        colour, label = _KIND_STYLE[kind]
        gap = parallel[kind].set_index("relation").reindex(rel)["gap"]
        a.barh(y - 0.4 + h * (i + 0.5), gap, height=h, color=colour, label=label)
    a.axvline(margin, color="#555555", ls="--", lw=1, label=f"bar ({margin})")
    a.axvline(0, color="black", lw=0.6)
    a.set_yticks(y, [r.replace("_", " ") for r in rel])
    a.invert_yaxis()
    a.set(xlabel="mean cosine, true minus shuffled pairs",
          title=f"Parallelism of differences at layer {layer}")
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8)
    for kind in kinds:
        colour, label = _KIND_STYLE[kind]
        t = length[kind]
        x = t.index.to_numpy()
        b.plot(x, t["abs_r"], "o-", color=colour, label=f"|r|, {label}")
        b.plot(x, t["null_q95"], ":", color=colour, label=f"null 95th pct, {label}")
    x = length[kinds[0]].index.to_numpy()
    b.set_xticks(x, ["emb" if L < 0 else str(L) for L in x])
    b.set(xlabel="layer (emb = embeddings)", ylabel="|Pearson r|, PC1 vs length",
          ylim=(0, 1), title="The word-length distractor")
    b.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_structure(parallel: dict[str, pd.DataFrame], length: dict[str, pd.DataFrame],
                   layer: int, margin: float = STRUCTURE_BARS["parallel_gap"]):
    """The figure of :func:`structure_figures`' word-level tables (``{kind: table}`` for each
    representation), sized for the book."""
    from llmfeatures.plotting import fit_column

    return fit_column(_plot_structure)(parallel, length, layer, margin)
