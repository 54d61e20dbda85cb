"""Word representations averaged over the contexts in which the word occurs in a corpus.

:func:`~llmfeatures.crystals.word_representations` feeds each word alone after ``<|bos|>``, as the
reference does: the model sees the word and nothing else, so the representation holds what the
model can say about the word out of context (a "dictionary entry").  Inside running text the
residual stream at a word also carries its context: what came before and what the model expects
next.  :func:`context_representations` averages the residual stream at the word's last token over
up to ``n_contexts`` occurrences in a corpus; the average keeps what is constant across contexts
(the word's own contribution) and washes out what belongs to each context.

A context that *states* the relation (a sentence naming both the country and its capital) would
leak the partner word into the representation; ``exclude`` drops every document that also
contains one of the words listed for the word (:func:`pair_partners` lists a pair's partners).

Layer convention: layer ``L`` is ``blocks.L.hook_resid_post``; ``-1`` is the embeddings
(``blocks.0.hook_resid_pre``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from llmfeatures.loaders import check_layer, resid_hook


@dataclass
class ContextRepresentations:
    """``reps[L]`` float32 ``[n_words, d_model]`` (NaN rows for words never seen in a kept
    context); ``counts`` ``[n_words]``: the contexts averaged per word; ``words``: the words."""

    reps: dict[int, np.ndarray]
    counts: np.ndarray
    words: list[str]


def pair_partners(pairs: pd.DataFrame) -> dict[str, set[str]]:
    """``{word: {partners}}``: every word of ``pairs`` (``input``/``output`` columns) with the words
    it is paired with in any relation (the words whose presence would state the relation)."""
    partners: dict[str, set[str]] = {}
    for x, y in zip(pairs["input"], pairs["output"]):
        partners.setdefault(x, set()).add(y)
        partners.setdefault(y, set()).add(x)
    return partners


def _occurrences(corpus, tokenizer, word: str) -> np.ndarray:
    """Global positions of the last token of every occurrence of ``" " + word`` in ``corpus``
    (inside one document; when the corpus has ``word`` labels the token must belong to this very
    word, so ``" cat"`` inside ``" cats"`` does not count)."""
    ids = np.asarray(tokenizer(" " + word, add_special_tokens=False)["input_ids"], dtype=np.int64)
    tokens = corpus.tokens
    n = len(ids)
    if n == 0 or len(tokens) < n:
        return np.zeros(0, dtype=np.int64)
    hit = tokens[n - 1:] == ids[-1]
    for k in range(1, n):
        hit &= tokens[n - 1 - k: len(tokens) - k] == ids[-1 - k]
    ends = np.flatnonzero(hit) + n - 1
    doc = np.searchsorted(corpus.offsets, ends, side="right") - 1
    ends = ends[ends - (n - 1) >= corpus.offsets[doc]]  # the whole word inside one document
    names = corpus.label_names.get("word")
    if names is not None and "word" in corpus.token_labels and word in names:
        ends = ends[corpus.token_labels["word"][ends] == names.index(word)]
    return ends


@torch.no_grad()
def context_representations(model, corpus, words: Sequence[str], layers: Sequence[int],
                            n_contexts: int = 16, window: int = 32,
                            exclude: Mapping[str, set[str]] | None = None,
                            batch_size: int = 64, seed: int = 0) -> ContextRepresentations:
    """The residual stream at the last token of each word, averaged over corpus contexts.

    ``corpus``: a :class:`~llmfeatures.features.TokenCorpus` tokenised by ``model.tokenizer``
    (``organism_corpus``).  For every word, up to ``n_contexts`` occurrences (a seeded random
    choice) are fed as the ``window`` tokens ending at the word, after ``<|bos|>``; documents that
    contain one of ``exclude[word]`` are skipped.  Returns ``reps[L]`` ``[n_words, d_model]`` for
    every ``L`` in ``layers`` (``-1``: embeddings) and the number of contexts per word.  Batched;
    runs on the model's device."""
    if len(words) == 0:
        raise ValueError("words is empty; pass at least one word.")
    if n_contexts < 1 or window < 1:
        raise ValueError(f"n_contexts and window must be >= 1; got {n_contexts}, {window}.")
    layers = list(layers)
    for L in layers:
        check_layer(L, model.cfg.n_layers)
    tok = model.tokenizer
    rng = np.random.default_rng(seed)
    exclude = exclude or {}
    doc_of = lambda g: np.searchsorted(corpus.offsets, g, side="right") - 1  # noqa: E731
    # every (word index, context end) to feed
    jobs: list[tuple[int, int]] = []
    needed = set(words) | {p for w in words for p in exclude.get(w, ())}
    ends_cache = {w: _occurrences(corpus, tok, w) for w in needed}
    for i, w in enumerate(words):
        ends = ends_cache[w]
        banned = [ends_cache.get(p) for p in exclude.get(w, ())]
        banned_docs = np.unique(np.concatenate([doc_of(b) for b in banned if b is not None]
                                               or [np.zeros(0, np.int64)]))
        ends = ends[~np.isin(doc_of(ends), banned_docs)]
        if len(ends) > n_contexts:
            ends = np.sort(rng.choice(ends, n_contexts, replace=False))
        jobs += [(i, int(e)) for e in ends]
    d = model.cfg.d_model
    sums = {L: np.zeros((len(words), d), np.float64) for L in layers}
    counts = np.zeros(len(words), np.int64)
    names = {L: resid_hook(L) for L in layers}
    stop = max(layers) + 1 if max(layers) >= 0 else 1
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b: b + batch_size]
        seqs = []
        for _, e in chunk:
            start = max(int(corpus.offsets[doc_of(e)]), e - window + 1)
            seqs.append(bos + corpus.tokens[start: e + 1].tolist())
        width = max(map(len, seqs))
        batch = torch.full((len(seqs), width), pad, dtype=torch.long)
        for j, s in enumerate(seqs):
            batch[j, : len(s)] = torch.tensor(s)
        last = torch.tensor([len(s) - 1 for s in seqs], device=model.cfg.device)
        _, cache = model.run_with_cache(batch.to(model.cfg.device), names_filter=list(names.values()),
                                        stop_at_layer=stop)
        idx = np.array([i for i, _ in chunk])
        for L, name in names.items():
            h = cache[name][torch.arange(len(seqs), device=last.device), last].float().cpu().numpy()
            np.add.at(sums[L], idx, h)
        np.add.at(counts, idx, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = {L: (s / counts[:, None]).astype(np.float32) for L, s in sums.items()}
    return ContextRepresentations(reps=reps, counts=counts, words=list(words))
