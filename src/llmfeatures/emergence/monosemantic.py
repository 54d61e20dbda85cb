"""Monosemanticity of neurons, SAE latents and random residual directions against planted truth.

A unit's *purity* for a label kind (domain, part of speech, entity type) is the share of its
top-k activating tokens (from the engine's ``SiteStats.top_ids``) that carry its most common
label; a unit is *monosemantic* when that share reaches ``threshold``.  Units whose top tokens
are all one token id are counted separately (``single_token``): they are token detectors, pure by
construction.  The null: random unit directions in the residual stream ``blocks.L.hook_resid_post``
(centred on its mean), read through the same engine pass as a ``RandomDirections`` "SAE".
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from llmfeatures.features import FeatureStats, StatsConfig, TokenCorpus


class RandomDirections(torch.nn.Module):
    """``n`` random unit directions of ``blocks.layer.hook_resid_post`` with the SAE interface the
    engine reads: ``encode(x [N, d]) -> relu((x - mean) @ R) [N, n]``, ``cfg.d_in``, ``cfg.d_sae``."""

    def __init__(self, d_model: int, n: int, layer: int, mean: np.ndarray | None = None,
                 seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        r = torch.randn(d_model, n, generator=g)
        # parameters (frozen), not buffers: the engine reads the dtype from ``parameters()``
        self.R = torch.nn.Parameter(r / r.norm(dim=0, keepdim=True), requires_grad=False)
        m = torch.zeros(d_model) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        self.mean = torch.nn.Parameter(m, requires_grad=False)
        self.cfg = SimpleNamespace(d_in=d_model, d_sae=n, metadata=SimpleNamespace(
            hook_name=f"blocks.{layer}.hook_resid_post"))

    @property
    def W_dec(self) -> torch.Tensor:  # [n, d_model], as an SAE's decoder
        return self.R.T

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x.float() - self.mean) @ self.R)


def top_label_codes(corpus: TokenCorpus, top_ids: np.ndarray, kind: str) -> np.ndarray:
    """Label codes ``[U, k]`` of the top tokens ``top_ids [U, k]`` (``-1``: no example / label).
    Document-level kinds (domain) are read from the token's document."""
    ids = np.asarray(top_ids)
    ok = ids >= 0
    safe = np.where(ok, ids, 0)
    if kind in corpus.token_labels:
        codes = corpus.token_labels[kind][safe]
    elif kind in corpus.doc_labels:
        doc, _ = corpus.locate(safe)
        codes = corpus.doc_labels[kind][doc]
    else:
        raise ValueError(f"unknown label kind {kind!r}; the corpus has {corpus.label_kinds}.")
    return np.where(ok, codes, -1)


