"""Concept Decodability (CD): how well the concept can be read off a layer's representations.

CD is the leave-one-out accuracy of a k-nearest-neighbour classifier (Euclidean distance, k = 10,
majority vote, a point is never its own neighbour) on ``N`` representations per concept, pooled
over concepts.  It is reported per concept (the fraction of that concept's points classified
correctly) and averaged.  :func:`concept_decodability` works on any ``(N, d)`` representations;
:func:`collect_icl_representations` and :func:`cd_by_layer` take them from the regression
transformer at the token just before the answer; :mod:`llmfeatures.icl.lm` does the same for
language models.

Layers follow the package's one convention (:func:`llmfeatures.loaders.resid_hook`): layer ``L``
is ``blocks.L.hook_resid_post``, the residual stream after block ``L`` (``0..n_layers-1``), and
the embeddings (``blocks.0.hook_resid_pre``) are layer :data:`EMBED` ``= -1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from llmfeatures.config import get_device
from llmfeatures.icl.model import ICLTransformer
from llmfeatures.icl.tasks import TaskConfig, balanced_basis, sample_batch
from llmfeatures.loaders import EMBED, resid_hook


@dataclass
class CDResult:
    """per_concept: ``(C,)`` accuracy per concept; mean: their average; predicted: ``(N,)``."""

    per_concept: torch.Tensor
    mean: float
    predicted: torch.Tensor


def _check_inputs(reps: torch.Tensor, labels: torch.Tensor) -> None:
    """Shapes, finite representations and non-negative integer labels, or a ``ValueError``
    that names the problem and the fix."""
    if reps.ndim != 2 or labels.ndim != 1 or labels.shape[0] != reps.shape[0]:
        raise ValueError(f"need reps (N, d) and labels (N,); got {tuple(reps.shape)}, {tuple(labels.shape)}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("labels must be whole numbers (concept indices 0..C-1); got fractions")
    bad = ~torch.isfinite(reps.float()).all(1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(
            f"reps contain NaN or inf in {len(rows)} of {len(reps)} rows (first: {rows[:5]}); "
            "distances to them are meaningless. Find where the model diverges (e.g. a layer that "
            "overflows) or drop those rows together with their labels."
        )
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(
            f"labels must be concept indices 0..C-1; got negative label {int(labels.min())}. "
            "Relabel with torch.unique(labels, return_inverse=True)[1]."
        )


def knn_predict(reps: torch.Tensor, labels: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Leave-one-out k-NN labels: ``(N, d), (N,) -> (N,)``.

    The same vote as scikit-learn's ``KNeighborsClassifier(n_neighbors=k)`` with each point left
    out of its own neighbours.  Ties in the vote go to the tied class whose member is nearest.
    Distances are computed in one batched ``cdist`` on ``reps.device``.  ``reps`` must be finite
    and ``labels`` non-negative integers (``ValueError`` otherwise).
    """
    _check_inputs(reps, labels)
    N = reps.shape[0]
    if not 1 <= k < N:
        raise ValueError(f"k must be between 1 and N-1={N - 1}, got {k}")
    x = reps.float()
    labels = labels.to(x.device).long()
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float("inf"))  # never your own neighbour
    nn_idx = dist.topk(k, dim=1, largest=False).indices  # (N, k), nearest first
    nn_lab = labels[nn_idx]
    C = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(nn_lab, C)  # (N, k, C)
    votes = onehot.sum(1)  # (N, C)
    rank = torch.arange(k, device=x.device).view(1, k, 1).expand_as(onehot)
    first = torch.where(onehot.bool(), rank, torch.full_like(rank, k)).min(1).values  # (N, C)
    score = votes * (k + 1) + (k - first)
    return score.argmax(1)


