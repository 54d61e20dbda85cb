"""Attribution of one scalar output to input-token embeddings with captum, and its sanity checks.

The scalar is read at the last position of each prompt: a target token's logit
(:func:`logit_target`) or a feature's activation (:func:`feature_target`: an SAE latent on
``blocks.L.hook_resid_post``, or MLP neuron ``blocks.L.mlp.hook_post``).  Inputs are the token
embeddings (the output of ``hook_embed``); positional embeddings are left as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

METHODS = ("integrated_gradients", "grad_x_input", "occlusion")

# A target maps (model, tokens [B, T], embeds [B, T, d]) to one scalar per row, [B].
Target = Callable[[object, torch.Tensor, torch.Tensor], torch.Tensor]


def _run(model, tokens: torch.Tensor, embeds: torch.Tensor, hook: str | None = None):
    """Forward pass with ``hook_embed`` replaced by ``embeds``; returns logits [B, T, V] and the
    activation at ``hook`` (or None)."""
    if embeds.shape[0] != tokens.shape[0]:  # captum stacks scaled / perturbed copies of a batch
        if embeds.shape[0] % tokens.shape[0]:
            raise ValueError(f"embeddings batch {embeds.shape[0]} is not a multiple of the "
                             f"tokens batch {tokens.shape[0]}.")
        tokens = tokens.repeat(embeds.shape[0] // tokens.shape[0], 1)
    seen: dict[str, torch.Tensor] = {}

    def grab(act, hook):
        seen["act"] = act

    hooks = [("hook_embed", lambda act, hook: embeds)]
    if hook is not None:
        hooks.append((hook, grab))
    logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits, seen.get("act")


def logit_target(answer_ids: torch.Tensor | Sequence[int]) -> Target:
    """Target: the logit of ``answer_ids[b]`` at the last position of row ``b``."""
    ids = torch.as_tensor(answer_ids).long()

    def fn(model, tokens, embeds):
        logits, _ = _run(model, tokens, embeds)
        rows = ids.to(logits.device).repeat(logits.shape[0] // len(ids))
        return logits[:, -1, :].gather(1, rows[:, None])[:, 0]

    return fn


def logit_diff_target(answer_id: int, foil_ids: Sequence[int]) -> Target:
    """Target: the answer's logit minus the mean logit of ``foil_ids`` (the other answers of the
    same task) at the last position: what makes the model say *this* answer rather than another."""
    foils = torch.as_tensor(list(foil_ids)).long()
    if len(foils) == 0:
        raise ValueError("pass at least one foil token id.")

    def fn(model, tokens, embeds):
        logits, _ = _run(model, tokens, embeds)
        last = logits[:, -1, :]
        return last[:, answer_id] - last[:, foils.to(last.device)].mean(1)

    return fn


def feature_target(layer: int, unit: int, sae=None) -> Target:
    """Target: SAE latent ``unit`` of ``sae`` on ``blocks.layer.hook_resid_post`` at the last
    position, or, with ``sae=None``, MLP neuron ``unit`` of ``blocks.layer.mlp.hook_post``."""
    hook = f"blocks.{layer}.hook_resid_post" if sae is not None else f"blocks.{layer}.mlp.hook_post"

    def fn(model, tokens, embeds):
        _, act = _run(model, tokens, embeds, hook)
        x = act[:, -1, :]
        return sae.encode(x)[:, unit] if sae is not None else x[:, unit]

    return fn


@dataclass
class Attribution:
    """Token scores of one method on one prompt.

    ``scores [T]`` (position 0 is BOS), ``output`` the target's value, and for integrated
    gradients ``baseline_output`` and ``delta`` (captum's convergence delta: sum of attributions
    minus (output - baseline output)).
    """

    method: str
    tokens: list[str]
    scores: np.ndarray
    output: float
    baseline_output: float = float("nan")
    delta: float = float("nan")

    @property
    def completeness_gap(self) -> float:
        """|delta| / |output - baseline output| (0 = attributions sum exactly to the change)."""
        return abs(self.delta) / max(abs(self.output - self.baseline_output), 1e-12)


def attribute(model, tokens: torch.Tensor, target: Target, method: str = "integrated_gradients",
              n_steps: int = 64) -> Attribution:
    """Scores of every input token of ``tokens [1, T]`` for ``target`` by ``method``.

    ``integrated_gradients``: captum ``IntegratedGradients`` from a zero token-embedding baseline
    (Gauss-Legendre, ``n_steps``); ``grad_x_input``: captum ``InputXGradient``; ``occlusion``:
    captum ``Occlusion`` zeroing one token embedding at a time.  Scores are summed over
    ``d_model`` (occlusion: the output drop when that token is removed).
    """
    from captum.attr import InputXGradient, IntegratedGradients, Occlusion

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise ValueError(f"pass one prompt as tokens of shape [1, T]; got {tuple(tokens.shape)}.")
    tokens = tokens.to(next(model.parameters()).device)
    with torch.no_grad():
        embeds = model.embed(tokens).detach()

    def forward(e: torch.Tensor) -> torch.Tensor:
        return target(model, tokens, e)

    baseline = torch.zeros_like(embeds)
    with torch.no_grad():
        out = float(forward(embeds)[0])
    strs = model.to_str_tokens(tokens[0])
    if method == "integrated_gradients":
        attr, delta = IntegratedGradients(forward).attribute(
            embeds, baselines=baseline, n_steps=n_steps, return_convergence_delta=True)
        with torch.no_grad():
            base = float(forward(baseline)[0])
        return Attribution(method, strs, attr[0].sum(-1).detach().cpu().numpy(), out, base,
                           float(delta[0]))
    if method == "grad_x_input":
        attr = InputXGradient(forward).attribute(embeds.clone().requires_grad_(True))
        return Attribution(method, strs, attr[0].sum(-1).detach().cpu().numpy(), out)
    d = embeds.shape[-1]
    attr = Occlusion(forward).attribute(embeds, sliding_window_shapes=(1, d), strides=(1, d),
                                        baselines=0.0)
    return Attribution(method, strs, attr[0].mean(-1).detach().cpu().numpy(), out)


def planted_positions(model, prompt: str, word: str) -> list[int]:
    """Positions (BOS included at 0) of the tokens of the last occurrence of ``word`` in
    ``prompt``, found by tokenising the prompt up to the word's start and end."""
    start = prompt.rfind(word)
    if start < 0:
        raise ValueError(f"{word!r} does not occur in the prompt {prompt!r}.")
    full = model.to_tokens(prompt)[0].tolist()
    before = model.to_tokens(prompt[:start].rstrip())[0].tolist() if start else full[:1]
    through = model.to_tokens(prompt[:start + len(word)])[0].tolist()
    if full[:len(through)] != through or through[:len(before)] != before:
        raise ValueError(f"the tokens of {word!r} in {prompt!r} do not split at word boundaries; "
                         "pass a word the tokenizer keeps whole.")
    return list(range(len(before), len(through)))


