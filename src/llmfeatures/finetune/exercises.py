"""Check functions for the exercises of chapter 7.  Each runs the reader's function on small cases
with a known answer and raises an ``AssertionError`` saying what differs, or prints a
confirmation."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from llmfeatures.finetune.analysis import loss_recovered, match_decoders


def _tiny_model(seed: int = 0):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=12,
                                  d_vocab=40, act_fn="gelu", normalization_type="LN", seed=seed)
    return HookedTransformer(cfg).eval()


class _Keep(torch.nn.Module):
    """A stand-in "SAE" that keeps the first ``share`` of the dimensions and zeroes the rest."""

    def __init__(self, share: float):
        super().__init__()
        self.share = share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        k = int(round(self.share * x.shape[-1]))
        out[..., :k] = x[..., :k]
        return out


def check_loss_recovered(fn: Callable) -> None:
    """``fn(model, sae, rows, layer) -> float``: the share of the loss gap between zero-ablating
    ``blocks.layer.hook_resid_post`` and the clean model that splicing ``sae(x)`` in recovers."""
    model = _tiny_model()
    rows = torch.randint(0, 40, (6, 12), generator=torch.Generator().manual_seed(1))
    for sae, what in ((torch.nn.Identity(), "an identity SAE"), (_Keep(0.0), "a zero SAE"),
                      (_Keep(0.5), "an SAE that keeps half of the dimensions")):
        want = loss_recovered(model, sae, rows, 1)["recovered"]
        got = float(fn(model, sae, rows, 1))
        if abs(got - (1 - want)) < 1e-4 and abs(want - 0.5) > 1e-3:
            raise AssertionError(f"for {what} you give {got:.4f}, one minus the answer: the "
                                 "share recovered is (zero - spliced) / (zero - clean)")
        assert abs(got - want) < 1e-4, (
            f"for {what} expected {want:.4f}, got {got:.4f}. Replace the activation with the "
            "reconstruction in a hook on blocks.L.hook_resid_post and compare with zero-ablation")
    print("check_loss_recovered: correct")


def check_hungarian(fn: Callable) -> None:
    """``fn(w_a [U, d], w_b [U, d]) -> match [U]``: the row of ``w_b`` paired with each row of
    ``w_a`` so that the total cosine is the largest possible."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(40, 12))
    perm = rng.permutation(40)
    got = np.asarray(fn(w, w[perm] * rng.uniform(0.5, 2, (40, 1))))
    want = np.argsort(perm)
    assert got.shape == (40,), f"expected 40 partners, got shape {got.shape}"
    assert np.array_equal(got, want), (
        f"a permuted, rescaled copy is not recovered ({(got != want).sum()} of 40 wrong): compare "
        "directions by cosine, not by dot product")
    # random directions, where taking each row's best free partner in turn is not optimal
    a, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    got = np.asarray(fn(a, b))
    want, _ = match_decoders(a, b)
    assert len(set(got.tolist())) == len(got), "two rows got the same partner: pair one-to-one"
    assert np.array_equal(got, want), (
        f"got {got.tolist()}, expected {want.tolist()}: a greedy choice is not the best "
        "assignment; use scipy.optimize.linear_sum_assignment(similarity, maximize=True)")
    print("check_hungarian: correct")


def check_surviving(fn: Callable) -> None:
    """``fn(before [U], after [U'], partner [U]) -> float``: the share of base latents whose
    explanation ``before[i]`` equals ``after[partner[i]]`` (latents with ``partner -1`` fail)."""
    before = np.array(["recipe", "code", "noun", "person", "city", "verb"])
    after = np.array(["verb", "recipe", "noun", "code", "chat", "x", "city"])
    partner = np.array([1, 3, 2, 4, -1, 0])
    want = 4 / 6
    got = float(fn(before, after, partner))
    if abs(got - 5 / 6) < 1e-9:
        raise AssertionError("you count 5 of 6: partner[i] = -1 indexes the last latent; such "
                             "a latent has no partner, so its explanation fails")
    if abs(got - 4 / 5) < 1e-9:
        raise AssertionError("unpaired latents count as failures, not as absent")
    assert abs(got - want) < 1e-9, f"expected {want:.4f}, got {got:.4f}"
    print("check_surviving: correct")
