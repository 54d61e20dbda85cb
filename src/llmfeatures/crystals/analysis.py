"""Chapter 3 on the organism: every measurement of the chapter in one call.

:func:`organism_crystals` represents the words of every relation pair of the organism's world
(alone, and averaged over corpus contexts that do not contain the partner word) at the embeddings
and every layer, and measures: the word-length distractor per layer (PC1 against the difference in
characters and in tokens, with permutation nulls); the parallelogram and trapezoid shapes at the
middle layer; LDA on held-out pairs at the embeddings and the middle layer, swept over the number
of components, with the permuted-label null; and the crystal search among the middle-layer SAE's
decoder vectors, scored against the planted pairs beside a shuffled-decoder control.  The search
runs on two kinds of points: each word's *decoded code* (the decoder vectors of its active
latents weighted by their activations, :func:`~llmfeatures.crystals.search.decoded_words`) and,
as the paper describes it, the decoder vector of each word's single strongest latent.

The paper's layers 0 and 12 of Gemma-2-2b are Hugging Face ``hidden_states[0]`` (the embeddings)
and ``hidden_states[12]`` (after 12 of 26 blocks); here the embeddings are layer ``-1``
(``blocks.0.hook_resid_pre``) and the middle layer is the organism's
(``llmfeatures.organism.pipeline.middle_layer``, ``(n_layers - 1) // 2``), where its widest SAE
sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmfeatures.config import pick


@dataclass(frozen=True)
class CrystalConfig:
    """Settings of the chapter's measurements.

    LDA: stratified ``n_folds``-fold cross-validation repeated ``n_repeats`` times; ``shrinkage``
    of the within-class covariance (``None``: plain LDA as the reference, ``"auto"``: Ledoit-Wolf,
    ``"cv"``: chosen per fold on its training pairs, see :func:`~llmfeatures.crystals.lda_sweep`).
    Distractor: ``n_permutations`` of the null.  Contexts: up to ``n_contexts`` windows of
    ``window`` tokens per word from the documents of ``context_splits`` (at most
    ``context_docs`` documents).  Search: ``min_cosine``/``min_ratio`` thresholds, precision at
    ``ks``, ``n_controls`` shuffled decoders, at most ``n_neighbours`` candidates per difference,
    differences of mutual ``local``-nearest neighbours only (``None``: every pair of words).
    ``n_random_quads``: random quadrilaterals scored for the search's chance baseline."""

    n_folds: int = 5
    n_repeats: int = 2
    shrinkage: float | str | None = "cv"
    n_permutations: int = 500
    n_shuffles: int = 20
    n_contexts: int = 16
    window: int = 32
    context_splits: tuple[str, ...] = ("val", "train")
    context_docs: int | None = 4000
    min_cosine: float = 0.2
    min_ratio: float = 0.5
    local: int | None = 1
    ks: tuple[int, ...] = (10, 50, 200)
    n_controls: int = 3
    n_neighbours: int = 5
    n_random_quads: int = 100_000
    seed: int = 0


PRESETS: dict[str, CrystalConfig] = {
    "ci": CrystalConfig(n_repeats=1, n_permutations=200, n_shuffles=10, n_contexts=8,
                        context_docs=1500, n_controls=2, n_random_quads=20_000),
    "book": CrystalConfig(),
    "gpu": CrystalConfig(n_repeats=5, n_contexts=32, context_docs=None),
    "paper": CrystalConfig(n_repeats=5, n_contexts=32, context_docs=None),
}


def crystal_config(scale: str | None = None, **overrides) -> CrystalConfig:
    """The preset for ``scale`` (default: ``$LLMFEATURES_SCALE``), with ``overrides``."""
    from dataclasses import replace

    return replace(pick(PRESETS, scale), **overrides)


def token_counts(tokenizer, words) -> np.ndarray:
    """Tokens of ``" " + word`` for every word ``[n]`` (the form of :func:`word_representations`)."""
    return np.array([len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) for w in words])


