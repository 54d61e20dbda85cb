"""Check functions for the exercises of chapter 1.  Each runs the reader's function on small cases
with a known answer and raises an ``AssertionError`` saying what differs, or prints a
confirmation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from llmfeatures.emergence.monosemantic import top_purity


def check_purity(fn: Callable[[np.ndarray], np.ndarray]) -> None:
    """``fn(codes [U, k]) -> [U]``: the share of each unit's labelled top examples (code >= 0)
    that carry its most common label; NaN for a unit with no labelled example."""
    codes = np.array([[0, 0, 0, 1], [2, 2, -1, -1], [1, 0, 2, 3], [-1, -1, -1, -1]])
    got = np.asarray(fn(codes.copy()), dtype=float)
    want, _ = top_purity(codes, min_examples=1)
    assert got.shape == want.shape, f"expected shape {want.shape}, got {got.shape}"
    assert np.isnan(got[3]), "unit 3 has no labelled example: its purity must be NaN"
    if np.isclose(got[1], 0.5):
        raise AssertionError("unit 1 has purity 0.5: examples with code -1 (no label) must not "
                             "count in the denominator")
    ok = np.isclose(got[:3], want[:3])
    assert ok.all(), f"unit {int(np.flatnonzero(~ok)[0])}: got {got[:3]}, expected {want[:3]}"
    print("check_purity: correct.")


def _linear_model(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(5, 3, generator=g)
    return w, (lambda x: (x * w).sum((-1, -2)) + 0.5 * (x[..., 0, :] ** 2).sum(-1))


def check_grad_x_input(fn: Callable[[Callable, torch.Tensor], torch.Tensor]) -> None:
    """``fn(f, x [B, T, d]) -> [B, T]``: gradient x input of the scalar ``f(x) [B]`` summed over
    the last axis, i.e. one score per token."""
    w, f = _linear_model()
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(1))
    got = torch.as_tensor(fn(f, x.clone())).detach()
    grads = w + torch.nn.functional.pad(x[:, :1], (0, 0, 0, 4))
    if torch.allclose(got, grads.sum(-1), atol=1e-5):
        raise AssertionError("these are the gradients alone: multiply by the input")
    want = (x * grads).sum(-1)
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.allclose(got, want, atol=1e-5), (
        f"token 0 of row 0: got {float(got[0, 0]):.4f}, expected {float(want[0, 0]):.4f}; the "
        "gradient must be taken of f at x (it is not constant: f has a square term on token 0)")
    print("check_grad_x_input: correct.")


def check_swap_candidates(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """``fn(grad [T, V], k) -> [T, k]``: for each position the ``k`` token ids whose one-hot
    gradient is largest (the swaps that raise the objective most to first order), best first."""
    g = torch.Generator().manual_seed(3)
    grad = torch.randn(4, 30, generator=g)
    got = torch.as_tensor(fn(grad.clone(), 5))
    want = grad.topk(5, dim=-1).indices
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    if torch.equal(got, (-grad).topk(5, dim=-1).indices):
        raise AssertionError("these are the most negative gradients: we maximise the activation")
    assert torch.equal(got.long(), want), f"position 0: got {got[0].tolist()}, want {want[0].tolist()}"
    print("check_swap_candidates: correct.")