def concept_decodability(
    reps: torch.Tensor, labels: torch.Tensor, k: int = 10, device: torch.device | str | None = None
) -> CDResult:
    """CD of representations ``(N, d)`` with integer concept ``labels`` ``(N,)``.

    The labels must be ``0..C-1`` with every concept present and ``C >= 2``: a missing concept
    would be scored 0 and a single one trivially 1.  ``reps`` must be finite.  Each of these
    raises a ``ValueError`` that says what is wrong and how to fix it.
    """
    _check_inputs(reps, labels)
    present = torch.unique(labels.long().cpu())
    if len(present) < 2:
        raise ValueError(
            f"CD needs at least two concepts; all {len(labels)} labels are "
            f"{present.tolist() or 'absent'}. Pass representations of two or more concepts."
        )
    C = int(present.max()) + 1
    if len(present) != C:
        missing = sorted(set(range(C)) - set(present.tolist()))
        raise ValueError(
            f"labels skip concepts {missing} of 0..{C - 1}: a concept without representations "
            "would be scored 0. Relabel to consecutive indices with "
            "torch.unique(labels, return_inverse=True)[1]."
        )
    dev = get_device(device)
    reps, labels = reps.to(dev), labels.to(dev).long()
    pred = knn_predict(reps, labels, k)
    correct = (pred == labels).float()
    per = torch.zeros(C, device=dev).index_add_(0, labels, correct)
    per = per / torch.bincount(labels, minlength=C).clamp_min(1)
    return CDResult(per.cpu(), float(per.mean()), pred.cpu())


def model_layers(model) -> list[int]:
    """Every residual-stream layer of ``model``: ``[EMBED, 0, 1, ..., n_layers - 1]``."""
    return [EMBED, *range(model.cfg.n_layers)]


@torch.no_grad()
def collect_icl_representations(
    model: ICLTransformer,
    task: TaskConfig,
    n_per_concept: int = 100,
    n_examples: int | None = None,
    hooks: list[str] | None = None,
    seed: int = 777,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Residual streams at the x token of pair ``n_examples`` (1-based; default K, the last),
    i.e. the token just before the answer, for ``n_per_concept`` sequences of every concept.

    Returns ``({hook: (C * n_per_concept, d_model)}, labels (C * n_per_concept,))``.  By default
    every layer, embeddings included (:func:`model_layers`; hook names from :func:`resid_hook`).
    """
    q = task.K if n_examples is None else n_examples
    if not 1 <= q <= task.K:
        raise ValueError(f"n_examples must be in 1..{task.K}, got {q}")
    hooks = hooks or [resid_hook(layer) for layer in model_layers(model)]
    unknown = [h for h in hooks if h not in model.hook_dict]
    if unknown:
        raise ValueError(
            f"the model has no hook {unknown}: its layers are -1..{model.cfg.n_layers - 1} "
            "(layer L = blocks.L.hook_resid_post, -1 = the embeddings); name them with resid_hook"
        )
    labels = balanced_basis(task, n_per_concept)
    b = sample_batch(
        task, len(labels), basis=labels, generator=torch.Generator().manual_seed(seed),
        device=model.cfg.device,
    )
    _, cache = model.run_with_cache(model.tokens(b.xs, b.ys), names_filter=lambda n: n in hooks)
    pos = 2 * (q - 1)
    return {h: cache[h][:, pos].detach() for h in hooks}, labels


def cd_by_layer(
    model: ICLTransformer,
    task: TaskConfig,
    n_per_concept: int = 100,
    k: int = 10,
    n_examples: int | None = None,
    seed: int = 777,
) -> pd.DataFrame:
    """CD at every layer: DataFrame with columns ``layer, concept, cd`` (concept ``"mean"`` is
    the average; layer ``EMBED = -1`` is the embeddings, ``L`` is ``blocks.L.hook_resid_post``)."""
    layers = model_layers(model)
    hooks = [resid_hook(layer) for layer in layers]
    reps, labels = collect_icl_representations(model, task, n_per_concept, n_examples, hooks, seed)
    rows = []
    for layer, h in zip(layers, hooks, strict=True):
        res = concept_decodability(reps[h], labels, k)
        rows += [{"layer": layer, "concept": str(c), "cd": float(v)} for c, v in enumerate(res.per_concept)]
        rows.append({"layer": layer, "concept": "mean", "cd": res.mean})
    return pd.DataFrame(rows)
