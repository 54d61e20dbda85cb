"""The feature engine: one streaming pass over a corpus that every feature chapter reads.

:func:`collect_feature_stats` runs a ``HookedTransformer`` over tokenised documents in batches of
about ``batch_tokens`` tokens, caches only the hooks it needs (``names_filter``) and stops after
the last layer it reads (``stop_at_layer``: no logits).  For every layer ``L`` it reads

- ``blocks.L.hook_resid_post`` (the residual stream *after* block ``L``; the layer convention of
  the whole book), encodes it with that layer's SAE and summarises the latents;
- ``blocks.L.mlp.hook_post`` (the MLP neurons of block ``L``), summarised the same way;
- the mean and covariance of ``blocks.L.hook_resid_post`` itself.

Per unit it accumulates firing counts, activation sums and maxima, a log-spaced histogram, the
top-k activating tokens (a bounded buffer, never all activations), a reservoir of examples per
histogram slot, and firing counts per ground-truth label.  Per SAE it counts block co-occurrence:
a latent is *on* in a block of ``block_size`` consecutive tokens of one document if its
activation exceeds ``threshold`` at any of them; ``counts = B^T B`` over the boolean
block-by-latent matrix ``B``, one matrix product per batch (on the GPU when there is one).

Documents are processed one per row, each preceded by ``<|bos|>`` (the BOS position is never
counted); a document longer than the context is cut into chunks whose length is a multiple of
``block_size``, each again preceded by BOS, so blocks never straddle chunks.  Blocks are counted
from the first token of the document; the last block of a document may be shorter.

Counts, histograms, top-k and reservoir samples do not depend on the batch size (ties in top-k
go to the earlier token); sums and covariances agree to floating-point rounding.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from llmfeatures.config import progress_disabled
from llmfeatures.features.accumulators import GroupSample, GroupTopK, bin_index, log_bins
from llmfeatures.features.corpus import TokenCorpus
from llmfeatures.features.stats import (
    Cooccurrence,
    FeatureStats,
    ResidMoments,
    SiteStats,
    StatsConfig,
)
from llmfeatures.loaders import check_layer, resid_hook

ORGANISM_BLOCK = 32
REAL_MODEL_BLOCK = 256


def mlp_hook(layer: int) -> str:
    """``blocks.{layer}.mlp.hook_post``: the MLP neurons (after the nonlinearity) of block L."""
    return f"blocks.{layer}.mlp.hook_post"


def default_block_size(model) -> int:
    """32 tokens for the organism, 256 for real models (see :class:`StatsConfig`)."""
    name = getattr(model.cfg, "model_name", "") or ""
    return ORGANISM_BLOCK if "organism" in name else REAL_MODEL_BLOCK


# ---------------------------------------------------------------------------------- chunks
@dataclass
class _Chunk:
    doc: int
    start: int  # position of the chunk's first token in its document
    length: int


def _chunks(corpus: TokenCorpus, chunk_len: int) -> list[_Chunk]:
    out = []
    for d, n in enumerate(corpus.lengths().tolist()):
        for s in range(0, n, chunk_len):
            out.append(_Chunk(d, s, min(chunk_len, n - s)))
    return out


def _batches(chunks: list[_Chunk], batch_tokens: int) -> list[list[_Chunk]]:
    """Chunks sorted by length, grouped so that ``rows * (longest + 1)`` stays within budget."""
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].length, i))
    batches, cur = [], []
    for i in order:
        c = chunks[i]
        if cur and (len(cur) + 1) * (c.length + 1) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(c)
    if cur:
        batches.append(cur)
    return batches


# ---------------------------------------------------------------------------------- sites
class _SiteAccumulator:
    """Running statistics of ``n_units`` units (SAE latents or neurons) of one layer."""

    def __init__(self, kind: str, layer: int, hook: str, n_units: int, cfg: StatsConfig,
                 label_sizes: Mapping[str, int], device: torch.device):
        self.kind, self.layer, self.hook, self.cfg = kind, layer, hook, cfg
        self.n = n_units
        self.slots = cfg.n_bins + 2
        self.n_tokens = 0
        self.fire = torch.zeros(n_units, dtype=torch.int64, device=device)
        self.sum = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.hist = torch.zeros(n_units * self.slots, dtype=torch.int64, device=device)
        self.top = GroupTopK(n_units, cfg.top_k, device)
        self.bands = (GroupSample(n_units * self.slots, cfg.band_examples, device)
                      if kind == "sae" and cfg.band_examples > 0 else None)
        self.labels = {k: torch.zeros(n_units * n, dtype=torch.int64, device=device)
                       for k, n in label_sizes.items()}
        self.label_sizes = dict(label_sizes)

    def update(self, acts: torch.Tensor, gids: torch.Tensor,
               codes: Mapping[str, torch.Tensor]) -> None:
        """Dense activations ``acts [n, U]`` (MLP neurons, which can be negative)."""
        t, u = (acts > 0).nonzero(as_tuple=True)
        self.update_sparse(len(acts), t, u, acts[t, u], gids, codes, dense_sum=acts.sum(0))

    def update_sparse(self, n: int, t: torch.Tensor, u: torch.Tensor, vals: torch.Tensor,
                      gids: torch.Tensor, codes: Mapping[str, torch.Tensor],
                      dense_sum: torch.Tensor | None = None) -> None:
        """The firing entries of ``n`` tokens: token ``t``, unit ``u``, activation ``vals`` (> 0).

        ``gids [n]`` are the tokens' global ids, ``codes`` their label codes; ``dense_sum [U]``
        is the sum over all tokens when activations can be negative (else the firing sum).
        """
        self.n_tokens += n
        # counts are added in place at the firing entries (no [U * slots] temporaries)
        if dense_sum is not None:
            self.sum += dense_sum.double()
        else:
            self.sum.index_add_(0, u, vals.double())
        ones = torch.ones_like(u)
        self.fire.index_add_(0, u, ones)
        slot = bin_index(vals, *self.cfg.hist_range, self.cfg.n_bins)
        self.hist.index_add_(0, u * self.slots + slot, ones)
        g = gids[t]
        self.top.update(u, vals, g)
        if self.bands is not None:
            self.bands.update(u * self.slots + slot, g, u, vals)
        for kind, size in self.label_sizes.items():
            ct = codes[kind][t]
            ok = ct >= 0
            self.labels[kind].index_add_(0, u[ok] * size + ct[ok], ones[ok])

    def result(self) -> SiteStats:
        cpu = lambda x: x.detach().cpu().numpy()  # noqa: E731
        if self.bands is not None:
            bv = cpu(self.bands.values).reshape(self.n, self.slots, -1)
            bi = cpu(self.bands.ids).reshape(self.n, self.slots, -1)
        else:
            bv = np.zeros((self.n, 0, 0), np.float32)
            bi = np.zeros((self.n, 0, 0), np.int64)
        return SiteStats(
            kind=self.kind, layer=self.layer, hook=self.hook, n_tokens=self.n_tokens,
            fire_count=cpu(self.fire), act_sum=cpu(self.sum),
            act_max=np.maximum(cpu(self.top.values[:, 0]), 0.0).astype(np.float32),
            hist=cpu(self.hist).reshape(self.n, self.slots),
            bin_edges=log_bins(*self.cfg.hist_range, self.cfg.n_bins).numpy(),
            top_values=np.where(cpu(self.top.ids) < 0, 0.0, cpu(self.top.values)).astype(np.float32),
            top_ids=cpu(self.top.ids),
            band_values=bv, band_ids=bi,
            label_counts={k: cpu(v).reshape(self.n, s) for (k, v), s in
                          zip(self.labels.items(), self.label_sizes.values())},
        )


class _CoocAccumulator:
    """Block co-occurrence counts of one SAE: ``counts += B^T B`` per batch (as a matrix product
    when blocks have many latents on, as a sum over the pairs in each block when they have few)."""

    FLUSH_AT = 2**24  # float32 holds every integer below this exactly
    MAX_PAIRS = 2**18  # above this many pairs a batch uses the matrix product (bounded memory)

    def __init__(self, layer: int, n_units: int, cfg: StatsConfig, block_size: int,
                 device: torch.device):
        self.layer, self.cfg, self.block_size = layer, cfg, block_size
        # B^T B is added in place into a float32 matrix on the device (exact while every count is
        # below 2**24; before that could be passed it is moved into an int64 total on the CPU),
        # so a 16k-latent SAE needs one 1 GB matrix on the GPU and no temporaries
        self.partial = torch.zeros(n_units, n_units, dtype=torch.float32, device=device)
        self.partial_blocks = 0
        self.total = torch.zeros(n_units, n_units, dtype=torch.int64)
        self.n_on = torch.zeros(n_units, dtype=torch.int64, device=device)
        self.n_blocks = 0
        self.kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _flush(self) -> None:
        self.total += self.partial.round().to(device="cpu", dtype=torch.int64)
        self.partial.zero_()
        self.partial_blocks = 0

    def update(self, t: torch.Tensor, u: torch.Tensor, vals: torch.Tensor, block: torch.Tensor,
               n_blocks: int, block_doc: torch.Tensor) -> None:
        """Firing entries (token ``t``, unit ``u``, activation ``vals``); ``block [n]`` the block
        (0..n_blocks-1) of each token of the batch."""
        U = len(self.n_on)
        on_entry = vals > self.cfg.threshold
        # the (block, latent) pairs that are on, each once, sorted by block
        key = torch.unique(block[t[on_entry]] * U + u[on_entry])
        r, units = key // U, key % U
        if self.partial_blocks + n_blocks >= self.FLUSH_AT:
            self._flush()
        sizes = torch.bincount(r, minlength=n_blocks)
        n_pairs = int((sizes * sizes).sum())
        if n_pairs <= self.MAX_PAIRS and n_pairs * 64 < n_blocks * U * U:
            # sparse blocks: add 1 for every pair of latents on in the same block (sum of m_b^2
            # pairs) instead of a dense [U, n_blocks] x [n_blocks, U] product
            m = sizes[r]
            first = torch.repeat_interleave(torch.arange(len(r), device=r.device), m)
            start_in_pairs = torch.cumsum(m, 0) - m
            k = torch.arange(n_pairs, device=r.device) - torch.repeat_interleave(start_in_pairs, m)
            block_start = torch.cumsum(sizes, 0) - sizes
            second = block_start[r[first]] + k
            flat = units[first] * U + units[second]
            self.partial.view(-1).index_add_(0, flat, torch.ones(n_pairs, device=r.device))
        else:
            on = torch.zeros(n_blocks, U, device=vals.device)
            on[r, units] = 1.0
            self.partial.addmm_(on.T, on)
        self.partial_blocks += n_blocks
        self.n_on.index_add_(0, units, torch.ones_like(units))
        self.n_blocks += n_blocks
        if self.cfg.keep_blocks:
            ptr = torch.searchsorted(r, torch.arange(n_blocks + 1, device=r.device))
            self.kept.append((block_doc.cpu().numpy(), ptr.cpu().numpy(), units.cpu().numpy()))

    def result(self) -> Cooccurrence:
        out = Cooccurrence(layer=self.layer, block_size=self.block_size,
                           threshold=self.cfg.threshold, n_blocks=self.n_blocks,
                           counts=None, n_on=self.n_on.cpu().numpy())
        self._flush()
        out.counts = self.total.numpy()
        if self.cfg.keep_blocks:
            docs = [d for d, _, _ in self.kept]
            units = [u for _, _, u in self.kept]
            sizes = [np.diff(p) for _, p, _ in self.kept]
            out.block_doc = np.concatenate(docs) if docs else np.zeros(0, np.int64)
            out.block_units = np.concatenate(units) if units else np.zeros(0, np.int64)
            out.block_ptr = np.concatenate([[0], np.cumsum(np.concatenate(sizes))]) \
                if sizes else np.zeros(1, np.int64)
        return out


class _MomentAccumulator:
    def __init__(self, layer: int, d: int, device: torch.device):
        self.layer, self.n = layer, 0
        self.s = torch.zeros(d, dtype=torch.float64, device=device)
        self.ss = torch.zeros(d, d, dtype=torch.float64, device=device)

    def update(self, x: torch.Tensor) -> None:
        # one batch's sums in float32 (a few thousand terms), the running totals in float64
        x = x.float()
        self.n += len(x)
        self.s += x.sum(0).double()
        self.ss += (x.T @ x).double()

    def result(self) -> ResidMoments:
        mean = self.s / max(self.n, 1)
        cov = (self.ss - self.n * torch.outer(mean, mean)) / max(self.n - 1, 1)
        return ResidMoments(self.layer, self.n, mean.cpu().numpy(), cov.cpu().numpy())


def sparse_encode(sae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SAE's firing latents on ``x [n, d_in]``: token index, latent index, activation (> 0).

    A TopK SAE is asked for sae-lens's own sparse output (``TopK(use_sparse_activations=True)``),
    which skips writing and re-reading a dense ``[n, d_sae]`` matrix; other SAEs encode densely.
    """
    from sae_lens.saes.topk_sae import TopK

    act = getattr(sae, "activation_fn", None)
    if isinstance(act, TopK) and not act.use_sparse_activations:
        act.use_sparse_activations = True
        try:
            # opting out explicitly (sae-lens builds a valid COO tensor) also keeps torch from
            # warning that the checks are off
            with torch.sparse.check_sparse_tensor_invariants(enable=False):
                out = sae.encode(x)
        finally:
            act.use_sparse_activations = False
        idx, vals = out._indices(), out._values().float()
        keep = vals > 0
        return idx[0][keep], idx[1][keep], vals[keep]
    f = sae.encode(x).float()
    t, u = f.nonzero(as_tuple=True)
    return t, u, f[t, u]