@dataclass
class Crystals:
    """Everything chapter 3 measures on one model.

    ``pairs``: the relation pairs (with ``input_tokens``/``output_tokens``); ``reps[kind][L]`` =
    ``(inputs, outputs)`` ``[n_pairs, d_model]`` for ``kind`` ``"alone"``/``"context"``;
    ``contexts``: contexts averaged per pair word (``input_contexts``, ``output_contexts`` in
    ``pairs``); ``distractor``: one row per (kind, layer, target) with r, null_q95, p;
    ``parallel``/``shapes``: :func:`parallelism` / :func:`shape_table` at ``middle``;
    ``lda[(kind, L)]``: :class:`LDASweep`; ``features``: the word features (strongest latent per
    word) of the middle SAE; ``search[points]`` / ``search_table[points]``: the
    :class:`CrystalSearch` and its precision against the control, for ``points`` ``"decoded"``
    (every word's decoded code), ``"single"`` (each word feature's decoder vector),
    ``"residual"`` (the residual stream itself, no SAE: the reference) and ``"decoded, all
    pairs"`` (decoded codes, differences of every pair of words rather than of neighbours);
    ``extra["vectors"][points]``: ``(vectors [F, d_model], words)`` searched;
    ``extra["components"]``: :func:`leading_components` where the length distractor (PC1 with
    characters) is strongest (``attrs``: kind, layer); ``extra["decoder_parallel"]`` /
    ``extra["decoded_parallel"]``: :func:`parallelism` of the planted pairs' single decoder vectors
    (relations with >= 3 pairs among the word features) / decoded codes, what the search could at
    best find; ``extra["quad_scores"]``: :func:`~llmfeatures.crystals.search.quad_scores` of the
    decoded codes (planted against random quadrilaterals)."""

    pairs: pd.DataFrame
    layers: list[int]
    middle: int
    reps: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]
    distractor: pd.DataFrame
    parallel: pd.DataFrame
    shapes: pd.DataFrame
    lda: dict
    features: pd.DataFrame
    search: dict
    search_table: dict
    config: CrystalConfig
    extra: dict = field(default_factory=dict)

    def diffs(self, kind: str = "alone", layer: int | None = None) -> np.ndarray:
        """``outputs - inputs`` ``[n_pairs, d_model]`` (only pairs with contexts for ``"context"``)."""
        x, y = self.reps[kind][self.middle if layer is None else layer]
        return y - x

    def relations(self, kind: str = "alone") -> np.ndarray:
        return self.pairs.loc[self.keep(kind), "relation"].to_numpy()

    def keep(self, kind: str) -> np.ndarray:
        """Rows of ``pairs`` present in ``reps[kind]`` (context: both words seen in a context)."""
        if kind == "alone":
            return np.ones(len(self.pairs), bool)
        return ((self.pairs.input_contexts > 0) & (self.pairs.output_contexts > 0)).to_numpy()


def distractor_table(reps: dict[int, tuple[np.ndarray, np.ndarray]], pairs: pd.DataFrame,
                     n_permutations: int, seed: int = 0) -> pd.DataFrame:
    """Per layer and target (``chars``, ``tokens``: output minus input), PC1 of the standardised
    differences (relation means removed) against the target with its within-relation null."""
    from llmfeatures.crystals.geometry import length_distractor

    rows = []
    rel = pairs["relation"].to_numpy()
    targets = {"chars": (pairs.output_chars - pairs.input_chars).to_numpy(),
               "tokens": (pairs.output_tokens - pairs.input_tokens).to_numpy()}
    for L, (x, y) in reps.items():
        for name, t in targets.items():
            if np.std(t) == 0:
                continue
            r = length_distractor(y - x, t, rel, n_permutations=n_permutations, seed=seed)
            rows.append({"layer": L, "target": name, "r": r.r, "abs_r": abs(r.r),
                         "null_q95": r.null_q95, "p": r.p, "pc1_explained": r.explained})
    return pd.DataFrame(rows)


