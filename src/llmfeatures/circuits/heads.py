"""Attention heads as feature detectors, scored against a planted expectation and a control.

An :class:`AttentionProbe` says, for each prompt, which query positions should attend to which key
positions if a head detects the feature: the previous token, the token after the last occurrence
of the current one (induction), the query word of a few-shot prompt, the name a pronoun refers
to.  :func:`head_scores` runs the prompts once, reads every head's pattern
(``blocks.L.attn.hook_pattern``, ``[batch, head, query_pos, key_pos]``) and returns per head the
mean attention that the expected keys receive.

The *control* is the same score with each query's expected keys replaced by as many key positions
drawn at random from the other positions it can see (never the BOS token, which many heads use as
a resting place).  A detector scores far above its control; a head that attends everywhere alike
scores about the same on both.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer
from transformer_lens.utilities import get_act_name

from llmfeatures.circuits.tasks import _tokenizer, length_groups

Query = tuple[int, tuple[int, ...]]


@dataclass
class AttentionProbe:
    """Token ids (BOS first) and, per prompt, ``(query_pos, expected key positions)`` pairs."""

    name: str
    tokens: list[list[int]]
    queries: list[list[Query]]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.queries):
            raise ValueError(f"probe {self.name!r}: {len(self.tokens)} prompts but "
                             f"{len(self.queries)} query lists")
        if not any(self.queries):
            raise ValueError(f"probe {self.name!r} has no queries")
        for i, (toks, qs) in enumerate(zip(self.tokens, self.queries, strict=True)):
            for q, keys in qs:
                if not 0 <= q < len(toks):
                    raise ValueError(f"probe {self.name!r}, prompt {i}: query {q} is outside "
                                     f"its {len(toks)} tokens")
                if not keys or any(not 0 <= k <= q for k in keys):
                    raise ValueError(f"probe {self.name!r}, prompt {i}: the keys {keys} of query "
                                     f"{q} must be non-empty and at or before it (causal)")


@dataclass
class HeadScores:
    """``score`` and ``control``: ``[n_layers, n_heads]`` mean attention to the expected keys and
    to random keys.  :meth:`table` lists the heads best first."""

    name: str
    score: np.ndarray
    control: np.ndarray

    @property
    def excess(self) -> np.ndarray:
        """Score minus control, ``[n_layers, n_heads]``."""
        return self.score - self.control

    def table(self) -> pd.DataFrame:
        """One row per head (``head`` is ``"L{layer}H{head}"``), sorted by score minus control."""
        n_layers, n_heads = self.score.shape
        rows = [(f"L{layer}H{h}", layer, h, float(self.score[layer, h]),
                 float(self.control[layer, h]))
                for layer in range(n_layers) for h in range(n_heads)]
        df = pd.DataFrame(rows, columns=["head", "layer", "head_index", "score", "control"])
        df["excess"] = df["score"] - df["control"]
        return df.sort_values("excess", ascending=False, ignore_index=True)

    def best(self) -> tuple[int, int]:
        """``(layer, head)`` with the largest score minus control."""
        layer, head = np.unravel_index(int(np.argmax(self.excess)), self.excess.shape)
        return int(layer), int(head)


def _control_keys(rng: random.Random, q: int, keys: tuple[int, ...]) -> tuple[int, ...] | None:
    pool = [k for k in range(1, q + 1) if k not in keys]
    if len(pool) < len(keys):
        return None
    return tuple(rng.sample(pool, len(keys)))


@torch.no_grad()
def head_scores(model: HookedTransformer, probe: AttentionProbe, batch_size: int = 64,
                seed: int = 0) -> HeadScores:
    """Mean attention each head pays to the probe's expected keys, and to random keys.

    For each (prompt, query) the attention weights on its expected keys are summed; the score is
    the mean of these sums over all queries of all prompts (1 = all attention on the expected
    keys).  Returns :class:`HeadScores` with ``[n_layers, n_heads]`` arrays.
    """
    if not isinstance(probe, AttentionProbe):
        raise TypeError(f"expected an AttentionProbe, got {type(probe).__name__}")
    rng = random.Random(seed)
    controls = [[(q, _control_keys(rng, q, keys)) for q, keys in qs] for qs in probe.queries]
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    total = torch.zeros(2, n_layers, n_heads)
    counts = torch.zeros(2)
    names = [get_act_name("pattern", layer) for layer in range(n_layers)]
    idx_with_q = [i for i, qs in enumerate(probe.queries) if qs]
    for idx, toks in length_groups(probe.tokens, batch_size, indices=idx_with_q):
        pos = toks.shape[1]
        masks = torch.zeros(2, len(idx), pos, pos)
        for b, i in enumerate(idx):
            for which, qs in enumerate((probe.queries[i], controls[i])):
                for q, keys in qs:
                    if keys is None:
                        continue
                    masks[which, b, q, list(keys)] = 1.0
                    counts[which] += 1
        _, cache = model.run_with_cache(toks.to(model.cfg.device), names_filter=names.__contains__)
        patterns = torch.stack([cache[n].float().cpu() for n in names])  # [layer, b, head, q, k]
        total += torch.einsum("lbhqk,wbqk->wlh", patterns, masks)
    if counts.min() == 0:
        raise ValueError(f"probe {probe.name!r}: no query has room for a random control key")
    avg = (total / counts[:, None, None]).numpy()
    return HeadScores(probe.name, avg[0], avg[1])


def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each position ``q >= 1`` to ``q - 1``, per head.

    ``pattern``: ``[batch, head, query_pos, key_pos]`` (one layer's ``hook_pattern``); returns
    ``[head]``.  The one-line version of :func:`head_scores` with :func:`previous_token_probe`
    (which also leaves out position 1, whose previous token is BOS).
    """
    if pattern.ndim != 4 or pattern.shape[-1] != pattern.shape[-2] or pattern.shape[-1] < 2:
        raise ValueError(f"pattern must be [batch, head, pos, pos] with pos >= 2, got "
                         f"{tuple(pattern.shape)}")
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean((0, 2))


