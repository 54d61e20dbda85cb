"""The causal check: does the concept encoded at a layer steer the algorithm that follows?

At the encoding layer, the residual stream at the x tokens of sequences of concept ``a`` is
moved to the *mean* representation (per position) of concept ``b``, and the change in the
prediction error is measured.  If the layer encodes the concept and later layers use it, patching
the same concept's mean (``a == b``) barely hurts (or helps: it removes the noise in the model's
own estimate) while another concept's mean (``a != b``) derails the prediction.
:func:`patching_matrix` returns the ``(C, C)`` matrix of loss changes.

Two ways to patch (``mode``):

* ``"concept"`` (default): only the *concept component* is replaced.  At each patched position the
  ``C`` concept means span a subspace of at most ``C - 1`` directions (after centring); the
  representation's coordinates in that subspace are set to those of concept ``b``'s mean and the
  rest -- the query ``x`` itself, the running regression estimate -- is left alone.
* ``"full"``: the whole residual vector is replaced by the mean.  This also erases the query
  input, so every patch, the same concept's included, ruins the prediction; it is kept for
  comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmfeatures.icl.model import ICLTransformer
from llmfeatures.icl.tasks import TaskConfig, balanced_basis, sample_batch
from llmfeatures.loaders import check_layer, resid_hook


@dataclass
class PatchingResult:
    """delta: ``(C, C)`` loss change, row = true concept, column = concept whose mean is
    patched in; clean: ``(C,)`` unpatched loss; layer and the patched pair indices."""

    delta: torch.Tensor
    clean: torch.Tensor
    layer: int
    examples: list[int]
    mode: str = "concept"

    @property
    def same_concept(self) -> float:
        """Mean loss change when patching the sequence's own concept mean (the diagonal)."""
        return float(self.delta.diagonal().mean())

    @property
    def other_concept(self) -> float:
        """Mean loss change when patching another concept's mean (off the diagonal)."""
        C = self.delta.shape[0]
        off = ~torch.eye(C, dtype=torch.bool)
        return float(self.delta[off].mean())

    @property
    def ratio(self) -> float:
        """``other_concept / same_concept``; when the same-concept patch does not raise the loss,
        ``inf`` if another concept's does and ``nan`` if neither does."""
        same, other = self.same_concept, self.other_concept
        if same <= 1e-12:
            return float("inf") if other > 1e-12 else float("nan")
        return other / same


PATCH_MODES = ("concept", "full")


def mean_patch_hook(mean: torch.Tensor, positions: torch.Tensor):
    """A TransformerLens hook that writes ``mean[positions]`` (``mean``: ``(T, d)``) into
    ``act[:, positions]`` (``act``: ``(B, T, d)``) and returns the patched activation."""

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        act[:, positions] = mean[positions]
        return act

    return hook


def concept_subspace(means: torch.Tensor, positions: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Orthonormal bases of the span of the centred concept means at each patched position.

    means: ``(C, T, d)`` -> ``(P, d, C)`` for the ``P`` positions; columns beyond the rank of the
    centred means (at most ``C - 1``) are zero.
    """
    m = means[:, positions]  # (C, P, d)
    centred = (m - m.mean(0, keepdim=True)).transpose(0, 1)  # (P, C, d)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (P, C, d)
    keep = (s > tol * s.amax(-1, keepdim=True).clamp_min(1e-30)).to(vh.dtype)  # (P, C)
    return (vh * keep.unsqueeze(-1)).transpose(1, 2)  # (P, d, C)


def concept_patch_hook(mean: torch.Tensor, basis: torch.Tensor, positions: torch.Tensor):
    """A hook that sets the coordinates of ``act[:, positions]`` in the concept subspace
    ``basis`` (``(P, d, r)``, from :func:`concept_subspace`) to those of ``mean[positions]``
    (``mean``: ``(T, d)``), leaving the orthogonal rest of the residual stream untouched."""

    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        a = act[:, positions]  # (B, P, d)
        coords = torch.einsum("bpd,pdr->bpr", a - mean[positions], basis)
        act[:, positions] = a - torch.einsum("bpr,pdr->bpd", coords, basis)
        return act

    return hook


@torch.no_grad()
def concept_means(
    model: ICLTransformer, task: TaskConfig, layer: int, n_per_concept: int = 100, seed: int = 99
) -> torch.Tensor:
    """Mean residual stream per concept and position at ``layer`` (``blocks.{layer}.hook_resid_post``;
    ``-1``: the embeddings): ``(C, 2K, d_model)``."""
    labels = balanced_basis(task, n_per_concept)
    b = sample_batch(task, len(labels), basis=labels, generator=torch.Generator().manual_seed(seed),
                     device=model.cfg.device)
    hook = resid_hook(layer)
    _, cache = model.run_with_cache(model.tokens(b.xs, b.ys), names_filter=hook)
    acts = cache[hook]  # (N, 2K, d)
    return acts.view(task.n_bases, n_per_concept, *acts.shape[1:]).mean(1)


@torch.no_grad()
def patching_matrix(
    model: ICLTransformer,
    task: TaskConfig,
    layer: int,
    examples: list[int] | None = None,
    n_per_concept: int = 100,
    seed: int = 5,
    mode: str = "concept",
) -> PatchingResult:
    """Loss change from patching concept means into the residual stream at ``layer``
    (``blocks.{layer}.hook_resid_post``, ``0..n_layers-1``; ``-1`` patches the embeddings).

    ``mode``: ``"concept"`` replaces only the component in the span of the concept means,
    ``"full"`` the whole vector (see the module notes).

    ``examples``: 1-based pair indices whose x tokens are patched and scored (default: the
    second half of the context, ``K//2+1 .. K``, where the concept is identifiable).  Means come
    from independent sequences.  Loss = squared error of the patched predictions.
    """
    if mode not in PATCH_MODES:
        raise ValueError(f"mode must be one of {PATCH_MODES}, got {mode!r}")
    check_layer(layer, model.cfg.n_layers)
    if examples is None:
        examples = list(range(task.K // 2 + 1, task.K + 1))
    examples = list(examples)
    if not examples:
        raise ValueError(
            "examples is empty, so no position would be patched or scored; pass 1-based pair "
            f"indices in 1..{task.K}, or examples=None for the second half of the context"
        )
    if min(examples) < 1 or max(examples) > task.K:
        raise ValueError(f"examples must be 1-based pair indices in 1..{task.K}")
    pos = torch.tensor([2 * (i - 1) for i in examples], device=model.cfg.device)
    means = concept_means(model, task, layer, n_per_concept, seed=seed + 1)
    basis = concept_subspace(means, pos) if mode == "concept" else None
    C = task.n_bases
    hook = resid_hook(layer)
    delta, clean = torch.zeros(C, C), torch.zeros(C)
    for a in range(C):
        b = sample_batch(task, n_per_concept, basis=a, generator=torch.Generator().manual_seed(seed + 10 + a),
                         device=model.cfg.device)
        tokens = model.tokens(b.xs, b.ys)
        target = b.ys[:, [i - 1 for i in examples]]
        base = float(((model(tokens)[:, pos, 0] - target) ** 2).mean())
        clean[a] = base
        for c in range(C):
            fn = mean_patch_hook(means[c], pos) if basis is None else concept_patch_hook(means[c], basis, pos)
            out = model.run_with_hooks(tokens, fwd_hooks=[(hook, fn)])
            delta[a, c] = float(((out[:, pos, 0] - target) ** 2).mean()) - base
    return PatchingResult(delta, clean, layer, examples, mode)
