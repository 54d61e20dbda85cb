"""The crystal search: parallelograms among SAE decoder vectors, found without relation labels.

1. **Word features** (:func:`word_features`): each word fed alone is encoded by the SAE; a latent
   represents the word it fires on most, and each word keeps its most active latent of that kind
   (:func:`strongest_features`).  Only words are used here, never the relations.
2. **Differences** of every ordered pair of word features' decoder vectors ``W_dec[j] - W_dec[i]``
   (both orientations, so ``F (F - 1)`` vectors for ``F`` features).
3. **Clustering**: k-means on the unit differences groups differences pointing the same way; only
   differences in one cluster are compared, so the search costs about ``F**4 / n_clusters``
   comparisons, not ``F**4``.
4. **Candidates**: two differences of one cluster with four distinct vertices whose cosine is at
   least ``min_cosine`` and length ratio at least ``min_ratio``.  A parallelogram has two pairs
   of parallel, equal sides (``a -> b`` with ``c -> d``, and ``a -> c`` with ``b -> d``), so the
   score is the smaller of ``cosine * length_ratio`` over the two pairs of sides: this rejects
   two near-duplicate points joined by long, trivially parallel sides.  Each quadrilateral is
   kept once (by its vertex set).

Scoring (:func:`score_search`): a candidate is *correct* when its four words are the words of
two planted pairs of one relation.  Precision among the ``k`` best candidates, and recall of the
planted quadrilaterals among the word features.  The control (:func:`shuffled_decoder`) gives
the same decoder vectors to randomly reassigned word features: the geometry is intact, only the
link between a vector and its word is broken, so its precision is what chance gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import torch


@torch.no_grad()
def word_features(model, sae, words: Sequence[str], layer: int, batch_size: int = 128
                  ) -> pd.DataFrame:
    """The strongest latent of ``sae`` (on ``blocks.layer.hook_resid_post``) for every word fed
    alone (:func:`~llmfeatures.crystals.word_representations`), chosen by
    :func:`strongest_features`: one row per word kept (word, feature, activation)."""
    from llmfeatures.crystals.geometry import word_representations

    h = word_representations(model, list(words), [layer], batch_size=batch_size)[layer]
    acts = sae.encode(torch.as_tensor(h, dtype=sae.W_dec.dtype, device=sae.W_dec.device))
    return strongest_features(words, acts.float().cpu().numpy())


def strongest_features(words: Sequence[str], acts: np.ndarray, max_features: int | None = None
                       ) -> pd.DataFrame:
    """The features that represent words, from ``acts`` ``[n_words, U]`` (each word's SAE
    activations): a latent represents the word it fires on most among ``words``; each word keeps
    the latent of that kind that it activates most.  Returns word, feature, activation (one row
    per word kept, words with no such latent dropped); ``max_features``: keep the most strongly
    activated ones."""
    acts = np.asarray(acts)
    top_word = acts.argmax(0)
    latents = np.flatnonzero(acts.max(0) > 0)
    table = pd.DataFrame({"word": np.asarray(list(words))[top_word[latents]], "feature": latents,
                          "activation": acts[top_word[latents], latents]})
    table = table.sort_values("activation", ascending=False).drop_duplicates("word")
    return table.head(max_features).sort_values("word").reset_index(drop=True)


def shuffled_decoder(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """The control: the rows of ``vectors`` ``[F, d]`` in a random order, so every word feature
    gets another word feature's decoder vector."""
    rng = np.random.default_rng(seed)
    return np.asarray(vectors)[rng.permutation(len(vectors))]


@dataclass
class CrystalSearch:
    """``candidates``: one row per quadrilateral (a, b, c, d: words, the sides ``a -> b`` and
    ``c -> d`` with their cosine and length_ratio, the sides ``a -> c`` and ``b -> d`` with
    cosine_2 and length_ratio_2; score), best first; ``n_differences`` and ``n_clusters``."""

    candidates: pd.DataFrame
    n_differences: int
    n_clusters: int