# -------------------------------------------------------------------------------------------
# probes
# -------------------------------------------------------------------------------------------
def _check_count(n: int, what: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive int, got {n!r}")


def previous_token_probe(model: HookedTransformer, texts: Sequence[str],
                         max_tokens: int = 48) -> AttentionProbe:
    """Every position from the third token on should attend to the token before it.

    ``texts`` are cut to ``max_tokens`` tokens after BOS (one length for documents that long).
    """
    _check_count(max_tokens, "max_tokens")
    tok = _tokenizer(model)
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]
    tokens = [[tok.bos_token_id, *s[:max_tokens]] for s in ids if len(s) >= 3]
    if not tokens:
        raise ValueError("previous_token_probe needs texts of at least three tokens")
    queries = [[(q, (q - 1,)) for q in range(2, len(t))] for t in tokens]
    return AttentionProbe("previous token", tokens, queries)


def induction_probe(model: HookedTransformer, n_seqs: int = 32, half: int = 20,
                    seed: int = 0) -> AttentionProbe:
    """Random tokens repeated twice, ``<bos> r_1..r_n r_1..r_n``: at ``r_i`` of the second copy an
    induction head attends to ``r_{i+1}`` of the first, the token that came next last time.

    Tokens are drawn without repetition from the vocabulary, special tokens excluded.
    """
    _check_count(n_seqs, "n_seqs")
    _check_count(half, "half")
    tok = _tokenizer(model)
    special = set(tok.all_special_ids)
    pool = [i for i in range(min(model.cfg.d_vocab, len(tok))) if i not in special]
    if len(pool) < half or 2 * half + 1 > model.cfg.n_ctx:
        raise ValueError(f"half={half} needs {half} ordinary tokens and a context of "
                         f"{2 * half + 1}; the model has {len(pool)} and {model.cfg.n_ctx}")
    rng = random.Random(seed)
    tokens, queries = [], []
    for _ in range(n_seqs):
        r = rng.sample(pool, half)
        tokens.append([tok.bos_token_id, *r, *r])
        queries.append([(1 + half + i, (2 + i,)) for i in range(half)])
    return AttentionProbe("induction (repeated tokens)", tokens, queries)