def leading_components(diffs: np.ndarray, targets: dict[str, np.ndarray], relations,
                       n_components: int = 5, n_permutations: int = 500, seed: int = 0
                       ) -> pd.DataFrame:
    """Correlation of each of the first ``n_components`` principal components of ``diffs``
    ``[n, d]`` (relation means removed, standardised, as :func:`first_component`) with each
    target ``[n]``, beside the 95th percentile of ``|r|`` when the target is permuted within
    relations.  One row per (component, target): component (1-based), target, explained, r,
    null_q95."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    rel = np.asarray(relations)
    d = np.asarray(diffs, dtype=np.float64).copy()
    for name in np.unique(rel):
        d[rel == name] -= d[rel == name].mean(0)
    d = StandardScaler().fit_transform(d)
    k = min(n_components, *d.shape)
    pca = PCA(n_components=k, svd_solver="full").fit(d)
    z = pca.transform(d)
    z = (z - z.mean(0)) / z.std(0)
    groups = [np.flatnonzero(rel == g) for g in np.unique(rel)]
    rng = np.random.default_rng(seed)
    rows = []
    for name, t in targets.items():
        t = np.asarray(t, dtype=np.float64)
        if np.std(t) == 0:
            continue
        perms = np.tile(t, (n_permutations, 1))
        for g in groups:
            perms[:, g] = t[g][np.argsort(rng.random((n_permutations, len(g))), axis=1)]
        std = lambda a: (a - a.mean(-1, keepdims=True)) / a.std(-1, keepdims=True)  # noqa: E731
        r = z.T @ std(t) / len(t)
        null = np.abs(std(perms) @ z / len(t))  # [n_permutations, k]
        for j in range(k):
            rows.append({"component": j + 1, "target": name,
                         "explained": float(pca.explained_variance_ratio_[j]), "r": float(r[j]),
                         "null_q95": float(np.quantile(null[:, j], 0.95))})
    return pd.DataFrame(rows)


def organism_crystals(scale: str | None = None, config: CrystalConfig | None = None,
                      model=None, search: bool = True) -> Crystals:
    """All of chapter 3's measurements on the organism at ``scale`` (see the module docstring).
    ``search=False`` skips the SAE and the crystal search (``features``, ``search``,
    ``search_table`` and ``extra["decoder_parallel"]`` are then empty)."""
    from llmfeatures.crystals.context import context_representations, pair_partners
    from llmfeatures.crystals.geometry import parallelism, word_representations
    from llmfeatures.crystals.lda import lda_sweep
    from llmfeatures.crystals.quads import shape_table
    from llmfeatures.crystals.search import (
        decoded_words,
        quad_scores,
        search_against_control,
        strongest_features,
        word_codes,
    )
    from llmfeatures.features.corpus import organism_corpus
    from llmfeatures.loaders import load_model, load_sae, load_world
    from llmfeatures.organism.pipeline import middle_layer

    cfg = config or crystal_config(scale)
    model = model if model is not None else load_model("organism", scale=scale)
    world = load_world(scale=scale)
    pairs = world.relation_pairs()
    tok = model.tokenizer
    pairs["input_tokens"] = token_counts(tok, pairs["input"])
    pairs["output_tokens"] = token_counts(tok, pairs["output"])
    n_layers = model.cfg.n_layers
    layers = [-1, *range(n_layers)]
    middle = middle_layer(scale)
    vocab = sorted(set(pairs["input"]) | set(pairs["output"]))
    index = {w: i for i, w in enumerate(vocab)}
    xi = pairs["input"].map(index).to_numpy()
    yi = pairs["output"].map(index).to_numpy()

    alone = word_representations(model, vocab, layers)
    corpus = organism_corpus(world, tok, splits=cfg.context_splits, max_docs=cfg.context_docs)
    ctx = context_representations(model, corpus, vocab, layers, n_contexts=cfg.n_contexts,
                                  window=cfg.window, exclude=pair_partners(pairs), seed=cfg.seed)
    pairs["input_contexts"] = ctx.counts[xi]
    pairs["output_contexts"] = ctx.counts[yi]
    keep = ((pairs.input_contexts > 0) & (pairs.output_contexts > 0)).to_numpy()
    reps = {"alone": {L: (h[xi], h[yi]) for L, h in alone.items()},
            "context": {L: (h[xi][keep], h[yi][keep]) for L, h in ctx.reps.items()}}

    dist = pd.concat([distractor_table(reps["alone"], pairs, cfg.n_permutations, cfg.seed)
                      .assign(kind="alone"),
                      distractor_table(reps["context"], pairs[keep], cfg.n_permutations, cfg.seed)
                      .assign(kind="context")], ignore_index=True)
    rel = pairs["relation"].to_numpy()
    best = dist[dist.target == "chars"].sort_values("abs_r").iloc[-1]
    kb, Lb = str(best.kind), int(best.layer)
    sub = pairs[keep] if kb == "context" else pairs
    xb, yb = reps[kb][Lb]
    components = leading_components(
        yb - xb, {"chars": (sub.output_chars - sub.input_chars).to_numpy(),
                  "tokens": (sub.output_tokens - sub.input_tokens).to_numpy()},
        sub["relation"].to_numpy(), n_permutations=cfg.n_permutations, seed=cfg.seed)
    components.attrs.update(kind=kb, layer=Lb)
    x, y = reps["alone"][middle]
    parallel = parallelism(x, y, rel, n_shuffles=cfg.n_shuffles, seed=cfg.seed)
    shapes = shape_table(x, y, rel, n_shuffles=cfg.n_shuffles, seed=cfg.seed)
    lda = {}
    for kind, L in (("alone", -1), ("alone", middle), ("context", middle)):
        x, y = reps[kind][L]
        lda[(kind, L)] = lda_sweep(y - x, rel if kind == "alone" else rel[keep],
                                   n_folds=cfg.n_folds, n_repeats=cfg.n_repeats,
                                   shrinkage=cfg.shrinkage, seed=cfg.seed)
    extra = {"n_vocab": len(vocab), "n_layers": n_layers, "components": components,
             "context_docs": corpus.n_docs}
    common = dict(pairs=pairs, layers=layers, middle=middle, reps=reps, distractor=dist,
                  parallel=parallel, shapes=shapes, lda=lda, config=cfg)
    if not search:
        return Crystals(features=pd.DataFrame(), search={}, search_table={},
                        extra={**extra, "decoder_parallel": pd.DataFrame()}, **common)
    sae = load_sae("organism", middle, scale=scale, model=model)
    codes = word_codes(model, sae, vocab, middle)
    feats = strongest_features(vocab, codes)
    w_dec = sae.W_dec.detach().float().cpu().numpy()
    single = w_dec[feats.feature.to_numpy()]
    # the planted pairs' decoder differences against shuffled pairs: what the search could find
    row = dict(zip(feats.word, range(len(feats))))
    have = pairs[pairs.input.isin(row) & pairs.output.isin(row)]
    have = have[have.groupby("relation").relation.transform("size") >= 3]
    dec_par = parallelism(single[have.input.map(row)], single[have.output.map(row)],
                          have.relation.to_numpy(), n_shuffles=cfg.n_shuffles, seed=cfg.seed) \
        if len(have) else pd.DataFrame()
    decoded = decoded_words(codes, w_dec)
    points = {"decoded": (decoded, vocab), "single": (single, feats.word.tolist()),
              "residual": (alone[middle], vocab)}
    runs = {name: (name, cfg.local) for name in points}
    if cfg.local is not None:  # the same search over every pair of words, for comparison
        runs["decoded, all pairs"] = ("decoded", None)
    found, tables = {}, {}
    for name, (kind, local) in runs.items():
        v, words = points[kind]
        found[name], tables[name] = search_against_control(
            v, words, pairs, ks=cfg.ks, n_controls=cfg.n_controls, min_cosine=cfg.min_cosine,
            min_ratio=cfg.min_ratio, n_neighbours=cfg.n_neighbours, local=local, seed=cfg.seed)
    extra.update(
        n_latents=int(w_dec.shape[0]), decoder_parallel=dec_par, vectors=points,
        decoded_parallel=parallelism(decoded[xi], decoded[yi], rel, n_shuffles=cfg.n_shuffles,
                                     seed=cfg.seed),
        quad_scores=quad_scores(decoded, vocab, pairs, cfg.n_random_quads, cfg.seed),
        latents_per_word=float((codes > 0).sum(1).mean()))
    return Crystals(features=feats, search=found, search_table=tables, extra=extra, **common)
