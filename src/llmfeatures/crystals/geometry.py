"""Word representations, difference vectors, parallelism and the word-length distractor.

The measurements behind chapter 3 (and the organism's structure figures): a relation pair
``(x, y)`` gives the difference vector ``h(y) - h(x)`` of their representations at one hook.
If the pairs of a relation form a "crystal" (parallelograms), the differences of one relation are
more parallel to each other than the differences of *shuffled* pairs (``h(y') - h(x)`` with ``y'``
the output of another pair of the same relation): that control keeps everything a relation's
words have in common as classes (countries vs capitals) and removes only what a word shares with
its own partner.  The distractor: the first principal component of the differences tracks the
difference in word length (the paper's finding on Gemma-2-2b), tested against a permutation null.

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``; ``-1`` is the embeddings
(``blocks.0.hook_resid_pre``, via :func:`llmfeatures.loaders.resid_hook`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmfeatures.loaders import check_layer, resid_hook


@torch.no_grad()
def word_representations(model, words: Sequence[str], layers: Sequence[int],
                         batch_size: int = 128, leading_space: bool = True
                         ) -> dict[int, np.ndarray]:
    """The residual stream at the last token of each word fed alone (after ``<|bos|>``).

    ``words``: ``n`` strings; with ``leading_space`` each is fed as ``" " + word``, the form a word
    takes inside running text (for the organism's byte-level tokenizer, usually one token).
    Returns ``{L: float32 [n, d_model]}`` for every ``L`` in ``layers`` (``blocks.L.hook_resid_post``;
    ``-1``: ``blocks.0.hook_resid_pre``).  Batched, right-padded; runs on the model's device.
    """
    if len(words) == 0:
        raise ValueError("words is empty; pass at least one word.")
    layers = list(layers)
    for L in layers:
        check_layer(L, model.cfg.n_layers)
    tok = model.tokenizer
    ids = [tok((" " if leading_space else "") + w)["input_ids"] for w in words]
    if tok.bos_token_id is not None and any(seq[:1] != [tok.bos_token_id] for seq in ids):
        ids = [seq if seq[:1] == [tok.bos_token_id] else [tok.bos_token_id, *seq] for seq in ids]
    names = {L: resid_hook(L) for L in layers}
    stop = max(layers) + 1 if max(layers) >= 0 else 1
    out: dict[int, list[np.ndarray]] = {L: [] for L in layers}
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = model.cfg.device
    for i in range(0, len(ids), batch_size):
        chunk = ids[i : i + batch_size]
        width = max(map(len, chunk))
        batch = torch.full((len(chunk), width), pad, dtype=torch.long)
        for j, seq in enumerate(chunk):
            batch[j, : len(seq)] = torch.tensor(seq)
        last = torch.tensor([len(seq) - 1 for seq in chunk])
        _, cache = model.run_with_cache(batch.to(device), names_filter=list(names.values()),
                                        stop_at_layer=stop)
        for L, name in names.items():
            h = cache[name][torch.arange(len(chunk)), last.to(device)]
            out[L].append(h.float().cpu().numpy())
    return {L: np.concatenate(v) for L, v in out.items()}


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over all pairs ``i < j`` of the rows of ``vectors`` ``[n, d]`` (``n >= 2``)."""
    v = _unit(np.asarray(vectors, dtype=np.float64))
    n = len(v)
    if n < 2:
        raise ValueError(f"need at least 2 vectors for a pairwise cosine, got {n}.")
    g = v @ v.T
    return float((g.sum() - np.trace(g)) / (n * (n - 1)))


def parallelism(inputs: np.ndarray, outputs: np.ndarray, relations: Sequence[str],
                n_shuffles: int = 50, seed: int = 0) -> pd.DataFrame:
    """How parallel the difference vectors of each relation are, against shuffled pairs.

    ``inputs``/``outputs`` ``[n_pairs, d]``: representations of each pair's input and output
    word; ``relations`` ``[n_pairs]``: each pair's relation.  Per relation: ``within``, the mean
    pairwise cosine of ``outputs - inputs``; ``shuffled``, the same for ``outputs[perm] - inputs``
    with the outputs permuted within the relation (mean over ``n_shuffles`` permutations, and its
    standard deviation ``shuffled_sd``); ``gap = within - shuffled``; ``across``, the mean cosine
    between this relation's differences and the other relations' (the parallelogram test's third
    term).  One row per relation, in order of first appearance.
    """
    x, y = np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)
    rel = np.asarray(relations)
    if x.shape != y.shape or x.ndim != 2 or len(rel) != len(x):
        raise ValueError(f"inputs and outputs must both be [n_pairs, d] with one relation per "
                         f"pair; got {x.shape}, {y.shape} and {len(rel)} relations.")
    if n_shuffles < 1:
        raise ValueError(f"n_shuffles must be >= 1, got {n_shuffles}.")
    rng = np.random.default_rng(seed)
    diffs = _unit(y - x)
    rows = []
    for name in pd.unique(rel):
        m = rel == name
        if m.sum() < 3:
            raise ValueError(f"relation {name!r} has {m.sum()} pairs; parallelism needs >= 3.")
        xi, yi = x[m], y[m]
        within = mean_pairwise_cosine(yi - xi)
        shuffled = []
        for _ in range(n_shuffles):
            perm = rng.permutation(len(yi))
            while np.array_equal(perm, np.arange(len(yi))):
                perm = rng.permutation(len(yi))
            shuffled.append(mean_pairwise_cosine(yi[perm] - xi))
        across = float((diffs[m] @ diffs[~m].T).mean()) if (~m).any() else float("nan")
        rows.append({"relation": name, "n_pairs": int(m.sum()), "within": within,
                     "shuffled": float(np.mean(shuffled)), "shuffled_sd": float(np.std(shuffled)),
                     "gap": within - float(np.mean(shuffled)), "across": across})
    return pd.DataFrame(rows)