# ---------------------------------------------------------------------------------- checks
def _check_inputs(model, corpus: TokenCorpus, layers: Sequence[int], saes: Mapping[int, object],
                  cfg: StatsConfig, block_size: int) -> None:
    if corpus.n_tokens == 0:
        raise ValueError("the corpus has no tokens; pass documents with content.")
    for L in layers:
        check_layer(L, model.cfg.n_layers, allow_embed=False)
    if not layers:
        raise ValueError("pass at least one layer.")
    for L, sae in saes.items():
        if L not in layers:
            raise ValueError(f"an SAE is given for layer {L}, which is not in layers={list(layers)}.")
        d_in = sae.cfg.d_in
        if d_in != model.cfg.d_model:
            raise ValueError(
                f"the SAE for layer {L} reads vectors of width d_in={d_in}, but the model's "
                f"residual stream has d_model={model.cfg.d_model}: pass the SAE trained on "
                f"{resid_hook(L)} of this model (e.g. load_sae(name, {L}))."
            )
        hook = getattr(getattr(sae.cfg, "metadata", None), "hook_name", None)
        if hook and hook != resid_hook(L):
            raise ValueError(f"the SAE given for layer {L} was trained on {hook!r}, not on "
                             f"{resid_hook(L)!r}: pass saes={{layer: sae}} with matching layers.")
    if model.cfg.d_vocab <= int(corpus.tokens.max()):
        raise ValueError(f"the corpus holds token id {int(corpus.tokens.max())}, outside the "
                         f"model's vocabulary of {model.cfg.d_vocab}: tokenise with model.tokenizer.")
    if cfg.cooccurrence and saes:
        longest = int(corpus.lengths().max())
        if block_size > longest:
            raise ValueError(
                f"block_size={block_size} is larger than the longest document ({longest} tokens): "
                f"no block would ever fill. Use block_size <= {longest} (documents of this corpus "
                f"have a median of {int(np.median(corpus.lengths()))} tokens)."
            )
        if block_size > model.cfg.n_ctx - 1:
            raise ValueError(f"block_size={block_size} does not fit the model's context of "
                             f"{model.cfg.n_ctx} tokens (BOS included); use at most {model.cfg.n_ctx - 1}.")


