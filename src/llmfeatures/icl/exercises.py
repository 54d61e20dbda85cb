"""Check functions for the exercises of chapter 6.  Each takes the reader's function, runs it on
small random cases against the package's reference implementation and raises an
``AssertionError`` that says what differs, or prints a confirmation."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmfeatures.icl.baselines import basis_least_squares
from llmfeatures.icl.decodability import knn_predict
from llmfeatures.icl.tasks import TaskConfig, sample_batch


def check_knn(fn: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]) -> None:
    """``fn(reps (N, d), labels (N,), k) -> predicted labels (N,)``: leave-one-out k-NN vote.

    Two classes and odd k, so the vote never ties."""
    g = torch.Generator().manual_seed(0)
    for N, d, k, sep in ((40, 3, 5, 1.0), (60, 8, 9, 0.3), (30, 2, 1, 2.0)):
        labels = torch.randint(2, (N,), generator=g)
        reps = torch.randn(N, d, generator=g) + sep * labels[:, None].float()
        want = knn_predict(reps, labels, k)
        got = torch.as_tensor(fn(reps, labels, k)).long().cpu()
        assert got.shape == (N,), f"expected shape ({N},), got {tuple(got.shape)}"
        wrong = (got != want).nonzero().flatten().tolist()
        assert not wrong, (
            f"N={N}, k={k}: predictions differ at points {wrong[:5]}; is each point excluded "
            "from its own neighbours?"
        )
    print("check_knn: correct")


def check_basis_least_squares(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(xs (B, K, D), ys (B, K), mask (B, D) bool) -> predictions (B, K)``."""
    cfg = TaskConfig(K=10, noise_std=0.1)
    b = sample_batch(cfg, 16, generator=torch.Generator().manual_seed(3))
    xs, ys, mask = b.xs.double(), b.ys.double(), cfg.mask()[b.basis]
    want = basis_least_squares(xs, ys, mask)
    got = torch.as_tensor(fn(xs, ys, mask)).double()
    assert got.shape == want.shape, f"expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    err = (got - want).abs().max(0).values
    bad = [n for n in range(cfg.K) if err[n] > 1e-6]
    assert not bad, (
        f"predictions differ after n = {bad} examples (max error {float(err.max()):.3g}); "
        "n = 0 should predict 0 and n < rank needs the minimum-norm solution (pinv)"
    )
    print("check_basis_least_squares: correct")


def check_patch_hook(make_hook: Callable[[torch.Tensor, torch.Tensor], Callable]) -> None:
    """``make_hook(mean (T, d), positions (P,)) -> hook(act (B, T, d), hook) -> act`` that puts
    ``mean`` at ``positions`` and leaves the rest untouched."""
    g = torch.Generator().manual_seed(1)
    act = torch.randn(3, 8, 4, generator=g)
    mean = torch.randn(8, 4, generator=g)
    positions = torch.tensor([2, 4, 6])
    out = make_hook(mean, positions)(act.clone(), None)
    assert out is not None, "the hook must return the (patched) activation"
    assert torch.allclose(out[:, positions], mean[positions].expand(3, -1, -1)), "patched positions wrong"
    keep = torch.tensor([0, 1, 3, 5, 7])
    assert torch.allclose(out[:, keep], act[:, keep]), "positions outside `positions` were changed"
    print("check_patch_hook: correct")
