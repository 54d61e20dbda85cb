"""The crystal search: parallelograms among SAE decoder vectors, found without relation labels.

1. **Points.** Each word fed alone is encoded by the SAE (:func:`word_codes`; only words are used
   here, never the relations).  Two kinds of points are searched:

   - a word's **decoded code** (:func:`decoded_words`): the decoder vectors of its active latents
     weighted by their activations, i.e. where the SAE's features put the word;
   - a word's **single feature**, as the paper describes its search: a latent represents the word
     it fires on most, each word keeps its most active latent of that kind
     (:func:`strongest_features`), and the point is that latent's decoder vector.

2. **Differences** ``v[j] - v[i]`` in both orientations, of every pair of points (``F (F - 1)``
   vectors for ``F`` points) or, with ``local=k``, only of points that are each among the other's
   ``k`` nearest neighbours (:func:`local_edges`).  A crystal's pairs (France, Paris) often sit
   closer to each other than to other words; among all ``F**4`` quadrilaterals chance
   parallelograms are so many that faint crystals drown, while the few short sides keep them.
3. **Clustering**: k-means on the unit differences groups differences pointing the same way; only
   differences in one cluster are compared.
4. **Candidates**: inside its cluster each difference is paired with its ``n_neighbours`` nearest
   differences (Euclidean: parallel *and* equally long) with four distinct vertices whose cosine
   is at least ``min_cosine`` and length ratio at least ``min_ratio``.  A parallelogram has two
   pairs of parallel, equal sides (``a -> b`` with ``c -> d``, and ``a -> c`` with ``b -> d``), so
   the score is the smaller of ``cosine * length_ratio`` over the two pairs of sides: this rejects
   two near-duplicate points joined by long, trivially parallel sides.  Each quadrilateral is
   kept once (by its vertex set).

Scoring (:func:`score_search`): a candidate is *correct* when its four words are the words of
two planted pairs of one relation.  Precision among the ``k`` best candidates, and recall of the
planted quadrilaterals among the searched words.  The control (:func:`shuffled_decoder`) gives
the same vectors to randomly reassigned words: the geometry is intact, only the link between a
vector and its word is broken, so its precision is what chance gives.  :func:`quad_scores` shows
what the search is up against: the scores of the planted quadrilaterals beside those of random
ones; a search ranked by shape can put a planted crystal first only where it beats the best of
the chance parallelograms that many points make.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import torch


@torch.no_grad()
def word_codes(model, sae, words: Sequence[str], layer: int, batch_size: int = 128) -> np.ndarray:
    """The SAE's code of every word fed alone: ``float32 [n_words, d_sae]``, the activations of
    ``sae`` (trained on ``blocks.layer.hook_resid_post``) on the word's last token
    (:func:`~llmfeatures.crystals.word_representations`).  Batched; runs on the SAE's device."""
    from llmfeatures.crystals.geometry import word_representations

    h = word_representations(model, list(words), [layer], batch_size=batch_size)[layer]
    out = []
    for i in range(0, len(h), batch_size):
        x = torch.as_tensor(h[i: i + batch_size], dtype=sae.W_dec.dtype, device=sae.W_dec.device)
        out.append(sae.encode(x).float().cpu().numpy())
    return np.concatenate(out)


def word_features(model, sae, words: Sequence[str], layer: int, batch_size: int = 128
                  ) -> pd.DataFrame:
    """The strongest latent of ``sae`` (on ``blocks.layer.hook_resid_post``) for every word fed
    alone, chosen by :func:`strongest_features` from :func:`word_codes`: one row per word kept
    (word, feature, activation)."""
    return strongest_features(words, word_codes(model, sae, words, layer, batch_size))


