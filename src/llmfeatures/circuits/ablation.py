"""Ablation and activation patching: which components does a planted behaviour need?

Components are named ``"L{layer}H{head}"`` (one head: its ``blocks.L.attn.hook_z`` slice, so the
attention bias ``b_O`` stays), ``"L{layer} attn"`` (the whole ``blocks.L.hook_attn_out``) and
``"L{layer} mlp"`` (``blocks.L.hook_mlp_out``).

Three ways to remove a component (``mode``):

- ``"zero"``: its output set to zero;
- ``"mean"``: its output replaced, position by position, by its mean over the task's prompts of
  the same token length (what it writes on such prompts on average, without this prompt's
  particulars);
- ``"resample"``: its output replaced by its output on another prompt of the same length (a fixed
  random derangement), i.e. the component reports on the wrong prompt.

Activation patching (:func:`patch_block_every`, :func:`patch_heads`) wraps TransformerLens's
``patching.get_act_patch_block_every`` and ``get_act_patch_attn_head_out_all_pos``: each clean
activation in turn is copied into the corrupted run, and the logit difference (clean answer minus
corrupted answer) is reported normalised, 0 = the corrupted run, 1 = the clean run.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer, patching
from transformer_lens.utilities import get_act_name

from llmfeatures.circuits.lens import DLAResult
from llmfeatures.circuits.tasks import EncodedTask, Task, encode_task, length_groups, score_logits

MODES: tuple[str, ...] = ("zero", "mean", "resample")
_COMPONENT = re.compile(r"^L(\d+)(?:H(\d+)| (attn|mlp))$")


def parse_component(name: str, model: HookedTransformer) -> tuple[str, int, int | None]:
    """``"L1H2"`` -> ``("head", 1, 2)``; ``"L0 attn"`` -> ``("attn", 0, None)``; ``"L3 mlp"`` ->
    ``("mlp", 3, None)``.  Raises ``ValueError`` for a bad name or a layer/head the model lacks."""
    m = _COMPONENT.match(str(name))
    if m is None:
        raise ValueError(f"unknown component {name!r}; use 'L<layer>H<head>', 'L<layer> attn' or "
                         "'L<layer> mlp'")
    layer = int(m.group(1))
    if layer >= model.cfg.n_layers:
        raise ValueError(f"component {name!r}: the model has layers 0..{model.cfg.n_layers - 1}")
    if m.group(3) == "mlp" and model.cfg.attn_only:
        raise ValueError(f"component {name!r}: the model is attention-only, it has no MLPs")
    if m.group(2) is not None:
        head = int(m.group(2))
        if head >= model.cfg.n_heads:
            raise ValueError(f"component {name!r}: the model has heads 0..{model.cfg.n_heads - 1}")
        return "head", layer, head
    return str(m.group(3)), layer, None


def head_names(model: HookedTransformer) -> list[str]:
    """Every head, ``"L0H0", "L0H1", ...``."""
    return [f"L{layer}H{h}" for layer in range(model.cfg.n_layers)
            for h in range(model.cfg.n_heads)]


def all_components(model: HookedTransformer) -> list[str]:
    """Every head, then every attention layer and every MLP layer (none if attention-only)."""
    layers = range(model.cfg.n_layers)
    mlps = [] if model.cfg.attn_only else [f"L{i} mlp" for i in layers]
    return [*head_names(model), *(f"L{i} attn" for i in layers), *mlps]


def _act_name(kind: str, layer: int) -> str:
    return get_act_name({"head": "z", "attn": "attn_out", "mlp": "mlp_out"}[kind], layer)


def _derangement(n: int, rng: random.Random) -> list[int]:
    """A permutation of ``range(n)`` without fixed points (the identity when ``n == 1``)."""
    if n == 1:
        return [0]
    order = list(range(n))
    rng.shuffle(order)
    perm = [0] * n
    for a, b in zip(order, order[1:] + order[:1], strict=True):
        perm[a] = b
    return perm


def replacement(act: torch.Tensor, mode: str, perm: Sequence[int] | None = None) -> torch.Tensor:
    """What replaces ``act`` (``[batch, pos, ...]``) under ``mode``: zeros, the mean over the
    batch at each position, or the batch permuted by ``perm``."""
    if mode == "zero":
        return torch.zeros_like(act)
    if mode == "mean":
        return act.mean(0, keepdim=True).expand_as(act)
    if mode == "resample":
        if perm is None:
            raise ValueError("resample ablation needs a permutation of the batch")
        return act[list(perm)]
    raise ValueError(f"unknown ablation mode {mode!r}; use one of {MODES}")


def _batched_hooks(parsed: list[list[tuple[str, int, int | None]]],
                   repl: dict[str, torch.Tensor], n_heads: int) -> list:
    """Hooks for a batch made of ``len(parsed)`` copies of the prompts, copy ``s`` ablating the
    components ``parsed[s]`` (replaced by ``repl``, ``[batch, pos, ...]``)."""
    n_sets = len(parsed)
    masks: dict[str, torch.Tensor] = {}
    for s, comps in enumerate(parsed):
        for kind, layer, head in comps:
            name = _act_name(kind, layer)
            m = masks.setdefault(name, torch.zeros(n_sets, n_heads if kind == "head" else 1,
                                                   dtype=torch.bool))
            m[s, slice(None) if head is None else head] = True
    hooks = []
    for name, mask in masks.items():
        def hook(act, hook, mask=mask, new=repl[name]):
            b = new.shape[0]
            rows = mask.to(act.device).repeat_interleave(b, 0)  # [sets * batch, heads or 1]
            rows = rows[:, None, :, None] if act.ndim == 4 else rows[:, None, :]
            return torch.where(rows, new.repeat(n_sets, *[1] * (new.ndim - 1)).to(act.dtype), act)
        hooks.append((name, hook))
    return hooks


@torch.no_grad()
def ablate_sets(model: HookedTransformer, task: Task | EncodedTask,
                sets: Sequence[Sequence[str]], mode: str = "zero", seed: int = 0,
                max_tokens: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ablate each set of components together; return ``metric`` and ``right`` ``[n_sets, n]``.

    An empty set gives the unablated model.  Several sets run in one forward pass (copies of the
    prompts, each ablating its own set), up to ``max_tokens`` tokens per pass (default: as many
    as keep the logits of one pass near 1 GB, at most 32768).
    """
    if max_tokens is None:
        max_tokens = max(1, min(32_768, 2**28 // model.cfg.d_vocab))
    if mode not in MODES:
        raise ValueError(f"unknown ablation mode {mode!r}; use one of {MODES}")
    enc = task if isinstance(task, EncodedTask) else encode_task(model, task)
    parsed = [[parse_component(c, model) for c in s] for s in sets]
    names = sorted({_act_name(k, layer) for p in parsed for k, layer, _ in p})
    metric = torch.empty(len(sets), len(enc))
    right = torch.empty(len(sets), len(enc), dtype=torch.bool)
    rng = random.Random(seed)
    for idx, toks in length_groups(enc.tokens, batch_size=10**9):
        toks = toks.to(model.cfg.device)
        _, cache = model.run_with_cache(toks, names_filter=set(names).__contains__)
        perm = _derangement(len(idx), rng) if mode == "resample" else None
        repl = {n: replacement(cache[n], mode, perm) for n in names}
        step = max(1, max_tokens // toks.numel())
        for s0 in range(0, len(parsed), step):
            chunk = parsed[s0 : s0 + step]
            batch = toks.repeat(len(chunk), 1)
            logits = model.run_with_hooks(
                batch, fwd_hooks=_batched_hooks(chunk, repl, model.cfg.n_heads))[:, -1]
            for j in range(len(chunk)):
                part = logits[j * len(idx) : (j + 1) * len(idx)]
                metric[s0 + j, idx], right[s0 + j, idx] = score_logits(enc, part, idx)
    return metric, right


def ablation_table(model: HookedTransformer, task: Task | EncodedTask,
                   components: Sequence[str] | None = None,
                   modes: Sequence[str] = MODES, seed: int = 0) -> pd.DataFrame:
    """Ablate each component alone, in each mode: one row per (component, mode) with accuracy,
    metric and their changes from the clean model (``d_accuracy``, ``d_metric``, negative when
    the ablation hurts)."""
    components = all_components(model) if components is None else list(components)
    enc = task if isinstance(task, EncodedTask) else encode_task(model, task)
    rows = []
    for mode in modes:
        metric, right = ablate_sets(model, enc, [[], *[[c] for c in components]], mode, seed)
        acc, met = right.float().mean(1), metric.mean(1)
        for j, c in enumerate(components, start=1):
            kind, layer, head = parse_component(c, model)
            rows.append((c, kind, layer, head, mode, float(acc[j]), float(met[j]),
                         float(acc[j] - acc[0]), float(met[j] - met[0])))
    return pd.DataFrame(rows, columns=["component", "kind", "layer", "head", "mode", "accuracy",
                                       "metric", "d_accuracy", "d_metric"])


def head_set_curve(model: HookedTransformer, task: Task | EncodedTask, ranking: Sequence[str],
                   mode: str = "zero", n_random: int = 20, max_k: int | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Ablate the top ``k`` heads of ``ranking`` together, and ``n_random`` random sets of ``k``
    heads, for ``k = 0..max_k``.  One row per (k, set): k, kind (``ranked``/``random``), draw,
    accuracy, metric."""
    heads = head_names(model)
    for h in ranking:
        if h not in heads:
            raise ValueError(f"ranking holds {h!r}, which is not a head of this model")
    max_k = len(ranking) if max_k is None else min(max_k, len(ranking))
    rng = random.Random(seed)
    sets, labels = [], []
    for k in range(max_k + 1):
        sets.append(list(ranking[:k]))
        labels.append((k, "ranked", 0))
        for d in range(n_random if k else 0):
            sets.append(rng.sample(heads, k))
            labels.append((k, "random", d))
    metric, right = ablate_sets(model, task, sets, mode, seed)
    df = pd.DataFrame(labels, columns=["k", "kind", "draw"])
    df["accuracy"] = right.float().mean(1).numpy()
    df["metric"] = metric.mean(1).numpy()
    return df


def dla_vs_ablation(dla: DLAResult, table: pd.DataFrame, mode: str = "mean") -> tuple[
        pd.DataFrame, float]:
    """Heads and MLP layers ranked by direct logit attribution and by the ablation effect.

    The effect is the drop of the metric when the component alone is ablated in ``mode`` (from
    :func:`ablation_table`).  Returns one row per component (dla, effect, their ranks, the rank
    gap) and Spearman's rank correlation between the two.
    """
    from scipy.stats import spearmanr

    sub = table[table["mode"] == mode].set_index("component")
    if sub.empty:
        raise ValueError(f"the ablation table has no rows in mode {mode!r}")
    dla_values = {**dla.head_table().to_dict(),
                  **{k: float(v) for k, v in dla.components.items() if k.endswith(" mlp")}}
    names = [c for c in sub.index if c in dla_values]
    df = pd.DataFrame({"component": names, "dla": [dla_values[c] for c in names],
                       "effect": [-float(sub.loc[c, "d_metric"]) for c in names]})
    df["dla_rank"] = df["dla"].rank(ascending=False).astype(int)
    df["effect_rank"] = df["effect"].rank(ascending=False).astype(int)
    df["rank_gap"] = df["effect_rank"] - df["dla_rank"]
    rho = float(spearmanr(df["dla"], df["effect"]).statistic)
    return df.sort_values("effect", ascending=False, ignore_index=True), rho


# -------------------------------------------------------------------------------------------
# activation patching
# -------------------------------------------------------------------------------------------
@dataclass
class PatchingResult:
    """Normalised patching effect (0 = corrupted run, 1 = clean run) and what it is indexed by.

    ``values``: ``[3, n_layers, pos]`` (resid_pre, attn_out, mlp_out) for
    :func:`patch_block_every`, ``[n_layers, n_heads]`` for :func:`patch_heads`.
    ``clean``/``corrupt``: the mean logit difference of the two unpatched runs.
    """

    values: np.ndarray
    clean: float
    corrupt: float
    labels: list[str]
    n_pairs: int


def _logit_diff_metric(clean_ans: torch.Tensor, corrupt_ans: torch.Tensor) -> Callable:
    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1].float()
        ca, cb = clean_ans.to(last.device), corrupt_ans.to(last.device)
        return (last.gather(1, ca[:, None]) - last.gather(1, cb[:, None])).mean()
    return metric


@torch.no_grad()
def _patch(model: HookedTransformer, task: Task | EncodedTask, fn: Callable,
           length: int | None, single_length: bool
           ) -> tuple[np.ndarray, float, float, list[int], int]:
    enc = task if isinstance(task, EncodedTask) else encode_task(model, task)
    idx_all = [i for i, c in enumerate(enc.corrupt_tokens) if c is not None]
    if not idx_all:
        raise ValueError(f"task {enc.task.name!r} has no corrupted prompts to patch from")
    lengths = Counter(len(enc.tokens[i]) for i in idx_all)
    if single_length and length is None:
        length = lengths.most_common(1)[0][0]
    if length is not None:
        if length not in lengths:
            raise ValueError(f"task {enc.task.name!r} has no prompt pairs of {length} tokens; "
                             f"lengths: {sorted(lengths)}")
        idx_all = [i for i in idx_all if len(enc.tokens[i]) == length]
    total, clean_sum, corrupt_sum = None, 0.0, 0.0
    for idx, toks in length_groups(enc.tokens, batch_size=10**9, indices=idx_all):
        dev = model.cfg.device
        corrupt = torch.tensor([enc.corrupt_tokens[i] for i in idx]).to(dev)
        metric = _logit_diff_metric(enc.answer[idx], enc.corrupt_answer[idx])
        clean_logits, clean_cache = model.run_with_cache(toks.to(dev))
        out = fn(model, corrupt, clean_cache, metric).float().cpu() * len(idx)
        total = out if total is None else total + out
        clean_sum += float(metric(clean_logits)) * len(idx)
        corrupt_sum += float(metric(model(corrupt))) * len(idx)
    n = len(idx_all)
    clean, corrupt_ld = clean_sum / n, corrupt_sum / n
    if abs(clean - corrupt_ld) < 1e-6:
        raise ValueError("the clean and corrupted runs have the same logit difference; the "
                         "corruption does not change the answer, so there is nothing to localise")
    assert total is not None
    values = ((total / n - corrupt_ld) / (clean - corrupt_ld)).numpy()
    return values, clean, corrupt_ld, enc.tokens[idx_all[0]], n


def patch_block_every(model: HookedTransformer, task: Task | EncodedTask,
                      length: int | None = None) -> PatchingResult:
    """Patch the residual stream (``resid_pre``), attention output and MLP output of each layer
    at each position, clean into corrupted (``patching.get_act_patch_block_every``).

    Positions must line up, so only the prompt pairs of one token length are used: ``length``,
    or by default the most common one (``n_pairs`` says how many).  ``labels`` are the tokens of
    the first clean prompt used.
    """
    values, clean, corrupt, toks, n = _patch(model, task, patching.get_act_patch_block_every,
                                             length, single_length=True)
    return PatchingResult(values, clean, corrupt, model.to_str_tokens(torch.tensor(toks)), n)


def patch_heads(model: HookedTransformer, task: Task | EncodedTask) -> PatchingResult:
    """Patch each head's output at every position, clean into corrupted
    (``patching.get_act_patch_attn_head_out_all_pos``); ``values`` is ``[n_layers, n_heads]``."""
    values, clean, corrupt, _, n = _patch(model, task,
                                          patching.get_act_patch_attn_head_out_all_pos,
                                          None, single_length=False)
    return PatchingResult(values, clean, corrupt, head_names(model), n)


__all__ = [
    "MODES",
    "PatchingResult",
    "ablate_sets",
    "ablation_table",
    "all_components",
    "dla_vs_ablation",
    "head_names",
    "head_set_curve",
    "parse_component",
    "patch_block_every",
    "patch_heads",
    "replacement",
]
