"""Check functions for the exercises of chapter 2.  Each runs the reader's function on cases
with a known answer, compares with the package (or TransformerLens) and raises an
``AssertionError`` that says what differs, or prints a confirmation."""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformer_lens import HookedTransformer

from llmfeatures.circuits.ablation import replacement
from llmfeatures.circuits.heads import previous_token_score


def _random_pattern(g: torch.Generator, batch: int, heads: int, pos: int) -> torch.Tensor:
    scores = torch.randn(batch, heads, pos, pos, generator=g)
    causal = torch.ones(pos, pos, dtype=torch.bool).tril()
    return scores.masked_fill(~causal, float("-inf")).softmax(-1)


def check_previous_token_score(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(pattern [batch, head, q, k]) -> [head]``: mean attention from ``q`` to ``q - 1`` over
    the batch and the positions ``q >= 1``."""
    g = torch.Generator().manual_seed(0)
    pos = 6
    exact = torch.zeros(2, 3, pos, pos)
    exact[:, :, 0, 0] = 1
    exact[:, 0, 1:, :] = torch.eye(pos)[:-1]  # head 0: always the previous token
    exact[:, 1, :, 0] = 1  # head 1: always BOS
    exact[:, 2] = torch.ones(pos, pos).tril() / torch.arange(1, pos + 1)[:, None]  # uniform
    want = torch.tensor([1.0, 1 / (pos - 1), float(sum(1 / q for q in range(2, pos + 1))
                                                    / (pos - 1))])
    cases = [(exact, want)]
    for shape in ((4, 2, 9), (1, 5, 3)):
        pat = _random_pattern(g, *shape)
        cases.append((pat, previous_token_score(pat)))
    for pat, expected in cases:
        got = torch.as_tensor(fn(pat.clone())).float().cpu()
        assert got.shape == expected.shape, (
            f"expected one score per head, shape {tuple(expected.shape)}, got {tuple(got.shape)}")
        assert torch.allclose(got, expected, atol=1e-5), (
            f"scores {got.tolist()} differ from {expected.tolist()}: take pattern[..., q, q - 1] "
            "(the diagonal just below the main one) and average over batch and positions")
    print("check_previous_token_score: correct")


def check_logit_lens(fn: Callable, model: HookedTransformer, prompt: str) -> None:
    """``fn(model, cache, layer) -> logits [batch, d_vocab]`` at the last position, read from the
    residual stream after block ``layer`` (``blocks.{layer}.hook_resid_post``) through the final
    LayerNorm and the unembedding.  Compared with ``cache.accumulated_resid(apply_ln=True)``."""
    with torch.no_grad():
        logits, cache = model.run_with_cache(prompt)
        stack = cache.accumulated_resid(apply_ln=True, pos_slice=-1)  # [n_layers + 1, batch, d]
        for layer in range(model.cfg.n_layers):
            want = model.unembed(stack[layer + 1][:, None])[:, 0].float().cpu()
            got = torch.as_tensor(fn(model, cache, layer)).float().cpu()
            assert got.shape == want.shape, (
                f"layer {layer}: expected logits of shape {tuple(want.shape)} (batch, d_vocab) "
                f"at the last position, got {tuple(got.shape)}")
            err = float((got - want).abs().max())
            assert err < 1e-3, (
                f"layer {layer}: your logits differ by up to {err:.3g}; apply model.ln_final to "
                f"blocks.{layer}.hook_resid_post at the last position, then model.unembed")
        top = fn(model, cache, model.cfg.n_layers - 1)
        assert torch.allclose(torch.as_tensor(top).float().cpu(), logits[:, -1].float().cpu(),
                              atol=1e-3), "the last layer's lens must equal the model's logits"
    print("check_logit_lens: correct")


def check_mean_ablation_hook(make_hook: Callable[[int], Callable]) -> None:
    """``make_hook(head) -> hook(z, hook)``: replace ``z[:, :, head]`` (``z``: ``[batch, pos,
    head, d_head]``, ``blocks.L.attn.hook_z``) by its mean over the batch at each position, leave
    the other heads alone, and return ``z``."""
    g = torch.Generator().manual_seed(2)
    for batch, pos, heads, d_head, head in ((5, 7, 4, 3, 2), (3, 4, 2, 8, 0)):
        z = torch.randn(batch, pos, heads, d_head, generator=g)
        out = make_hook(head)(z.clone(), None)
        assert out is not None, "the hook must return the (ablated) activation"
        out = torch.as_tensor(out)
        assert out.shape == z.shape, f"expected shape {tuple(z.shape)}, got {tuple(out.shape)}"
        want = replacement(z, "mean")[:, :, head]
        assert torch.allclose(out[:, :, head], want, atol=1e-6), (
            f"head {head}: expected its mean over the batch (dim 0) at each position; a mean "
            "over positions too loses what the head writes at each place")
        keep = [h for h in range(heads) if h != head]
        assert torch.allclose(out[:, :, keep], z[:, :, keep]), "other heads were changed"
    print("check_mean_ablation_hook: correct")
