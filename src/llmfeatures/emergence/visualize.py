"""Feature visualisation by input optimisation: a GCG-style gradient-guided token search.

The objective of a sequence ``[BOS, t_1 .. t_T]`` is the unit's activation at the last position
(plus a tenth of its pre-activation, which has a gradient even where a TopK latent or a neuron
is off) minus ``fluency`` times the model's own mean next-token cross-entropy of the sequence.  Each step
takes the gradient of the objective with respect to one-hot tokens (through ``hook_embed``), keeps
the ``top_k`` most promising replacement tokens per position, evaluates ``n_candidates`` random
single-token swaps drawn from them per sequence in one batch, and keeps the best if it improves.
Units: an SAE latent on ``blocks.L.hook_resid_post`` or an MLP neuron ``blocks.L.mlp.hook_post``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import trange

from llmfeatures.attribution.core import _run
from llmfeatures.config import progress_disabled
from llmfeatures.features import TokenCorpus


@dataclass(frozen=True)
class SearchConfig:
    """Size of the search: ``length`` free tokens, ``batch`` sequences, ``steps``, ``top_k``
    replacement tokens per position, ``n_candidates`` swaps tried per sequence and step."""

    length: int = 6
    batch: int = 8
    steps: int = 40
    top_k: int = 16
    n_candidates: int = 32
    fluency: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.length, self.batch, self.steps, self.top_k, self.n_candidates) < 1:
            raise ValueError("length, batch, steps, top_k and n_candidates must all be >= 1.")
        if self.fluency < 0:
            raise ValueError(f"fluency must be >= 0, got {self.fluency}.")


@dataclass
class SearchResult:
    """Best sequences ``tokens [batch, length]`` (BOS not included), their ``activation [batch]``
    and ``ce [batch]``, ``history [steps]`` of the best activation, and readable ``texts``."""

    tokens: np.ndarray
    activation: np.ndarray
    ce: np.ndarray
    history: np.ndarray
    texts: list[str]


def _hook(layer: int, sae) -> str:
    return f"blocks.{layer}.hook_resid_post" if sae is not None else f"blocks.{layer}.mlp.hook_pre"


def _unit(x: torch.Tensor, unit: int, sae) -> tuple[torch.Tensor, torch.Tensor]:
    """(activation, pre-activation) of the unit from ``x [B, d]`` at its hook.  The
    pre-activation (SAE: encoder score before TopK/ReLU; neuron: ``mlp.hook_pre``) keeps a
    gradient when the unit is off, so the search can climb from anywhere."""
    if sae is None:
        pre = x[:, unit]
        return F.gelu(pre), pre
    pre = sae.process_sae_in(x) @ sae.W_enc[:, unit] + sae.b_enc[unit]
    return sae.encode(x)[:, unit], pre


def score_sequences(model, full: torch.Tensor, layer: int, unit: int, sae=None,
                    embeds: torch.Tensor | None = None, with_pre: bool = False):
    """Activation at the last position ``[B]`` and mean next-token cross-entropy ``[B]`` of
    ``full [B, T+1]`` (BOS first); ``embeds`` replaces the token embeddings (for gradients);
    ``with_pre`` also returns the unit's pre-activation ``[B]``."""
    if embeds is None:
        embeds = model.embed(full)
    logits, act = _run(model, full, embeds, _hook(layer, sae))
    a, pre = _unit(act[:, -1, :], unit, sae)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), full[:, 1:], reduction="none").mean(1)
    return (a, ce, pre) if with_pre else (a, ce)