def decoded_words(codes: np.ndarray, w_dec: np.ndarray) -> np.ndarray:
    """Each word as its SAE features place it: ``codes`` ``[n_words, d_sae]`` (:func:`word_codes`)
    times the decoder ``w_dec`` ``[d_sae, d_model]``, i.e. the sum of the decoder vectors of the
    word's active latents weighted by their activations (the SAE's reconstruction without its
    bias ``b_dec``, which cancels in every difference).  Returns ``float32 [n_words, d_model]``."""
    codes, w_dec = np.asarray(codes, np.float32), np.asarray(w_dec, np.float32)
    if codes.ndim != 2 or w_dec.ndim != 2 or codes.shape[1] != w_dec.shape[0]:
        raise ValueError(f"codes must be [n_words, d_sae] and w_dec [d_sae, d_model]; got "
                         f"{codes.shape} and {w_dec.shape}.")
    return codes @ w_dec


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


def local_edges(vectors: np.ndarray, k: int = 1) -> np.ndarray:
    """The short sides a crystal search can start from: pairs ``(i, j)``, ``i < j``, of rows of
    ``vectors`` ``[F, d]`` that are each among the other's ``k`` nearest neighbours by cosine
    (scikit-learn's ``NearestNeighbors``).  Returns ``int64 [E, 2]``."""
    from sklearn.neighbors import NearestNeighbors

    v = np.asarray(vectors, dtype=np.float32)
    if not 1 <= k < len(v):
        raise ValueError(f"k must be in 1..{len(v) - 1} for {len(v)} vectors; got {k}.")
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(v)
    near = nn.kneighbors(v, return_distance=False)
    sets = [set(row[row != r].tolist()[:k]) for r, row in enumerate(near)]
    edges = sorted({(min(a, b), max(a, b)) for a in range(len(v)) for b in sets[a] if a in sets[b]})
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def crystal_search(vectors: np.ndarray, words: Sequence[str], n_clusters: int | None = None,
                   min_cosine: float = 0.5, min_ratio: float = 0.5, n_neighbours: int = 5,
                   local: int | None = None, seed: int = 0) -> CrystalSearch:
    """Candidate parallelograms among ``vectors`` ``[F, d]`` (one per word in ``words``), see the
    module docstring.  ``local``: form only the differences of mutual ``local``-nearest
    neighbours (:func:`local_edges`; both orientations), the short sides of a crystal whose pairs
    sit closer to each other than to other words; ``None``: every ordered pair.  ``n_clusters``:
    k-means clusters of the unit differences (default ``round(sqrt(M))`` for ``M`` differences);
    ``n_neighbours``: inside its cluster each difference is compared with the differences
    nearest to it (Euclidean distance: parallel *and* equally long), at most this many, so the
    search keeps at most ``M n_neighbours`` candidates however dense the clusters are."""
    from sklearn.cluster import MiniBatchKMeans

    v = np.asarray(vectors, dtype=np.float32)
    words = np.asarray(list(words))
    if v.ndim != 2 or len(v) != len(words) or len(v) < 4:
        raise ValueError(f"vectors must be [F >= 4, d] with one word per row; got {v.shape} and "
                         f"{len(words)} words.")
    if n_neighbours < 1:
        raise ValueError(f"n_neighbours must be >= 1, got {n_neighbours}.")
    if local is None:
        i, j = np.nonzero(~np.eye(len(v), dtype=bool))
    else:
        e = local_edges(v, local)
        i, j = np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]]
        if len(i) < 4:
            return CrystalSearch(pd.DataFrame(columns=[
                "a", "b", "c", "d", "cosine", "length_ratio", "cosine_2", "length_ratio_2",
                "score"]), len(i), 0)
    diffs = v[j] - v[i]
    norms = np.linalg.norm(diffs, axis=1)
    unit = diffs / np.maximum(norms, 1e-12)[:, None]
    k = min(n_clusters or max(2, int(round(np.sqrt(len(diffs))))), len(diffs))
    labels = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3,
                             batch_size=4096).fit_predict(unit)
    quads = []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        for lo in range(0, len(idx), 2048):  # bounded memory in a large cluster
            rows = idx[lo: lo + 2048]
            cos = unit[rows] @ unit[idx].T
            ratio = np.minimum.outer(norms[rows], norms[idx]) / np.maximum(
                np.maximum.outer(norms[rows], norms[idx]), 1e-12)
            # |u - w|^2 for the sides u = diffs[rows], w = diffs[idx]
            dist = norms[rows, None] ** 2 + norms[idx] ** 2 - 2 * cos * np.outer(norms[rows], norms[idx])
            ok = (cos >= min_cosine) & (ratio >= min_ratio) \
                & (i[rows, None] != i[idx]) & (i[rows, None] != j[idx]) \
                & (j[rows, None] != i[idx]) & (j[rows, None] != j[idx])
            dist = np.where(ok, dist, np.inf)
            m = min(n_neighbours, dist.shape[1])
            near = np.argpartition(dist, m - 1, axis=1)[:, :m]
            p = np.repeat(np.arange(len(rows)), m)
            q = near.ravel()
            keep = np.isfinite(dist[p, q])
            p, q = rows[p[keep]], idx[q[keep]]
            quads.append(np.column_stack([i[p], j[p], i[q], j[q]]))
    quads = np.concatenate(quads) if quads else np.zeros((0, 4), np.int64)
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