def crystal_search(vectors: np.ndarray, words: Sequence[str], n_clusters: int | None = None,
                   min_cosine: float = 0.5, min_ratio: float = 0.5, seed: int = 0
                   ) -> CrystalSearch:
    """Candidate parallelograms among ``vectors`` ``[F, d]`` (one per word in ``words``), see the
    module docstring.  ``n_clusters``: k-means clusters of the unit differences (default
    ``round(sqrt(F (F - 1)))``)."""
    from sklearn.cluster import MiniBatchKMeans

    v = np.asarray(vectors, dtype=np.float32)
    words = np.asarray(list(words))
    if v.ndim != 2 or len(v) != len(words) or len(v) < 4:
        raise ValueError(f"vectors must be [F >= 4, d] with one word per row; got {v.shape} and "
                         f"{len(words)} words.")
    i, j = np.nonzero(~np.eye(len(v), dtype=bool))
    diffs = v[j] - v[i]
    norms = np.linalg.norm(diffs, axis=1)
    unit = diffs / np.maximum(norms, 1e-12)[:, None]
    k = n_clusters or max(2, int(round(np.sqrt(len(diffs)))))
    labels = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                             batch_size=4096).fit_predict(unit)
    quads = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        cos = unit[idx] @ unit[idx].T
        ratio = np.minimum.outer(norms[idx], norms[idx]) / np.maximum.outer(norms[idx], norms[idx])
        p, q = np.nonzero(np.triu((cos >= min_cosine) & (ratio >= min_ratio), 1))
        quads.append(np.column_stack([i[idx[p]], j[idx[p]], i[idx[q]], j[idx[q]]]))
    quads = np.concatenate(quads) if quads else np.zeros((0, 4), np.int64)
    a, b, c, d = quads.T
    quads = quads[(a != c) & (a != d) & (b != c) & (b != d)]
    cos1, ratio1 = _side_pair(v, *quads.T)
    # the other two sides (a -> c, b -> d) must be parallel and equal too: a true parallelogram,
    # not two near-duplicate points (a ~ c, b ~ d) joined by long, trivially parallel sides
    a, b, c, d = quads.T
    cos2, ratio2 = _side_pair(v, a, c, b, d)
    score = np.minimum(cos1 * ratio1, cos2 * ratio2)
    cand = pd.DataFrame({"a": words[a], "b": words[b], "c": words[c], "d": words[d],
                         "cosine": cos1, "length_ratio": ratio1, "cosine_2": cos2,
                         "length_ratio_2": ratio2, "score": score})
    cand["vertices"] = [frozenset(r) for r in quads.tolist()]
    cand = cand.sort_values("score", ascending=False, kind="stable").drop_duplicates("vertices")
    cand = cand.drop(columns="vertices").reset_index(drop=True)
    return CrystalSearch(cand, len(diffs), k)


def _side_pair(v: np.ndarray, a, b, c, d) -> tuple[np.ndarray, np.ndarray]:
    """Cosine and length ratio of ``v[b] - v[a]`` and ``v[d] - v[c]`` (index arrays)."""
    u, w = v[b] - v[a], v[d] - v[c]
    nu, nw = np.linalg.norm(u, axis=1), np.linalg.norm(w, axis=1)
    cos = (u * w).sum(1) / np.maximum(nu * nw, 1e-12)
    return cos, np.minimum(nu, nw) / np.maximum(np.maximum(nu, nw), 1e-12)


def planted_quadrilaterals(pairs: pd.DataFrame, words: Sequence[str]) -> set[frozenset]:
    """Vertex sets of every two pairs of one relation (``pairs``: relation, input, output columns)
    whose four words are distinct and all in ``words``."""
    have = set(words)
    quads: set[frozenset] = set()
    for _, g in pairs.groupby("relation"):
        ok = [(x, y) for x, y in zip(g["input"], g["output"]) if x in have and y in have and x != y]
        for (a, b), (c, d) in combinations(ok, 2):
            q = frozenset((a, b, c, d))
            if len(q) == 4:
                quads.add(q)
    return quads


def score_search(candidates: pd.DataFrame, planted: set[frozenset],
                 ks: Sequence[int] = (10, 50, 200)) -> pd.DataFrame:
    """Precision and recall of the ``k`` best candidates (rows ``"top k"``, and ``"all"`` for every
    candidate) against the ``planted`` vertex sets."""
    hit = np.array([frozenset(r) in planted for r in
                    candidates[["a", "b", "c", "d"]].itertuples(index=False)], dtype=bool)
    rows = []
    for name, k in [*((f"top {k}", k) for k in ks), ("all", len(hit))]:
        h = hit[:k]
        rows.append({"k": name, "n": int(len(h)), "correct": int(h.sum()),
                     "precision": float(h.mean()) if len(h) else float("nan"),
                     "recall": float(h.sum() / len(planted)) if planted else float("nan")})
    return pd.DataFrame(rows).set_index("k")


def search_against_control(vectors: np.ndarray, words: Sequence[str], pairs: pd.DataFrame,
                           ks: Sequence[int] = (10, 50, 200), n_controls: int = 3,
                           **search_kw) -> tuple[CrystalSearch, pd.DataFrame]:
    """The search on ``vectors`` and on ``n_controls`` shuffled decoders, scored against the
    planted pairs.  Returns the real search and a table (rows ``k``) of ``precision``,
    ``recall``, ``correct``, ``n`` with ``control_precision`` / ``control_recall`` (means over
    the controls)."""
    planted = planted_quadrilaterals(pairs, words)
    real = crystal_search(vectors, words, **search_kw)
    table = score_search(real.candidates, planted, ks)
    ctrl = [score_search(crystal_search(shuffled_decoder(vectors, s + 1), words, **search_kw)
                         .candidates, planted, ks) for s in range(n_controls)]
    for name in ("precision", "recall", "n"):
        table[f"control_{name}"] = np.nanmean([c[name].to_numpy(float) for c in ctrl], 0)
    table.attrs["n_planted"] = len(planted)
    return real, table
