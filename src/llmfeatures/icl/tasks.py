"""The synthetic in-context task: a mixture of sparse linear regressions.

A *concept* is a basis: a set of ``rank`` input dimensions out of ``D``.  Each sequence draws one
basis ``B``, a weight vector ``w ~ N(0, I_D)`` masked to the dimensions of ``B``, and ``K`` inputs
``x_i ~ N(0, I_D)`` with targets ``y_i = w . x_i + eps_i``, ``eps_i ~ N(0, noise_std**2)``.  The
inputs carry no information about the basis; only the (x, y) pairs do, so a model has to infer the
concept from the examples in its context before it can regress well.

Three families of bases are provided (see :func:`make_bases`):

* ``"orthogonal"`` -- disjoint blocks of ``rank`` dimensions (the default: 4 bases in D = 16);
* the same with 6 bases in D = 24 (``TaskConfig.variant("six")``);
* ``"overlapping"`` -- 8 bases of rank 4 in D = 16 arranged in two groups; the 4 bases of a group
  all live inside the same 8 dimensions and each shares 2 dimensions with two others of its group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

BASIS_FAMILIES = ("orthogonal", "overlapping")


def make_bases(family: str, D: int, n_bases: int, rank: int) -> tuple[tuple[int, ...], ...]:
    """Dimensions spanned by each basis, as a tuple of sorted index tuples.

    ``"orthogonal"`` needs ``n_bases * rank <= D`` and gives blocks ``[k*rank, (k+1)*rank)``.
    ``"overlapping"`` needs ``rank`` even, ``n_bases`` a multiple of 4 and
    ``D == (n_bases // 4) * 2 * rank``: each group of 4 bases lives in ``2 * rank`` dimensions
    split into 4 quarters ``q0..q3`` of ``rank / 2`` dimensions, and its bases are
    ``q0+q1, q2+q3, q0+q2, q1+q3``.
    """
    for name, value in (("D", D), ("n_bases", n_bases), ("rank", rank)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"{name} must be a positive integer, got {value!r}: the task needs at least one "
                "input dimension, one basis and one dimension per basis (the default variant is "
                "D=16, n_bases=4, rank=4)."
            )
    if family == "orthogonal":
        if n_bases * rank > D:
            raise ValueError(
                f"{n_bases} orthogonal bases of rank {rank} need D >= {n_bases * rank}, got D={D}; "
                "raise D or lower n_bases/rank."
            )
        return tuple(tuple(range(k * rank, (k + 1) * rank)) for k in range(n_bases))
    if family == "overlapping":
        if rank % 2 or n_bases % 4 or D != (n_bases // 4) * 2 * rank:
            raise ValueError(
                "overlapping bases need an even rank, n_bases a multiple of 4 and "
                f"D = (n_bases // 4) * 2 * rank; got D={D}, n_bases={n_bases}, rank={rank} "
                "(the standard variant is D=16, n_bases=8, rank=4)."
            )
        h = rank // 2
        bases = []
        for g in range(n_bases // 4):
            start = g * 2 * rank
            q = [tuple(range(start + i * h, start + (i + 1) * h)) for i in range(4)]
            for a, b in ((0, 1), (2, 3), (0, 2), (1, 3)):
                bases.append(tuple(sorted(q[a] + q[b])))
        return tuple(bases)
    raise ValueError(f"unknown basis family {family!r}; choose one of {BASIS_FAMILIES}")


@dataclass(frozen=True)
class TaskConfig:
    """Size and noise of the sparse-regression mixture.

    ``noise_std`` is the standard deviation of ``eps``; the paper writes ``eps ~ N(0, 0.01)``,
    which we read as a variance of 0.01, i.e. ``noise_std = 0.1``.
    """

    D: int = 16
    n_bases: int = 4
    rank: int = 4
    K: int = 20
    noise_std: float = 0.1
    family: str = "orthogonal"
    # how often each concept is drawn for training (None: uniformly, as in the paper);
    # evaluation always uses every concept equally often
    basis_probs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.K < 1:
            raise ValueError(f"K (examples per sequence) must be >= 1, got {self.K}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        make_bases(self.family, self.D, self.n_bases, self.rank)  # validates
        if self.basis_probs is not None:
            p = tuple(float(v) for v in self.basis_probs)
            if len(p) != self.n_bases or min(p) <= 0 or abs(sum(p) - 1) > 1e-6:
                raise ValueError(
                    f"basis_probs must give each of the {self.n_bases} bases a positive probability, "
                    f"summing to 1; got {self.basis_probs!r} (use None for uniform)"
                )
            object.__setattr__(self, "basis_probs", p)

    @property
    def bases(self) -> tuple[tuple[int, ...], ...]:
        return make_bases(self.family, self.D, self.n_bases, self.rank)

    def mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Boolean masks of the bases, shape ``(n_bases, D)``."""
        m = torch.zeros(self.n_bases, self.D, dtype=torch.bool, device=device)
        for k, dims in enumerate(self.bases):
            m[k, list(dims)] = True
        return m

    @staticmethod
    def variant(name: str, **overrides: object) -> TaskConfig:
        """A named variant: ``"default"`` (the paper's: 4 bases of rank 4 in D=16, K=20),
        ``"six"`` (6 bases, D=24), ``"overlapping"`` (8 overlapping bases, D=16) or ``"cpu"``
        (the CPU presets' task, see :data:`CPU_TASK`); keyword overrides are applied on top."""
        table = {
            "default": TaskConfig(),
            "cpu": CPU_TASK,
            "six": TaskConfig(D=24, n_bases=6),
            "overlapping": TaskConfig(D=16, n_bases=8, family="overlapping"),
        }
        if name not in table:
            raise ValueError(f"unknown task variant {name!r}; choose one of {sorted(table)}")
        return replace(table[name], **overrides)  # type: ignore[arg-type]


# The task of the CPU presets (``ci`` and ``book``): 2 bases of rank 2 in D = 4, and contexts of
# K = 5 pairs, so that with the full context (4 examples) the concept is still needed: least
# squares on the true basis reaches about 0.024, LASSO on all 4 dimensions about 0.13 and ridge
# about 0.19 (baseline_curves, 400 sequences).  Measured with the book model (6 layers, d_model
# 64) on a CPU: bases of rank 3 or 4 were not learned at all in 8,000 steps, and of 4 bases of
# rank 2 in D = 8 only the most frequent was learned in 24,000.  The concepts are drawn with
# unequal frequencies: with equal ones the model stayed on its first plateau (CD at chance after
# 8,000 steps), while 60/40 breaks the symmetry and the model learns B1 first, then B2, without a
# schedule (in 40,000 steps 60/40 reached CD 0.92, 70/30 only 0.83: B2 was seen too rarely).
# The shipped book run is 80,000 steps: at 40,000 its error with the full context (0.070) was
# below LASSO (0.124) but not yet nearer the basis optimum (0.026) on a log scale; at 80,000 it is
# (0.048, in 70 minutes on one thread).
# Evaluation always uses every concept equally often.
CPU_TASK = TaskConfig(D=4, n_bases=2, rank=2, K=5, basis_probs=(0.6, 0.4))


class Batch(NamedTuple):
    """One batch of sequences.

    xs: ``(B, K, D)`` inputs; ys: ``(B, K)`` targets; basis: ``(B,)`` concept index;
    w: ``(B, D)`` the (masked) weight vector of each sequence.
    """

    xs: torch.Tensor
    ys: torch.Tensor
    basis: torch.Tensor
    w: torch.Tensor


def sample_batch(
    cfg: TaskConfig,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    basis: torch.Tensor | int | None = None,
    device: torch.device | str | None = None,
) -> Batch:
    """Draw ``batch_size`` sequences.

    ``basis`` fixes the concept: an int for all sequences or a ``(batch_size,)`` tensor; by default
    each sequence draws a basis, with the probabilities ``cfg.basis_probs`` (uniformly if None).  Sampling happens on the CPU with ``generator`` (so a
    seed gives the same data on every device) and the result is moved to ``device``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = generator
    if basis is None and cfg.basis_probs is not None:
        basis_t = torch.multinomial(torch.tensor(cfg.basis_probs), batch_size, replacement=True, generator=g)
    elif basis is None:
        basis_t = torch.randint(cfg.n_bases, (batch_size,), generator=g)
    elif isinstance(basis, int):
        basis_t = torch.full((batch_size,), basis, dtype=torch.long)
    else:
        basis_t = torch.as_tensor(basis, dtype=torch.long).cpu()
        if basis_t.shape != (batch_size,):
            raise ValueError(f"basis must have shape ({batch_size},), got {tuple(basis_t.shape)}")
    if basis_t.min() < 0 or basis_t.max() >= cfg.n_bases:
        raise ValueError(f"basis indices must lie in [0, {cfg.n_bases}), got {basis_t.tolist()[:8]}")
    mask = cfg.mask()[basis_t]  # (B, D)
    w = torch.randn(batch_size, cfg.D, generator=g) * mask
    xs = torch.randn(batch_size, cfg.K, cfg.D, generator=g)
    ys = torch.einsum("bkd,bd->bk", xs, w) + cfg.noise_std * torch.randn(batch_size, cfg.K, generator=g)
    return Batch(xs.to(device), ys.to(device), basis_t.to(device), w.to(device))


def balanced_basis(cfg: TaskConfig, n_per_basis: int) -> torch.Tensor:
    """Basis labels ``0,..,0,1,..,1,..`` with ``n_per_basis`` of each, shape ``(n_bases * n_per_basis,)``."""
    return torch.arange(cfg.n_bases).repeat_interleave(n_per_basis)