def span_probe(model: HookedTransformer, name: str, prompts: Sequence[str],
               spans: Sequence[Sequence[tuple[int, int]]]) -> AttentionProbe:
    """The last token of each prompt should attend to the tokens covering its character spans.

    ``spans[i]`` are ``(start, end)`` character ranges of ``prompts[i]``; a token is expected if
    its characters overlap one of them (the tokenizer must report offsets: a fast tokenizer).
    """
    if len(prompts) != len(spans):
        raise ValueError(f"{len(prompts)} prompts but {len(spans)} span lists")
    tok = _tokenizer(model)
    enc = tok(list(prompts), add_special_tokens=False, return_offsets_mapping=True)
    tokens, queries = [], []
    for i, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        keys = sorted({1 + j for j, (s, e) in enumerate(offsets) for a, b in spans[i]
                       if s < b and e > a})
        last = len(ids)  # position of the last prompt token, after BOS
        keys = [k for k in keys if k <= last]
        if not keys:
            raise ValueError(f"probe {name!r}, prompt {i}: no token covers the spans "
                             f"{list(spans[i])} of {prompts[i]!r}")
        tokens.append([tok.bos_token_id, *ids])
        queries.append([(last, tuple(keys))])
    return AttentionProbe(name, tokens, queries)


def word_span(text: str, word: str) -> tuple[int, int]:
    """Character span of the first whole-word occurrence of ``word`` in ``text``."""
    m = re.search(rf"\b{re.escape(word)}\b", text)
    if m is None:
        raise ValueError(f"{word!r} does not occur as a word in {text!r}")
    return m.span()


def antecedent_probe(model: HookedTransformer, prompts: Sequence[str],
                     names: Sequence[str], name: str = "pronoun -> antecedent") -> AttentionProbe:
    """From the position that predicts the pronoun (the prompt's last token) to the name it
    refers to (its first occurrence).  Works for the organism's pronoun prompts and, with the
    indirect object as the name, for IOI prompts."""
    return span_probe(model, name, prompts,
                      [[word_span(p, n)] for p, n in zip(prompts, names, strict=True)])


def fewshot_spans(prompt: str, arrow: str = " ->", sep: str = " ; ") -> tuple[
        tuple[int, int], list[tuple[int, int]]]:
    """Character spans in a few-shot prompt ``"a -> b ; c -> d ; e ->"``: the query word (``e``)
    and the demonstrated outputs (``b``, ``d``)."""
    if not prompt.endswith(arrow):
        raise ValueError(f"a few-shot prompt ends with {arrow!r}: {prompt!r}")
    outputs, start = [], 0
    items = prompt[: -len(arrow)].split(sep)
    for item in items[:-1]:
        a = item.index(arrow) + len(arrow) + 1
        outputs.append((start + a, start + len(item)))
        start += len(item) + len(sep)
    return (start, start + len(items[-1])), outputs


def separator_query_probe(model: HookedTransformer, prompts: Sequence[str]) -> AttentionProbe:
    """From the final ``" ->"`` of a few-shot prompt to the query word it must map."""
    return span_probe(model, "separator -> query", prompts,
                      [[fewshot_spans(p)[0]] for p in prompts])


def fewshot_induction_probe(model: HookedTransformer, prompts: Sequence[str]) -> AttentionProbe:
    """From the final ``" ->"`` to the outputs of the earlier demonstrations: the tokens that
    followed ``" ->"`` before (induction in a few-shot document)."""
    return span_probe(model, "induction (few-shot outputs)", prompts,
                      [fewshot_spans(p)[1] for p in prompts])


__all__ = [
    "AttentionProbe",
    "HeadScores",
    "antecedent_probe",
    "fewshot_induction_probe",
    "fewshot_spans",
    "head_scores",
    "induction_probe",
    "previous_token_probe",
    "previous_token_score",
    "separator_query_probe",
    "span_probe",
    "word_span",
]