@dataclass
class DistractorTest:
    """Correlation of the differences' first principal component with a planted quantity.

    ``r``: Pearson correlation of the PC1 scores with ``target``; ``null_q95``: the 95th
    percentile of ``|r|`` when ``target`` is permuted (within relations when they were given);
    ``p``: share of permutations with ``|r|`` at least the observed one (add-one estimate);
    ``explained``: PC1's share of the variance."""

    r: float
    null_mean: float
    null_q95: float
    p: float
    explained: float
    n: int


def first_component(diffs: np.ndarray, relations: Sequence[str] | None = None,
                    standardize: bool = True) -> tuple[np.ndarray, float]:
    """PC1 scores ``[n]`` of ``diffs`` ``[n, d]`` and its explained-variance share.

    With ``relations`` every relation's mean difference is removed first, so PC1 is the largest
    direction of variation *within* relations (what LDA must discount), not the split between
    relations.  ``standardize``: scale every coordinate to unit variance (scikit-learn's
    ``StandardScaler``), as the reference does before its PCA.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    d = np.asarray(diffs, dtype=np.float64)
    if d.ndim != 2 or len(d) < 3:
        raise ValueError(f"diffs must be [n >= 3, d]; got {d.shape}.")
    if relations is not None:
        rel = np.asarray(relations)
        if len(rel) != len(d):
            raise ValueError(f"{len(rel)} relations for {len(d)} differences.")
        d = d.copy()
        for name in np.unique(rel):
            d[rel == name] -= d[rel == name].mean(0)
    if standardize:
        d = StandardScaler().fit_transform(d)
    pca = PCA(n_components=1, svd_solver="full").fit(d)
    return pca.transform(d)[:, 0], float(pca.explained_variance_ratio_[0])


def length_distractor(diffs: np.ndarray, target: Sequence[float],
                      relations: Sequence[str] | None = None, n_permutations: int = 500,
                      seed: int = 0, standardize: bool = True) -> DistractorTest:
    """Does PC1 of ``diffs`` ``[n, d]`` track ``target`` ``[n]`` (e.g. the difference in word
    length, output minus input)?  See :func:`first_component` for ``relations`` and
    ``standardize``; the null permutes ``target`` (within each relation when given)."""
    t = np.asarray(target, dtype=np.float64)
    scores, explained = first_component(diffs, relations, standardize)
    if len(t) != len(scores):
        raise ValueError(f"{len(t)} targets for {len(scores)} differences.")
    if np.std(t) == 0:
        raise ValueError("target is constant; its correlation with anything is undefined.")
    r = float(np.corrcoef(scores, t)[0, 1])
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(np.asarray(relations) == g) for g in np.unique(relations)] \
        if relations is not None else [np.arange(len(t))]
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        tp = t.copy()
        for g in groups:
            tp[g] = t[rng.permutation(g)]
        null[i] = abs(np.corrcoef(scores, tp)[0, 1]) if np.std(tp) > 0 else 0.0
    return DistractorTest(r=r, null_mean=float(null.mean()), null_q95=float(np.quantile(null, 0.95)),
                          p=float((1 + (null >= abs(r)).sum()) / (1 + n_permutations)),
                          explained=explained, n=len(t))


def pair_representations(model, pairs: pd.DataFrame, layers: Sequence[int]
                         ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Representations of every pair's input and output word (the word alone, see
    :func:`word_representations`): ``{L: (inputs [n_pairs, d], outputs [n_pairs, d])}``.
    ``pairs``: a frame with ``input`` and ``output`` columns (``World.relation_pairs()``)."""
    for col in ("input", "output"):
        if col not in pairs:
            raise ValueError(f"pairs needs an {col!r} column (World.relation_pairs() has it).")
    vocab = sorted(set(pairs["input"]) | set(pairs["output"]))
    index = {w: i for i, w in enumerate(vocab)}
    reps = word_representations(model, vocab, layers)
    xi = np.array([index[w] for w in pairs["input"]])
    yi = np.array([index[w] for w in pairs["output"]])
    return {L: (h[xi], h[yi]) for L, h in reps.items()}
