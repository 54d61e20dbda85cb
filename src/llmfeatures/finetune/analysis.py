"""What fine-tuning does to the organism's behaviour and to its SAE features (chapter 7).

- :func:`behaviour`: swapped facts (new and old answers), unchanged facts (forgetting), loss on
  the ``recipe`` documents of ``finetune_val``, pronoun agreement, few-shot accuracy per family;
- :func:`loss_recovered` / :func:`sae_fit`: does an SAE still fit a model's layer?  FVE, L0, dead
  latents and the loss when its reconstruction replaces the residual stream (a hook);
- :func:`finetune_sae`: the base SAE trained further on the tuned model's activations;
- :func:`match_decoders`: Hungarian matching of two decoders by cosine
  (``scipy.optimize.linear_sum_assignment``);
- :func:`feature_drift`: per feature, activation correlation on the same tokens, decoder change,
  purity change, and how much of it fires on recipe text or swapped entities (ground truth from
  the feature engine, :func:`llmfeatures.features.collect_feature_stats`);
- :func:`drift_test`: the planted expectation as a one-sided Mann-Whitney U test;
- :func:`explanations_hold`: the share of base explanations (top ground-truth label) that survive.

Layer ``L`` is ``blocks.L.hook_resid_post`` throughout (:func:`llmfeatures.loaders.resid_hook`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import mannwhitneyu
from transformer_lens import HookedTransformer

from llmfeatures.loaders import resid_hook
from llmfeatures.organism.train import evaluate_loss, pack_documents

EXPLANATION_KINDS: tuple[str, ...] = ("domain", "pos", "entity_type")


# ------------------------------------------------------------------------------ behaviour
@torch.no_grad()
def behaviour(model: HookedTransformer, world, n_prompts: int = 20,
              families: tuple[str, ...] | None = None, seed: int = 0) -> dict[str, float]:
    """Behaviour of ``model`` on the fine-tuning targets and on what it should keep.

    Keys: ``swapped_new`` / ``swapped_old`` (top-1 share of the new / old answer of the swapped
    facts), ``unchanged`` (top-1 on the other facts of those relations), ``recipe_loss`` (nats per
    token on the recipe documents of ``finetune_val``), ``pronoun_agreement`` and
    ``fewshot_<family>`` (4-shot exact match, ``n_prompts`` prompts per task).
    """
    from llmfeatures.icl.lm import build_prompts, icl_accuracy
    from llmfeatures.organism.evaluate import completion_accuracy, pronoun_agreement

    facts = world.eval_finetune_facts(include_unchanged=True)
    new = completion_accuracy(model, facts["prompt"], facts["answer_after"])["first"].to_numpy()
    old = completion_accuracy(model, facts["prompt"], facts["answer_before"])["first"].to_numpy()
    changed = facts["changed"].to_numpy()
    out = {"swapped_new": float(new[changed].mean()), "swapped_old": float(old[changed].mean()),
           "unchanged": float(new[~changed].mean())}
    docs = world.documents("finetune_val")
    recipe = docs.loc[docs["domain"] == "recipe", "text"].tolist()
    out["recipe_loss"] = evaluate_loss(model, pack_documents(recipe, model.tokenizer,
                                                             model.cfg.n_ctx))
    out["pronoun_agreement"] = pronoun_agreement(
        model, world.eval_pronouns(n_per_person=2, seed=seed))["pronoun_agreement"]
    families = tuple(world.fewshot_families) if families is None else families
    acc = icl_accuracy(model, build_prompts(world, families, 4, n_prompts, seed), progress=False)
    for fam, g in acc.groupby("family", sort=False):
        out[f"fewshot_{fam}"] = float(g["accuracy"].mean())
    return out


# ------------------------------------------------------------------------------ SAE fit
def _apply(sae: Callable[[torch.Tensor], torch.Tensor] | None) -> Callable:
    return (lambda x: torch.zeros_like(x)) if sae is None else sae


@torch.no_grad()
def _mean_loss(model: HookedTransformer, rows: torch.Tensor, fwd_hooks: list,
               batch_size: int) -> float:
    """Next-token loss (nats per token) of ``model`` on ``rows`` with ``fwd_hooks`` applied."""
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size].to(model.cfg.device)
        lt = model.run_with_hooks(batch, return_type="loss", loss_per_token=True,
                                  fwd_hooks=fwd_hooks)
        total += lt.sum().item()
        count += lt.numel()
    return total / max(count, 1)


def loss_recovered(model: HookedTransformer, sae: Callable[[torch.Tensor], torch.Tensor] | None,
                   rows: torch.Tensor, layer: int, batch_size: int = 32,
                   losses: dict | None = None) -> dict[str, float]:
    """Loss when ``sae``'s reconstruction replaces ``blocks.layer.hook_resid_post``.

    ``sae``: anything mapping activations ``[..., d_model]`` to reconstructions of the same shape
    (a sae-lens SAE's forward, ``torch.nn.Identity()``; ``None`` means zeros).  ``rows``
    ``[n_rows, n_ctx]``.  Returns ``clean``, ``spliced`` and ``zero`` losses (nats per token) and
    ``recovered = (zero - spliced) / (zero - clean)``: 1 for a perfect reconstruction, 0 for one
    no better than zero-ablating the layer.  ``losses``: a dict kept between calls on the same
    ``model`` and ``rows``, where the clean and zero-ablated losses (which do not depend on
    ``sae``) are stored, so they are computed once.
    """
    name = resid_hook(layer)
    fn = _apply(sae)
    memo = {} if losses is None else losses

    def splice(act, hook=None):
        return fn(act.reshape(-1, act.shape[-1])).reshape(act.shape).to(act.dtype)

    if "clean" not in memo:
        memo["clean"] = _mean_loss(model, rows, [], batch_size)
    if ("zero", layer) not in memo:
        memo[("zero", layer)] = _mean_loss(
            model, rows, [(name, lambda act, hook=None: torch.zeros_like(act))], batch_size)
    clean, zero = memo["clean"], memo[("zero", layer)]
    spliced = _mean_loss(model, rows, [(name, splice)], batch_size)
    denom = zero - clean
    if abs(denom) < 1e-12:
        raise ValueError(f"zero-ablating layer {layer} does not change the loss; loss recovered is "
                         "undefined there. Pick another layer or more rows.")
    return {"clean": clean, "spliced": spliced, "zero": zero, "recovered": (zero - spliced) / denom}


def sae_fit(model: HookedTransformer, saes: Mapping[int, object], rows: torch.Tensor,
            loss_rows: int = 64, acts: Mapping[int, torch.Tensor] | None = None,
            losses: dict | None = None) -> pd.DataFrame:
    """Per layer: ``fve``, ``l0``, ``dead_frac`` (on every token of ``rows``) and
    ``loss_recovered`` (on the first ``loss_rows`` rows) of ``saes[layer]`` on ``model``.

    ``acts``: the residual streams of ``rows`` already computed, ``{layer: [n_tokens, d]}``
    (:func:`llmfeatures.organism.sae.residual_streams`); else one pass computes them here.
    ``losses``: shared between calls on the same model and rows (see :func:`loss_recovered`).
    """
    from llmfeatures.organism.sae import residual_streams, sae_metrics

    if acts is None:
        acts = residual_streams(model, rows, sorted(saes))
    losses = {} if losses is None else losses
    out = []
    for layer, sae in sorted(saes.items()):
        m = sae_metrics(sae, acts[layer])
        lr = loss_recovered(model, sae, rows[:loss_rows], layer, losses=losses)
        out.append({"layer": layer, "fve": m["fve"], "l0": m["l0"], "dead_frac": m["dead_frac"],
                    "loss_recovered": lr["recovered"], "spliced_loss": lr["spliced"],
                    "clean_loss": lr["clean"]})
    return pd.DataFrame(out)


def finetune_sae(sae, acts: torch.Tensor, steps: int, lr: float = 1e-3, batch: int = 1024,
                 seed: int = 0):
    """A copy of ``sae`` trained ``steps`` more Adam steps on activations ``acts``
    ``[n_tokens, d_in]`` (mean squared reconstruction error, decoder rows kept at unit norm).

    Starting from the base SAE keeps the latents' identities, so drift can be read latent by
    latent after matching; sae-lens's trainer always starts from a fresh initialisation.
    """
    new = copy.deepcopy(sae)
    if steps == 0:
        return new
    params = list(new.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    device = next(new.parameters()).device
    new.train()
    for _ in range(steps):
        x = acts[torch.randint(len(acts), (min(batch, len(acts)),), generator=gen)].to(device)
        loss = (new.decode(new.encode(x)) - x).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            new.W_dec /= new.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
    new.eval()
    for p in params:
        p.requires_grad_(False)
    return new


# ------------------------------------------------------------------------------ matching
def match_decoders(w_a: torch.Tensor | np.ndarray, w_b: torch.Tensor | np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of decoder rows ``w_a [U, d]`` to ``w_b [U', d]`` by cosine.

    Returns ``match [U]`` (the row of ``w_b`` paired with each row of ``w_a``; ``-1`` when ``U >
    U'`` leaves it unpaired) and ``cos [U]`` (the pair's cosine, NaN when unpaired); the total
    cosine of the pairs is the largest possible.
    """
    a = np.asarray(torch.as_tensor(w_a).detach().float().cpu(), dtype=np.float64)
    b = np.asarray(torch.as_tensor(w_b).detach().float().cpu(), dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"decoders must be [U, d] with the same d; got {a.shape} and {b.shape}.")
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = a @ b.T
    rows, cols = linear_sum_assignment(sim, maximize=True)
    match = np.full(len(a), -1)
    cos = np.full(len(a), np.nan)
    match[rows], cos[rows] = cols, sim[rows, cols]
    return match, cos


def matching_summary(match: np.ndarray, cos: np.ndarray, threshold: float,
                     alive_before: np.ndarray, alive_after: np.ndarray) -> dict[str, float]:
    """``matched_frac``: share of alive base latents whose Hungarian partner is alive with
    cosine >= ``threshold``; ``mean_cos`` over alive base latents; ``gone``: alive base latents
    without such a partner; ``new``: alive tuned latents that are nobody's such partner."""
    partner = np.clip(match, 0, None)
    kept = alive_before & (match >= 0) & (np.nan_to_num(cos) >= threshold) & alive_after[partner]
    new = alive_after.copy()
    new[match[kept]] = False
    return {"matched_frac": float(kept.sum() / max(alive_before.sum(), 1)),
            "mean_cos": float(np.nanmean(cos[alive_before])),
            "gone": int((alive_before & ~kept).sum()), "new": int(new.sum())}


# ------------------------------------------------------------------------------ drift
@torch.no_grad()
def encode_latents(sae, acts: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``sae``'s latents on activations ``acts`` ``[n_tokens, d_in]`` -> ``[n_tokens, U]`` (CPU),
    encoded ``chunk`` tokens at a time."""
    device = next(sae.parameters()).device
    return torch.cat([sae.encode(acts[i : i + chunk].to(device)).cpu()
                      for i in range(0, len(acts), chunk)])


def latent_activations(model: HookedTransformer, sae, rows: torch.Tensor, layer: int
                       ) -> torch.Tensor:
    """SAE latents of layer ``layer`` at every non-special token of ``rows``: ``[n_tokens, U]``."""
    from llmfeatures.organism.sae import residual_activations

    return encode_latents(sae, residual_activations(model, rows, layer))


def column_correlation(a: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Pearson correlation of each column of ``a`` with the same column of ``b`` (``[N, U]``
    each) -> ``[U]``; NaN where a column is constant.  Columns are taken ``chunk`` at a time;
    the sums (of x, y, x*x, y*y, x*y) are accumulated in float64."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {tuple(a.shape)}, {tuple(b.shape)}.")
    n = a.shape[0]
    out = np.empty(a.shape[1])
    f64 = torch.float64
    for j in range(0, a.shape[1], chunk):
        x, y = a[:, j : j + chunk].float(), b[:, j : j + chunk].float()
        sx, sy = x.sum(0, dtype=f64), y.sum(0, dtype=f64)
        sxy = (x * y).sum(0, dtype=f64) - sx * sy / n
        sxx = ((x * x).sum(0, dtype=f64) - sx * sx / n).clamp_min(0)
        syy = ((y * y).sum(0, dtype=f64) - sy * sy / n).clamp_min(0)
        den = (sxx * syy).sqrt().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            out[j : j + chunk] = np.where(den > 0, sxy.numpy() / np.where(den > 0, den, 1), np.nan)
    return out


def label_shares(stats, layer: int, kind: str, labels: list[str]) -> np.ndarray:
    """Share of each latent's firings that carry one of ``labels`` of ``kind`` ``[U]``."""
    names = stats.label_names[kind]
    idx = [names.index(x) for x in labels if x in names]
    site = stats.sae[layer]
    c = site.label_counts[kind]
    if kind == "domain":
        total = c.sum(1)
    else:
        total = site.fire_count
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, c[:, idx].sum(1) / np.maximum(total, 1), 0.0)


def shifted_words(world) -> list[str]:
    """The words of the swapped facts: their subjects and both answers."""
    out = set()
    for ch in world.changes:
        out.update({ch.subject, ch.before, ch.after})
    return sorted(out)


UNLABELLED: tuple[str, ...] = ("other", "none", "")


def _labelled_counts(stats, layer: int, kind: str) -> np.ndarray:
    """``label_counts[kind]`` ``[U, n_labels]`` without the catch-all labels (:data:`UNLABELLED`:
    tokens outside the lexicon are ``other``), so an explanation names a real label."""
    c = stats.sae[layer].label_counts[kind].astype(np.float64).copy()
    for j, name in enumerate(stats.label_names[kind]):
        if str(name).lower() in UNLABELLED:
            c[:, j] = 0
    return c


def explanation(stats, layer: int, min_firings: int = 5) -> pd.DataFrame:
    """Each latent's explanation: the ground-truth label (of :data:`EXPLANATION_KINDS`, catch-all
    labels excluded) with the highest purity.  Columns ``kind``, ``label`` (name), ``code``,
    ``purity`` (NaN with fewer than ``min_firings`` labelled firings)."""
    best = None
    for kind in EXPLANATION_KINDS:
        if kind not in stats.sae[layer].label_counts:
            continue
        c = _labelled_counts(stats, layer, kind)
        n = c.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pur = np.where(n >= min_firings, c.max(1) / np.maximum(n, 1), np.nan)
        names = stats.label_names[kind]
        code = c.argmax(1)
        cur = pd.DataFrame({"kind": kind, "label": [names[i] for i in code], "code": code,
                            "purity": pur})
        if best is None:
            best = cur
        else:
            better = cur["purity"].fillna(-1) > best["purity"].fillna(-1)
            best = best.where(~better, cur)
    return best


def label_share_of(stats, layer: int, units: np.ndarray, kinds: pd.Series, codes: pd.Series
                   ) -> np.ndarray:
    """Share of ``units``' labelled firings that carry label ``codes[i]`` of ``kinds[i]``."""
    out = np.full(len(units), np.nan)
    counts = {k: _labelled_counts(stats, layer, k) for k in set(kinds) if isinstance(k, str)}
    for i, (u, k, c) in enumerate(zip(units, kinds, codes)):
        if not isinstance(k, str) or u < 0:
            continue
        row = counts[k][u]
        if row.sum() > 0:
            out[i] = row[int(c)] / row.sum()
    return out


def feature_drift(layer: int, base_stats, tuned_stats, base_acts: torch.Tensor,
                  tuned_acts: torch.Tensor, w_base: torch.Tensor, w_tuned: torch.Tensor,
                  world, tie_threshold: float = 0.3) -> pd.DataFrame:
    """One row per alive base latent of ``layer``: its Hungarian partner, ``corr`` (activation
    correlation on the same tokens), ``drift = 1 - corr``, ``dec_change = 1 - cos``, its
    explanation before and whether it holds after, ``purity_change``, ``recipe_share`` and
    ``swapped_share`` (base firings on recipe documents / on swapped entities), and ``group``:
    ``shift`` (recipe + swapped share >= ``tie_threshold``), ``untouched`` (firings only in
    pre-training domains absent from fine-tuning) or ``other``.

    ``*_stats``: engine passes of base/tuned model with base/tuned SAE over the same corpus;
    ``*_acts``: latents ``[N, U]`` on the same tokens; ``w_*``: decoders ``[U, d]``.
    """
    match, cos = match_decoders(w_base, w_tuned)
    alive = base_stats.sae[layer].fire_count > 0
    corr = column_correlation(base_acts, tuned_acts[:, np.clip(match, 0, None)])
    exp = explanation(base_stats, layer)
    after_exp = explanation(tuned_stats, layer)
    partner = np.clip(match, 0, None)
    holds = ((after_exp["kind"].to_numpy()[partner] == exp["kind"].to_numpy())
             & (after_exp["label"].to_numpy()[partner] == exp["label"].to_numpy()))
    share_after = label_share_of(tuned_stats, layer, partner, exp["kind"], exp["code"])
    recipe = label_shares(base_stats, layer, "domain", ["recipe"])
    swapped = label_shares(base_stats, layer, "word", shifted_words(world))
    untouched_domains = [d for d in world.domains if d not in world.finetune_domains]
    untouched = label_shares(base_stats, layer, "domain", untouched_domains)
    tie = recipe + swapped
    group = np.where(tie >= tie_threshold, "shift",
                     np.where((untouched >= 0.99) & (tie == 0), "untouched", "other"))
    df = pd.DataFrame({
        "layer": layer, "unit": np.arange(len(match)), "partner": match, "corr": corr,
        "drift": 1 - corr, "dec_change": 1 - cos, "kind": exp["kind"], "label": exp["label"],
        "purity_before": exp["purity"], "purity_after": share_after,
        "purity_change": share_after - exp["purity"].to_numpy(),
        "holds": holds, "recipe_share": recipe, "swapped_share": swapped,
        "untouched_share": untouched, "group": group,
        "frequency": base_stats.sae[layer].frequency(),
    })
    return df[alive & exp["purity"].notna().to_numpy()].reset_index(drop=True)


def drift_tests_by_layer(drift: pd.DataFrame, column: str = "drift") -> pd.DataFrame:
    """:func:`drift_test` per layer of ``drift``, for the layers where both groups have at least
    two latents with a ``column`` value (a latent silent on the correlation tokens has a NaN
    drift and is not counted); one row per layer tested."""
    rows = []
    for layer, g in drift.groupby("layer"):
        known = g[g[column].notna()]
        if min((known["group"] == "shift").sum(), (known["group"] == "untouched").sum()) >= 2:
            rows.append({"layer": layer, **drift_test(known, column)})
    return pd.DataFrame(rows)


def drift_test(drift: pd.DataFrame, column: str = "drift") -> dict[str, float]:
    """One-sided Mann-Whitney U: do ``shift`` latents drift more than ``untouched`` ones?

    Returns the two medians, group sizes, U, p-value and the common-language effect size
    ``U / (n_shift * n_untouched)`` (the chance a random shift latent out-drifts a random
    untouched one).
    """
    a = drift.loc[drift["group"] == "shift", column].dropna().to_numpy()
    b = drift.loc[drift["group"] == "untouched", column].dropna().to_numpy()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least two latents per group; got shift={len(a)}, "
                         f"untouched={len(b)}. Lower tie_threshold or use a larger corpus.")
    res = mannwhitneyu(a, b, alternative="greater")
    return {"median_shift": float(np.median(a)), "median_untouched": float(np.median(b)),
            "n_shift": len(a), "n_untouched": len(b), "u": float(res.statistic),
            "p": float(res.pvalue), "effect": float(res.statistic / (len(a) * len(b)))}


def explanations_hold(drift: pd.DataFrame, n_bins: int = 3) -> pd.DataFrame:
    """Share of explanations that hold, by layer and by drift tercile (``n_bins`` quantile bins
    of ``drift`` over all layers)."""
    d = drift.dropna(subset=["drift"]).copy()
    d["drift_bin"] = pd.qcut(d["drift"].rank(method="first"), n_bins,
                             labels=["low", "middle", "high"][:n_bins] if n_bins == 3 else None)
    return (d.groupby(["layer", "drift_bin"], observed=True)["holds"]
            .agg(share="mean", n="size").reset_index())