def fingerprint_module(module: torch.nn.Module, name: str = "") -> str:
    """A short hash of a model's or SAE's weights (names, shapes and a strided sample of values)."""
    h = hashlib.sha256(name.encode())
    for pname, p in sorted(module.state_dict().items()):
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(pname.encode() + str(tuple(p.shape)).encode())
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------- the pass
def collect_feature_stats(
    model,
    corpus: TokenCorpus,
    saes: Mapping[int, object] | None = None,
    layers: Sequence[int] | None = None,
    config: StatsConfig | None = None,
    progress: bool = True,
) -> FeatureStats:
    """One streaming pass of ``model`` over ``corpus``; returns :class:`FeatureStats`.

    Parameters
    ----------
    model:
        a ``HookedTransformer`` with ``model.cfg.n_ctx`` and a BOS token.
    corpus:
        the documents (:func:`~llmfeatures.features.tokenize_documents` or
        :func:`~llmfeatures.features.organism_corpus`).
    saes:
        ``{layer: sae}``: the sae-lens SAE of ``blocks.layer.hook_resid_post`` for each layer whose
        latents are summarised (layers without one get neurons and moments only).
    layers:
        the layers to read (default: the SAEs' layers, or every layer when no SAE is given).
    config:
        :class:`StatsConfig` (what to compute, batch size, block size and threshold).

    Shapes: for an SAE with ``U`` latents, ``stats.sae[L]`` arrays are ``[U, ...]``;
    ``stats.cooccurrence[L].counts`` is ``[U, U]``; ``stats.neurons[L]`` is over ``d_mlp``
    neurons; ``stats.resid[L].cov`` is ``[d_model, d_model]``.  Runs on the model's device.
    """
    with torch.no_grad():
        stats = _collect(model, corpus, saes, layers, config, progress)
    for L, c in stats.cooccurrence.items():
        if c.n_on.sum() == 0:
            warnings.warn(
                f"no SAE latent of layer {L} exceeded threshold={stats.config.threshold} in any "
                f"block, so its co-occurrence counts are all zero; lower StatsConfig.threshold "
                f"(the largest activation seen was {float(stats.sae[L].act_max.max()):.3g}).",
                stacklevel=2,
            )
    return stats


