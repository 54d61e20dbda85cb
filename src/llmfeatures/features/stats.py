"""The results of the feature engine: plain objects with named NumPy arrays.

:class:`SiteStats` summarises one set of units (the latents of one SAE, or the MLP neurons of one
layer) over a corpus; :class:`Cooccurrence` holds block co-occurrence counts; :class:`ResidMoments`
the mean and covariance of the raw residual stream; :class:`FeatureStats` bundles them per layer
(layer ``L`` = ``blocks.L.hook_resid_post``; MLP neurons of layer ``L`` = ``blocks.L.mlp.hook_post``)
together with the corpus they were computed on.  Everything saves to one ``.npz`` file and loads
back without a model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmfeatures.features.corpus import TokenCorpus


@dataclass
class SiteStats:
    """Per-unit statistics of one site (``n_units`` SAE latents or MLP neurons).

    Arrays (``U`` = ``n_units``, ``S = n_bins + 2`` histogram slots, ``k`` = ``top_k``):

    ``fire_count [U]`` tokens where the unit is > 0; ``act_sum [U]`` sum of its activations (all
    tokens); ``act_max [U]``; ``hist [U, S]`` counts of positive activations per log-spaced slot
    (slot 0 below ``bin_edges[0]``, slot ``S-1`` at or above ``bin_edges[-1]``);
    ``top_values / top_ids [U, k]`` the k largest activations and their global token indices
    (``-1``: fewer than k firings); ``band_values / band_ids [U, S, r]`` a uniform sample of ``r``
    firings per histogram slot (SAE sites; empty for neurons); ``label_counts[kind] [U, L]``
    firings per ground-truth label.
    """

    kind: str  # "sae" or "mlp"
    layer: int
    hook: str
    n_tokens: int
    fire_count: np.ndarray
    act_sum: np.ndarray
    act_max: np.ndarray
    hist: np.ndarray
    bin_edges: np.ndarray
    top_values: np.ndarray
    top_ids: np.ndarray
    band_values: np.ndarray
    band_ids: np.ndarray
    label_counts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return len(self.fire_count)

    def frequency(self) -> np.ndarray:
        """Share of tokens on which each unit fires, ``[U]``."""
        return self.fire_count / max(self.n_tokens, 1)

    def mean_activation(self) -> np.ndarray:
        """Mean activation over all tokens, ``[U]``."""
        return self.act_sum / max(self.n_tokens, 1)

    def dead(self) -> np.ndarray:
        """Units that never fired on this corpus, ``bool [U]``."""
        return self.fire_count == 0

    def quantiles(self, q: float | list[float]) -> np.ndarray:
        """Quantiles of each unit's *positive* activations, read off the histogram.

        Interpolated log-linearly inside a slot, so exact to the bin width (a tenth of a decade
        by default).  Returns ``[U]`` for a scalar ``q``, ``[U, len(q)]`` for a list; NaN for
        units that never fired.
        """
        qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
        if np.any((qs < 0) | (qs > 1)):
            raise ValueError(f"quantiles must lie in [0, 1]; got {q}.")
        edges = np.log(self.bin_edges)
        step = edges[1] - edges[0]
        # slot s spans [edges[s-1], edges[s]) for 1..n_bins; the outer slots get one bin width
        lo = np.concatenate([[edges[0] - step], edges])
        cum = np.cumsum(self.hist, axis=1)
        total = cum[:, -1:]
        out = np.full((self.n_units, len(qs)), np.nan)
        for j, qq in enumerate(qs):
            target = qq * total[:, 0]
            slot = np.argmax(cum >= target[:, None] - 1e-9, axis=1)
            before = np.where(slot > 0, cum[np.arange(self.n_units), slot - 1], 0)
            inside = self.hist[np.arange(self.n_units), slot]
            frac = np.where(inside > 0, (target - before) / np.maximum(inside, 1), 0.0)
            out[:, j] = np.exp(lo[slot] + np.clip(frac, 0, 1) * step)
        out[total[:, 0] == 0] = np.nan
        return out[:, 0] if np.ndim(q) == 0 else out

    def purity(self, kind: str) -> pd.DataFrame:
        """Each unit's most frequent ``kind`` label among its firings, and its share.

        Columns ``label`` (code), ``purity`` (share of labelled firings, NaN when none) and
        ``n`` (labelled firings).  For names, map codes with ``FeatureStats.label_names``.
        """
        if kind not in self.label_counts:
            raise KeyError(f"no label counts for {kind!r}; have {sorted(self.label_counts)}.")
        c = self.label_counts[kind]
        n = c.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            pur = np.where(n > 0, c.max(1) / np.maximum(n, 1), np.nan)
        return pd.DataFrame({"label": c.argmax(1), "purity": pur, "n": n})


@dataclass
class Cooccurrence:
    """Block co-occurrence of one SAE's latents (blocks and threshold: see :class:`StatsConfig`).

    ``counts [U, U]`` (int64) blocks in which both i and j are on (diagonal = ``n_on``);
    ``n_on [U]`` blocks in which i is on; ``n_blocks`` blocks in all.  With
    ``StatsConfig(keep_blocks=True)`` the on-sets of every block are kept too, in CSR form:
    block ``b`` (of document ``block_doc[b]``) has the latents
    ``block_units[block_ptr[b]:block_ptr[b + 1]]`` on.
    """

    layer: int
    block_size: int
    threshold: float
    n_blocks: int
    counts: np.ndarray
    n_on: np.ndarray
    block_doc: np.ndarray | None = None
    block_ptr: np.ndarray | None = None
    block_units: np.ndarray | None = None

    def block_matrix(self) -> np.ndarray:
        """The kept blocks as a dense ``bool [n_blocks, U]`` matrix."""
        if self.block_ptr is None:
            raise ValueError("block on-sets were not kept; collect with StatsConfig(keep_blocks=True).")
        m = np.zeros((self.n_blocks, len(self.n_on)), dtype=bool)
        rows = np.repeat(np.arange(self.n_blocks), np.diff(self.block_ptr))
        m[rows, self.block_units] = True
        return m


@dataclass
class ResidMoments:
    """Mean ``[d]`` and covariance ``[d, d]`` (float64) of ``blocks.L.hook_resid_post``."""

    layer: int
    n_tokens: int
    mean: np.ndarray
    cov: np.ndarray


@dataclass(frozen=True)
class StatsConfig:
    """What the engine computes and how it batches.

    ``block_size`` ``None`` means: 32 tokens for the organism (its documents are ~100 tokens, so a
    block is about a quarter of one, as the reference's 256-token blocks are of its 1024-token
    documents) and 256 for real models (the reference setting).  ``threshold``: a latent is "on"
    in a block when its activation exceeds it (reference: 1.0).
    """

    top_k: int = 20
    n_bins: int = 60
    hist_range: tuple[float, float] = (1e-3, 1e3)
    band_examples: int = 2  # reservoir size per (latent, histogram slot); SAE sites only
    neurons: bool = False  # also summarise MLP neurons (blocks.L.mlp.hook_post); dense, slower
    cooccurrence: bool = True
    block_size: int | None = None
    threshold: float = 1.0
    keep_blocks: bool = False  # keep every block's on-set (grows with the corpus; chapter 4)
    moments: bool = True
    batch_tokens: int = 8192  # tokens per forward pass (padding included)
    label_kinds: tuple[str, ...] | None = None  # None: every label the corpus has

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.n_bins < 1 or self.band_examples < 0:
            raise ValueError("top_k and n_bins must be >= 1 and band_examples >= 0.")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}.")
        if self.batch_tokens < 1:
            raise ValueError(f"batch_tokens must be >= 1, got {self.batch_tokens}.")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold}.")


@dataclass
class FeatureStats:
    """Everything one pass of the engine measured, per layer, with the corpus it read."""

    config: StatsConfig
    corpus: TokenCorpus
    sae: dict[int, SiteStats] = field(default_factory=dict)
    neurons: dict[int, SiteStats] = field(default_factory=dict)
    cooccurrence: dict[int, Cooccurrence] = field(default_factory=dict)
    resid: dict[int, ResidMoments] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label_names(self) -> dict[str, list[str]]:
        return self.corpus.label_names

    def site(self, kind: str, layer: int) -> SiteStats:
        """``kind`` ``"sae"`` or ``"mlp"`` at ``layer``."""
        table = {"sae": self.sae, "mlp": self.neurons}.get(kind)
        if table is None:
            raise ValueError(f"kind must be 'sae' or 'mlp', got {kind!r}.")
        if layer not in table:
            raise KeyError(f"no {kind} statistics for layer {layer}; have layers {sorted(table)}.")
        return table[layer]

    def top_examples(self, kind: str, layer: int, unit: int, before: int = 8,
                     after: int = 4) -> pd.DataFrame:
        """The top activating tokens of one unit with their context (rows best first)."""
        s = self.site(kind, layer)
        rows = []
        for value, gid in zip(s.top_values[unit], s.top_ids[unit]):
            if gid < 0:
                continue
            doc, pos = self.corpus.locate(int(gid))
            ctx, at = self.corpus.context(int(gid), before, after)
            labels = {k: self._label_of(k, int(gid)) for k in self.corpus.label_kinds}
            rows.append({"activation": float(value), "doc": int(doc), "pos": int(pos),
                         "token": ctx[at], "context": ctx, "at": at, "gid": int(gid), **labels})
        return pd.DataFrame(rows)

    def _label_of(self, kind: str, gid: int) -> str | None:
        if kind in self.corpus.token_labels:
            code = int(self.corpus.token_labels[kind][gid])
        else:
            doc, _ = self.corpus.locate(gid)
            code = int(self.corpus.doc_labels[kind][int(doc)])
        return self.corpus.label_names[kind][code] if code >= 0 else None

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write everything to one ``.npz`` (use through :func:`llmfeatures.cache.atomic_path`)."""
        arrays: dict[str, np.ndarray] = {
            "corpus/tokens": self.corpus.tokens, "corpus/offsets": self.corpus.offsets,
        }
        for k, v in self.corpus.doc_labels.items():
            arrays[f"corpus/doc_labels/{k}"] = v
        for k, v in self.corpus.token_labels.items():
            arrays[f"corpus/token_labels/{k}"] = v
        header: dict[str, Any] = {
            "config": asdict(self.config), "meta": self.meta,
            "label_names": self.corpus.label_names, "token_strings": self.corpus.token_strings,
            "sites": [], "cooc": [], "resid": [],
        }
        for s in [*self.sae.values(), *self.neurons.values()]:
            pre = f"site/{s.kind}/{s.layer}/"
            header["sites"].append({"kind": s.kind, "layer": s.layer, "hook": s.hook,
                                    "n_tokens": s.n_tokens})
            for name in ("fire_count", "act_sum", "act_max", "hist", "bin_edges", "top_values",
                         "top_ids", "band_values", "band_ids"):
                arrays[pre + name] = getattr(s, name)
            for k, v in s.label_counts.items():
                arrays[pre + "labels/" + k] = v
        for c in self.cooccurrence.values():
            pre = f"cooc/{c.layer}/"
            header["cooc"].append({"layer": c.layer, "block_size": c.block_size,
                                   "threshold": c.threshold, "n_blocks": c.n_blocks})
            arrays[pre + "counts"], arrays[pre + "n_on"] = c.counts, c.n_on
            if c.block_ptr is not None:
                arrays[pre + "block_doc"], arrays[pre + "block_ptr"] = c.block_doc, c.block_ptr
                arrays[pre + "block_units"] = c.block_units
        for m in self.resid.values():
            pre = f"resid/{m.layer}/"
            header["resid"].append({"layer": m.layer, "n_tokens": m.n_tokens})
            arrays[pre + "mean"], arrays[pre + "cov"] = m.mean, m.cov
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        header = json.loads(a.pop("header").tobytes().decode())
        cfg = dict(header["config"])
        cfg["hist_range"] = tuple(cfg["hist_range"])
        if cfg.get("label_kinds") is not None:
            cfg["label_kinds"] = tuple(cfg["label_kinds"])
        corpus = TokenCorpus(
            tokens=a["corpus/tokens"], offsets=a["corpus/offsets"],
            doc_labels={k.split("/")[-1]: v for k, v in a.items() if k.startswith("corpus/doc_labels/")},
            token_labels={k.split("/")[-1]: v for k, v in a.items()
                          if k.startswith("corpus/token_labels/")},
            label_names=header["label_names"], token_strings=header["token_strings"],
        )
        out = cls(config=StatsConfig(**cfg), corpus=corpus, meta=header["meta"])
        for s in header["sites"]:
            pre = f"site/{s['kind']}/{s['layer']}/"
            fields = {n: a[pre + n] for n in ("fire_count", "act_sum", "act_max", "hist",
                                                "bin_edges", "top_values", "top_ids",
                                                "band_values", "band_ids")}
            labels = {k[len(pre) + 7:]: v for k, v in a.items() if k.startswith(pre + "labels/")}
            site = SiteStats(kind=s["kind"], layer=s["layer"], hook=s["hook"],
                             n_tokens=s["n_tokens"], label_counts=labels, **fields)
            (out.sae if s["kind"] == "sae" else out.neurons)[s["layer"]] = site
        for c in header["cooc"]:
            pre = f"cooc/{c['layer']}/"
            blocks = {n: a.get(pre + n) for n in ("block_doc", "block_ptr", "block_units")}
            out.cooccurrence[c["layer"]] = Cooccurrence(counts=a[pre + "counts"],
                                                        n_on=a[pre + "n_on"], **c, **blocks)
        for m in header["resid"]:
            pre = f"resid/{m['layer']}/"
            out.resid[m["layer"]] = ResidMoments(mean=a[pre + "mean"], cov=a[pre + "cov"], **m)
        return out
