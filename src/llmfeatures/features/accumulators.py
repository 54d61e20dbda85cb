"""Streaming accumulators of the feature engine: each sees one batch at a time, keeps O(features).

- :class:`GroupTopK` keeps, for each of ``G`` groups, the ``r`` entries with the largest keys
  (ties broken by the smaller global token index, so the result does not depend on how the
  stream was cut into batches).  With the activation as key it is the top-k activating tokens of
  every feature; with a pseudo-random key it is a uniform sample (a reservoir) per group.
- :func:`log_bins` / :func:`bin_index` define the log-spaced activation histogram.
- :class:`GroupSample` keeps uniform samples per group (reservoirs keyed by :func:`hash_uniform`).
"""

from __future__ import annotations

import math

import torch


def hash_uniform(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pseudo-random numbers in ``[0, 1)`` that depend only on the integer pairs ``(a, b)``.

    The fractional part of a scaled sine (a classic cheap hash), in float64; used to draw
    reservoir samples that are the same whatever the batch size.  ``a``, ``b``: int64 tensors of
    one shape -> float64 of that shape.
    """
    x = torch.sin(a.double() * 12.9898 + b.double() * 78.233 + seed * 37.719) * 43758.5453
    return x - torch.floor(x)


def log_bins(lo: float, hi: float, n_bins: int) -> torch.Tensor:
    """Edges of ``n_bins`` log-spaced bins from ``lo`` to ``hi`` (``float64 [n_bins + 1]``)."""
    if not 0 < lo < hi or n_bins < 1:
        raise ValueError(f"need 0 < lo < hi and n_bins >= 1; got lo={lo}, hi={hi}, n_bins={n_bins}.")
    return torch.logspace(math.log10(lo), math.log10(hi), n_bins + 1, dtype=torch.float64)


def bin_index(values: torch.Tensor, lo: float, hi: float, n_bins: int) -> torch.Tensor:
    """Histogram slot of each positive value: 0 below ``lo``, ``1..n_bins`` inside, ``n_bins+1``
    at or above ``hi`` (so a histogram has ``n_bins + 2`` slots).  ``values`` > 0, any shape."""
    step = (math.log(hi) - math.log(lo)) / n_bins
    idx = torch.floor((torch.log(values.float()) - math.log(lo)) / step).long() + 1
    return idx.clamp_(0, n_bins + 1)


def _order_key(values: torch.Tensor) -> torch.Tensor:
    """int64 keys that sort like ``-values`` (float32 values; larger value -> smaller key)."""
    bits = values.float().contiguous().view(torch.int32).long()
    ordered = torch.where(bits < 0, -(bits & 0x7FFFFFFF) - 1, bits)  # monotone in the value
    return (2**31 - 1) - ordered  # in [0, 2**32)


class GroupTopK:
    """The ``r`` largest values per group, with their global token index (ties: smaller index).

    State: ``values [G, r]`` (float32, sorted descending; ``-inf`` in empty slots) and
    ``ids [G, r]`` (int64 global token index, ``-1`` for empty slots).
    """

    def __init__(self, n_groups: int, r: int, device: torch.device | str = "cpu"):
        if r < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        if n_groups >= 2**30:
            raise ValueError(f"too many groups ({n_groups}); at most 2**30.")
        self.r = r
        self.values = torch.full((n_groups, r), -math.inf, dtype=torch.float32, device=device)
        self.ids = torch.full((n_groups, r), -1, dtype=torch.int64, device=device)

    def update(self, groups: torch.Tensor, values: torch.Tensor, ids: torch.Tensor) -> None:
        """Offer entries (1-D tensors of one length); keep the best ``r`` per group.

        An entry below its group's current ``r``-th value is dropped at once, so once the
        buffers fill up a batch costs about one comparison per entry.
        """
        values = values.float()
        keep = values >= self.values[groups, -1]
        if not bool(keep.any()):
            return
        groups, values, ids = groups[keep], values[keep], ids[keep]
        touched = torch.zeros(len(self.values), dtype=torch.bool, device=values.device)
        touched[groups] = True
        touched = touched.nonzero(as_tuple=True)[0]
        r = self.r
        g = torch.cat([touched.repeat_interleave(r), groups])
        v = torch.cat([self.values[touched].reshape(-1), values])
        i = torch.cat([self.ids[touched].reshape(-1), ids])
        # order: group ascending, value descending, then token index ascending (so ties do not
        # depend on batching); empty slots (value -inf, id -1) sort last in their group
        order = torch.argsort(torch.where(i < 0, torch.iinfo(torch.int64).max, i))
        key = (g[order] << 32) | _order_key(v[order])
        order = order[torch.argsort(key, stable=True)]
        g, v, i = g[order], v[order], i[order]
        counts = torch.bincount(g, minlength=len(self.values))[touched]
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(g), device=g.device) - torch.repeat_interleave(starts, counts)
        sel = rank < r
        self.values[g[sel], rank[sel]] = v[sel]
        self.ids[g[sel], rank[sel]] = i[sel]


class GroupSample:
    """``r`` uniform samples per group (with replacement): ``r`` one-element reservoirs.

    Reservoir ``j`` keeps, in each group, the entry with the largest pseudo-random key
    ``hash_uniform(id, salt, seed=j)``; as the key depends only on the entry, the sample is the
    same whatever the batches.  State: ``ids [G, r]`` (``-1``: empty) and ``values [G, r]``.
    """

    def __init__(self, n_groups: int, r: int, device: torch.device | str = "cpu"):
        if r < 1:
            raise ValueError(f"r must be >= 1, got {r}")
        self.r = r
        self.keys = torch.full((r, n_groups), -1.0, dtype=torch.float64, device=device)
        self.ids = torch.full((n_groups, r), -1, dtype=torch.int64, device=device)
        self.values = torch.zeros((n_groups, r), dtype=torch.float32, device=device)

    def update(self, groups: torch.Tensor, ids: torch.Tensor, salt: torch.Tensor,
               values: torch.Tensor) -> None:
        for j in range(self.r):
            key = hash_uniform(ids, salt, seed=j)
            best = self.keys[j].scatter_reduce(0, groups, key, reduce="amax")
            win = (key == best[groups]) & (key > self.keys[j][groups])
            self.keys[j] = best
            self.ids[groups[win], j] = ids[win]
            self.values[groups[win], j] = values[win].float()