def _collect(model, corpus, saes, layers, config, progress) -> FeatureStats:
    cfg = config or StatsConfig()
    saes = dict(saes or {})
    if layers is None:
        layers = sorted(saes) if saes else list(range(model.cfg.n_layers))
    layers = sorted(set(layers))
    block_size = cfg.block_size or default_block_size(model)
    _check_inputs(model, corpus, layers, saes, cfg, block_size)
    device = next(model.parameters()).device
    for sae in saes.values():
        sae.to(device)
    sae_dtype = {L: next(s.parameters()).dtype for L, s in saes.items()}
    bos = model.tokenizer.bos_token_id if model.tokenizer is not None else None
    if bos is None:
        raise ValueError("the model's tokenizer has no BOS token; the engine prepends one to "
                         "every document.")
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else bos

    kinds = list(cfg.label_kinds) if cfg.label_kinds is not None else corpus.label_kinds
    missing = [k for k in kinds if k not in corpus.label_names]
    if missing:
        raise ValueError(f"label kinds {missing} are not in the corpus (it has {corpus.label_kinds}).")
    sizes = {k: len(corpus.label_names[k]) for k in kinds}
    codes_all = {k: torch.as_tensor(corpus.token_label_codes(k)) for k in kinds}

    sae_acc = {L: _SiteAccumulator("sae", L, resid_hook(L), saes[L].cfg.d_sae, cfg, sizes, device)
               for L in layers if L in saes}
    mlp_acc = {}
    if cfg.neurons:
        if model.cfg.d_mlp is None or model.cfg.attn_only:
            raise ValueError("the model has no MLP neurons; pass StatsConfig(neurons=False).")
        mlp_acc = {L: _SiteAccumulator("mlp", L, mlp_hook(L), model.cfg.d_mlp, cfg, sizes, device)
                   for L in layers}
    cooc_acc = ({L: _CoocAccumulator(L, saes[L].cfg.d_sae, cfg, block_size, device)
                 for L in sae_acc} if cfg.cooccurrence else {})
    mom_acc = {L: _MomentAccumulator(L, model.cfg.d_model, device) for L in layers} \
        if cfg.moments else {}

    names = set()
    for L in layers:
        if L in sae_acc or L in mom_acc:
            names.add(resid_hook(L))
        if L in mlp_acc:
            names.add(mlp_hook(L))
    stop = max(layers) + 1

    chunk_len = model.cfg.n_ctx - 1
    if cfg.cooccurrence and sae_acc:
        chunk_len = (chunk_len // block_size) * block_size
    chunks = _chunks(corpus, chunk_len)
    batches = _batches(chunks, cfg.batch_tokens)
    tokens_all = torch.as_tensor(corpus.tokens)
    offsets = corpus.offsets
    t0 = time.perf_counter()
    bar = tqdm(total=corpus.n_tokens, desc="feature stats", unit="tok",
               disable=progress_disabled(progress))
    for batch in batches:
        T = max(c.length for c in batch)
        rows = torch.full((len(batch), T + 1), pad, dtype=torch.long)
        rows[:, 0] = bos
        gid_rows = torch.full((len(batch), T), -1, dtype=torch.long)
        block_rows = torch.full((len(batch), T), -1, dtype=torch.long)
        n_blocks = 0
        block_doc = []
        for i, c in enumerate(batch):
            first = int(offsets[c.doc]) + c.start
            gids = torch.arange(first, first + c.length)
            rows[i, 1 : c.length + 1] = tokens_all[gids]
            gid_rows[i, : c.length] = gids
            nb = -(-c.length // block_size)
            block_rows[i, : c.length] = n_blocks + torch.arange(c.length) // block_size
            block_doc += [c.doc] * nb
            n_blocks += nb
        valid = gid_rows >= 0
        gids = gid_rows[valid].to(device)
        block = block_rows[valid].to(device)
        codes = {k: v[gid_rows[valid]].to(device) for k, v in codes_all.items()}
        _, cache = model.run_with_cache(rows.to(device), names_filter=lambda n: n in names,
                                        stop_at_layer=stop)
        vmask = valid.to(device)
        for L in layers:
            if L in mlp_acc:
                mlp_acc[L].update(cache[mlp_hook(L)][:, 1:][vmask].float(), gids, codes)
            if L in sae_acc or L in mom_acc:
                x = cache[resid_hook(L)][:, 1:][vmask]
                if L in mom_acc:
                    mom_acc[L].update(x)
                if L in sae_acc:
                    t, u, v = sparse_encode(saes[L], x.to(sae_dtype[L]))
                    sae_acc[L].update_sparse(len(x), t, u, v, gids, codes)
                    if L in cooc_acc:
                        cooc_acc[L].update(t, u, v, block, n_blocks, torch.tensor(block_doc))
        del cache
        bar.update(int(valid.sum()))
    bar.close()
    elapsed = time.perf_counter() - t0

    return FeatureStats(
        config=cfg, corpus=corpus,
        sae={L: a.result() for L, a in sae_acc.items()},
        neurons={L: a.result() for L, a in mlp_acc.items()},
        cooccurrence={L: a.result() for L, a in cooc_acc.items()},
        resid={L: a.result() for L, a in mom_acc.items()},
        meta={"model": getattr(model.cfg, "model_name", ""), "layers": layers,
              "block_size": block_size, "chunk_len": chunk_len, "seconds": elapsed, "n_batches": len(batches),
              "device": str(device)},
    )


def stats_key(model, corpus: TokenCorpus, saes: Mapping[int, object], layers: Sequence[int],
              config: StatsConfig) -> dict:
    """The identity of a pass (model, SAEs, corpus, layers, config) for the artefact cache."""
    return {
        "model": fingerprint_module(model, getattr(model.cfg, "model_name", "")),
        "saes": {str(L): fingerprint_module(s) for L, s in sorted(saes.items())},
        "corpus": corpus.fingerprint(),
        "layers": sorted(set(layers)),
        "config": asdict(config),
    }


# the code version of cached statistics (ArtifactDir's version): bump it when what the engine
# computes or how it saves it changes, so that older files are rebuilt, not loaded
ENGINE_VERSION = 2


def reference_cooccurrence(acts_per_doc: Sequence[np.ndarray], block_size: int,
                           threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The reference implementation: per block, ``any`` over positions, then an outer product.

    ``acts_per_doc``: one ``[n_tokens_d, U]`` array per document.  Returns ``(counts [U, U],
    n_on [U], n_blocks)``.  Slow on purpose (a Python loop over blocks); the benchmark and the
    tests compare the engine with it.
    """
    U = acts_per_doc[0].shape[1]
    counts = np.zeros((U, U), dtype=np.int64)
    n_on = np.zeros(U, dtype=np.int64)
    n_blocks = 0
    for acts in acts_per_doc:
        for s in range(0, len(acts), block_size):
            on = (acts[s : s + block_size] > threshold).any(0).astype(np.int64)
            counts += np.outer(on, on)
            n_on += on
            n_blocks += 1
    return counts, n_on, n_blocks