def gcg_step(model, full: torch.Tensor, layer: int, unit: int, sae, allowed: torch.Tensor,
             config: SearchConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the search on ``full [B, T+1]``: returns the new sequences and objectives."""
    B, T1 = full.shape
    V = model.cfg.d_vocab
    onehot = F.one_hot(full, V).float().requires_grad_(True)
    a, ce, pre = score_sequences(model, full, layer, unit, sae, onehot @ model.W_E, True)
    obj = a + 0.1 * pre - config.fluency * ce
    grad, = torch.autograd.grad(obj.sum(), onehot)
    grad = grad[:, 1:, :].masked_fill(~allowed, -torch.inf)
    cand = grad.topk(min(config.top_k, int(allowed.sum())), dim=-1).indices  # [B, T, k]
    n = config.n_candidates
    pos = torch.randint(T1 - 1, (B, n), generator=gen).to(full.device)
    pick = torch.randint(cand.shape[-1], (B, n), generator=gen).to(full.device)
    new = full[:, None, :].repeat(1, n, 1)
    b = torch.arange(B, device=full.device)[:, None].expand(B, n)
    new[b, torch.arange(n)[None, :].expand(B, n), pos + 1] = cand[b, pos, pick]
    with torch.no_grad():
        na, nce, npre = score_sequences(model, new.reshape(B * n, T1), layer, unit, sae,
                                        with_pre=True)
    nobj = (na + 0.1 * npre - config.fluency * nce).view(B, n)
    best = nobj.argmax(1)
    better = nobj[b[:, 0], best] > obj.detach()
    out = torch.where(better[:, None], new[b[:, 0], best], full)
    return out, torch.where(better, nobj[b[:, 0], best], obj.detach())


def optimise_input(model, layer: int, unit: int, sae=None, config: SearchConfig | None = None,
                   progress: bool = True) -> SearchResult:
    """Search token sequences that maximise one unit (see the module docstring); seeded, batched,
    with a tqdm progress bar.  Special tokens (BOS, PAD, EOS) are never proposed."""
    config = config or SearchConfig()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(config.seed)
    V = model.cfg.d_vocab
    allowed = torch.ones(V, dtype=torch.bool, device=device)
    tok = model.tokenizer
    for s in {getattr(tok, n, None) for n in ("bos_token_id", "pad_token_id", "eos_token_id",
                                               "unk_token_id")}:
        if s is not None:
            allowed[s] = False
    choices = torch.nonzero(allowed)[:, 0].cpu()
    start = choices[torch.randint(len(choices), (config.batch, config.length), generator=gen)]
    bos = torch.full((config.batch, 1), tok.bos_token_id)
    full = torch.cat([bos, start], 1).to(device)
    history = []
    for _ in trange(config.steps, desc="token search", disable=progress_disabled(progress)):
        full, _ = gcg_step(model, full, layer, unit, sae, allowed, config, gen)
        with torch.no_grad():
            a, _ = score_sequences(model, full, layer, unit, sae)
        history.append(float(a.max()))
    with torch.no_grad():
        a, ce = score_sequences(model, full, layer, unit, sae)
    texts = ["".join(model.to_str_tokens(row)) for row in full[:, 1:]]
    return SearchResult(full[:, 1:].cpu().numpy(), a.cpu().numpy(), ce.cpu().numpy(),
                        np.array(history), texts)


def tradeoff_curve(model, layer: int, unit: int, sae=None, fluencies: Sequence[float] = (0, 1, 4),
                   config: SearchConfig | None = None, progress: bool = False) -> pd.DataFrame:
    """Activation reached against the sequence's cross-entropy for several fluency penalties:
    one row per (fluency, sequence) with ``activation``, ``ce``, ``text``."""
    base = config or SearchConfig()
    rows = []
    for lam in fluencies:
        cfg = SearchConfig(**{**base.__dict__, "fluency": float(lam)})
        r = optimise_input(model, layer, unit, sae, cfg, progress)
        rows += [{"fluency": float(lam), "activation": float(a), "ce": float(c), "text": t}
                 for a, c, t in zip(r.activation, r.ce, r.texts)]
    return pd.DataFrame(rows)


def concept_token_ids(corpus: TokenCorpus, kind: str, code: int, min_share: float = 0.5,
                      min_count: int = 3) -> np.ndarray:
    """Token ids that occur at least ``min_count`` times and whose occurrences carry label
    ``code`` of ``kind`` in at least ``min_share`` of cases (document kinds: the document's)."""
    if kind in corpus.token_labels:
        codes = corpus.token_labels[kind]
    else:
        codes = np.repeat(corpus.doc_labels[kind], corpus.lengths())
    total = np.bincount(corpus.tokens, minlength=len(corpus.token_strings))
    hit = np.bincount(corpus.tokens[codes == code], minlength=len(total))
    share = hit / np.maximum(total, 1)
    return np.flatnonzero((total >= min_count) & (share >= min_share))


def concept_enrichment(tokens: np.ndarray, concept_ids: np.ndarray, n_allowed: int) -> dict:
    """Share of optimised ``tokens`` that are concept words, against chance (the share of concept
    words among the ``n_allowed`` tokens the search may propose); ``enrichment`` = ratio."""
    t = np.asarray(tokens).ravel()
    share = float(np.isin(t, concept_ids).mean()) if t.size else float("nan")
    chance = len(concept_ids) / max(n_allowed, 1)
    return {"share": share, "chance": chance, "enrichment": share / chance if chance else np.nan}


@dataclass(frozen=True)
class ChapterConfig:
    """Sizes of the chapter's experiments: features searched, facts attributed, random directions
    per layer, IG steps."""

    n_features: int = 20
    search: SearchConfig = SearchConfig(steps=30)
    n_facts: int = 100
    n_randomisation: int = 30
    n_random_directions: int = 512
    ig_steps: int = 64


CHAPTER_PRESETS = {
    "ci": ChapterConfig(n_features=3, search=SearchConfig(steps=8, batch=4, n_candidates=16),
                        n_facts=12, n_randomisation=6, n_random_directions=64, ig_steps=16),
    "book": ChapterConfig(),
    "gpu": ChapterConfig(n_facts=322),
    "paper": ChapterConfig(n_facts=322),
}