def planted_rank_table(model, prompts: pd.DataFrame, methods: Sequence[str] = METHODS,
                       n_steps: int = 64, target_of: Callable | None = None) -> pd.DataFrame:
    """Attribute every prompt of ``prompts`` (columns ``prompt``, ``answer`` and ``cause``: the
    planted word; optional ``foils``: other answers, for :func:`logit_diff_target`) with every
    method; one row per (prompt, method) with ``top_is_cause`` (the
    highest-scoring non-BOS token belongs to the cause), ``cause_rank`` (1 = first),
    ``completeness_gap`` (IG only), ``output``.  ``target_of(row) -> Target`` overrides the
    default target (the logit of the answer's first token)."""
    missing = {"prompt", "answer", "cause"} - set(prompts.columns)
    if missing:
        raise ValueError(f"prompts lacks columns {sorted(missing)}; need prompt, answer, cause.")
    rows = []
    for i, r in enumerate(prompts.itertuples(index=False)):
        toks = model.to_tokens(r.prompt)
        if target_of is None:
            ans = int(model.to_tokens(r.answer, prepend_bos=False)[0, 0])
            foils = getattr(r, "foils", None)
            target = logit_target([ans]) if foils is None else logit_diff_target(
                ans, [int(model.to_tokens(f, prepend_bos=False)[0, 0]) for f in foils
                      if f != r.answer])
        else:
            target = target_of(r)
        cause = planted_positions(model, r.prompt, r.cause)
        for m in methods:
            a = attribute(model, toks, target, m, n_steps)
            s = a.scores[1:]  # BOS excluded from the ranking
            order = np.argsort(-s, kind="stable") + 1
            rank = int(min(np.where(np.isin(order, cause))[0])) + 1
            rows.append({"item": i, "prompt": r.prompt, "cause": r.cause, "method": m,
                         "top_is_cause": rank == 1, "cause_rank": rank, "output": a.output,
                         "completeness_gap": a.completeness_gap if m == METHODS[0] else np.nan})
    return pd.DataFrame(rows)


def randomised_model(model, seed: int = 0):
    """A deep copy of ``model`` with every weight re-initialised (TransformerLens's own
    ``init_weights``), for the model-randomisation sanity test."""
    clone = copy.deepcopy(model)
    torch.manual_seed(seed)
    clone.init_weights()
    return clone


def randomisation_test(model, prompts: pd.DataFrame, method: str = "integrated_gradients",
                       seed: int = 0, n_steps: int = 64) -> pd.DataFrame:
    """Spearman rank correlation (non-BOS tokens) between a method's token scores on ``model``
    and on :func:`randomised_model`, per prompt (columns ``prompt``, ``answer``).  A method that
    explains the model must give a low correlation."""
    rand = randomised_model(model, seed)
    rows = []
    for r in prompts.itertuples(index=False):
        toks = model.to_tokens(r.prompt)
        ans = int(model.to_tokens(r.answer, prepend_bos=False)[0, 0])
        a = attribute(model, toks, logit_target([ans]), method, n_steps).scores[1:]
        b = attribute(rand, toks, logit_target([ans]), method, n_steps).scores[1:]
        rho = spearmanr(a, b).statistic if len(a) > 2 else np.nan
        rows.append({"prompt": r.prompt, "method": method, "spearman": float(rho)})
    return pd.DataFrame(rows)


def fact_prompts(world, n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """``world.eval_facts()`` with ``cause`` (the subject) and ``foils`` (the relation's other
    answers), ``n`` sampled rows (all with ``None``)."""
    f = world.eval_facts()
    answers = f.groupby("relation")["answer"].apply(lambda a: sorted(set(a)))
    f = f.assign(cause=f["subject"], foils=[answers[r] for r in f["relation"]])
    return f if n is None or n >= len(f) else f.sample(n, random_state=seed).reset_index(drop=True)


def pronoun_prompts(world, n_per_person: int = 1, seed: int = 0) -> pd.DataFrame:
    """``world.eval_pronouns()`` with ``cause`` (the person's name) and ``foils`` (every
    pronoun answer of the set)."""
    p = world.eval_pronouns(n_per_person, seed=seed)
    return p.assign(cause=p["name"], foils=[sorted(set(p["answer"]))] * len(p))