def top_purity(codes: np.ndarray, min_examples: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Purity ``[U]`` (share of labelled top examples carrying the commonest label; NaN with fewer
    than ``min_examples`` labelled) and that label's code ``[U]``, from ``codes [U, k]``."""
    codes = np.asarray(codes)
    n_labels = int(codes.max()) + 1 if codes.size and codes.max() >= 0 else 1
    counts = np.zeros((codes.shape[0], n_labels), dtype=np.int64)
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(counts, (rows, codes[rows, cols]), 1)
    n = counts.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pur = np.where(n >= min_examples, counts.max(1) / np.maximum(n, 1), np.nan)
    return pur, counts.argmax(1)


def single_token_units(corpus: TokenCorpus, top_ids: np.ndarray) -> np.ndarray:
    """``bool [U]``: every top example of the unit is the same token id."""
    ids = np.asarray(top_ids)
    tok = np.where(ids >= 0, corpus.tokens[np.where(ids >= 0, ids, 0)], -1)
    first = tok[:, :1]
    return ((tok == first) | (tok < 0)).all(1) & (tok[:, 0] >= 0)


def random_direction_stats(model, stats: FeatureStats, layers: Sequence[int], n: int,
                           seed: int = 0, top_k: int | None = None,
                           progress: bool = False) -> FeatureStats:
    """The engine's pass over ``stats.corpus`` with :class:`RandomDirections` of ``n`` directions
    per layer (centred on the residual mean of ``stats.resid``), cached like any engine pass."""
    from llmfeatures.features import feature_stats

    dirs = {L: RandomDirections(model.cfg.d_model, n, L,
                                stats.resid[L].mean if L in stats.resid else None, seed + L)
            for L in layers}
    cfg = StatsConfig(top_k=top_k or stats.config.top_k, cooccurrence=False, moments=False,
                      band_examples=0, label_kinds=stats.config.label_kinds)
    return feature_stats(model, stats.corpus, dirs, list(layers), cfg, progress=progress)


def monosemanticity(stats: FeatureStats, null: FeatureStats | None = None,
                    kinds: Sequence[str] = ("domain", "pos", "entity_type"),
                    threshold: float = 0.9, min_examples: int = 5) -> pd.DataFrame:
    """Per layer, family (``sae``, ``neuron``, ``random``) and label kind: ``n_units`` (live units
    with at least ``min_examples`` labelled top examples), ``n_multi_token`` (those whose top
    examples are not all one token), ``frac_pure`` (share of the multi-token units with purity
    >= threshold), ``frac_single_token`` (share of the live units that are token detectors,
    counted apart: a token detector is pure for free, and SAEs have many more of them than
    neurons, so leaving them in either the numerator or the denominator would bias the
    comparison), ``mean_purity`` (of the multi-token units).  ``stats`` must hold
    SAE and neuron sites (``StatsConfig(neurons=True)``); ``null`` the random directions."""
    if not stats.neurons:
        raise ValueError("stats has no neuron sites; run the engine with StatsConfig(neurons=True).")
    rows = []
    sites = [("sae", stats.sae), ("neuron", stats.neurons)]
    if null is not None:
        sites.append(("random", null.sae))
    for family, table in sites:
        for L, site in sorted(table.items()):
            single = single_token_units(stats.corpus, site.top_ids)
            for kind in kinds:
                pur, _ = top_purity(top_label_codes(stats.corpus, site.top_ids, kind),
                                    min_examples)
                live = ~np.isnan(pur)
                multi = live & ~single
                rows.append({"layer": L, "family": family, "kind": kind,
                             "n_units": int(live.sum()),
                             "n_multi_token": int(multi.sum()),
                             "frac_pure": float((pur[multi] >= threshold).sum()
                                                / max(multi.sum(), 1)),
                             "frac_single_token": float((live & single).sum() / max(live.sum(), 1)),
                             "mean_purity": float(np.nanmean(pur[multi])) if multi.any()
                             else float("nan")})
    return pd.DataFrame(rows)


def unit_purity(stats: FeatureStats, family: str, layer: int, kind: str,
                min_examples: int = 5) -> pd.DataFrame:
    """Per unit of one site: ``label`` (name), ``purity``, ``single_token``, ``act_max``."""
    site = stats.site("sae" if family == "sae" else "mlp", layer)
    pur, code = top_purity(top_label_codes(stats.corpus, site.top_ids, kind), min_examples)
    names = stats.label_names[kind]
    return pd.DataFrame({"label": [names[c] for c in code], "purity": pur,
                         "single_token": single_token_units(stats.corpus, site.top_ids),
                         "act_max": site.act_max})


def concept_spread(stats: FeatureStats, layer: int, kind: str, label: str,
                   min_share: float = 0.5, min_examples: int = 5) -> pd.DataFrame:
    """Superposition, one concept over many features: the SAE latents of ``layer`` whose top
    examples are mostly ``label`` (share >= ``min_share``), with the words they fire on most.
    Columns ``unit``, ``share``, ``words`` (top-3 distinct words of the top examples)."""
    site = stats.sae[layer]
    names = stats.label_names[kind]
    if label not in names:
        raise ValueError(f"{label!r} is not a {kind} label; labels are {names}.")
    codes = top_label_codes(stats.corpus, site.top_ids, kind)
    n = (codes >= 0).sum(1)
    share = np.where(n >= min_examples, (codes == names.index(label)).sum(1) / np.maximum(n, 1), 0)
    rows = []
    for u in np.flatnonzero(share >= min_share):
        ids = site.top_ids[u][site.top_ids[u] >= 0]
        words = pd.Series([stats.corpus.token_strings[t] for t in stats.corpus.tokens[ids]])
        rows.append({"unit": int(u), "share": float(share[u]),
                     "words": ", ".join(words.value_counts().index[:3])})
    return pd.DataFrame(rows, columns=["unit", "share", "words"]).sort_values(
        "share", ascending=False, ignore_index=True)


def neuron_concepts(stats: FeatureStats, layer: int, kind: str = "domain",
                    min_share: float = 0.2) -> pd.DataFrame:
    """Superposition, one neuron over many concepts: per MLP neuron of ``layer`` the number of
    ``kind`` labels holding at least ``min_share`` of its top examples, and their names."""
    site = stats.neurons[layer]
    codes = top_label_codes(stats.corpus, site.top_ids, kind)
    names = stats.label_names[kind]
    rows = []
    for u in range(site.n_units):
        c = codes[u][codes[u] >= 0]
        if len(c) == 0:
            continue
        share = np.bincount(c, minlength=len(names)) / len(c)
        big = np.flatnonzero(share >= min_share)
        rows.append({"unit": u, "n_concepts": len(big),
                     "concepts": ", ".join(f"{names[b]} {share[b]:.2f}" for b in big)})
    return pd.DataFrame(rows).sort_values("n_concepts", ascending=False, ignore_index=True)