def planted_quads(pairs: pd.DataFrame, words: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """Every two pairs ``(a, b)``, ``(c, d)`` of one relation (``pairs``: relation, input, output
    columns) whose four words are distinct and all in ``words``, as ordered ``(a, b, c, d)``:
    ``a -> b`` and ``c -> d`` are the relation's sides, ``a -> c`` and ``b -> d`` the others."""
    have = set(words)
    quads = []
    for _, g in pairs.groupby("relation"):
        ok = [(x, y) for x, y in zip(g["input"], g["output"]) if x in have and y in have and x != y]
        for (a, b), (c, d) in combinations(ok, 2):
            if len({a, b, c, d}) == 4:
                quads.append((a, b, c, d))
    return quads


def planted_quadrilaterals(pairs: pd.DataFrame, words: Sequence[str]) -> set[frozenset]:
    """Vertex sets of :func:`planted_quads`: every two pairs of one relation whose four words are
    distinct and all in ``words``."""
    return {frozenset(q) for q in planted_quads(pairs, words)}


def quad_scores(vectors: np.ndarray, words: Sequence[str], pairs: pd.DataFrame,
                n_random: int = 100_000, seed: int = 0) -> pd.DataFrame:
    """What the search is up against: the parallelogram score (as :func:`crystal_search`) of every
    planted quadrilateral (:func:`planted_quads`) among ``vectors`` ``[F, d]`` and of ``n_random``
    random quadrilaterals (four distinct words in a random order).  One row per quadrilateral:
    kind (``"planted"``/``"random"``), score, relation_side (``cosine * length_ratio`` of
    ``a -> b`` with ``c -> d``) and other_side (``a -> c`` with ``b -> d``)."""
    v = np.asarray(vectors, np.float32)
    index = {w: i for i, w in enumerate(words)}
    planted = np.array([[index[w] for w in q] for q in planted_quads(pairs, words)],
                       dtype=np.int64).reshape(-1, 4)
    rng = np.random.default_rng(seed)
    if len(v) < 4:
        raise ValueError(f"need >= 4 vectors for a quadrilateral; got {len(v)}.")
    rand = rng.integers(0, len(v), size=(2 * n_random + 100, 4))
    s = np.sort(rand, axis=1)
    rand = rand[(np.diff(s, axis=1) > 0).all(1)][:n_random]  # four distinct words
    frames = []
    for kind, q in (("planted", planted), ("random", rand)):
        c1, r1 = _side_pair(v, *q.T)
        c2, r2 = _side_pair(v, q[:, 0], q[:, 2], q[:, 1], q[:, 3])
        frames.append(pd.DataFrame({"kind": kind, "score": np.minimum(c1 * r1, c2 * r2),
                                    "relation_side": c1 * r1, "other_side": c2 * r2}))
    return pd.concat(frames, ignore_index=True)


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
