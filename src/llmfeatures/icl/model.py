"""The in-context regression transformer: a GPT-2-style TransformerLens ``HookedTransformer``
with a linear read-in of real-valued tokens and a one-number read-out.

A sequence of ``K`` pairs is fed as ``2K`` tokens ``x_1, y_1, x_2, y_2, ...``, each a vector of
size ``D + 1``: an x token is ``[x, 0]``, a y token ``[0, ..., 0, y]`` (``token_format="paper"``).

With ``token_format="pairs"`` the y token also repeats its x: ``[x, y]``.  The model then needs no
previous-token head to bring x next to its y before it can regress, which removes the long initial
plateau that the paper's 80K steps pay for; the small CPU presets use it, the ``gpu`` and ``paper``
presets keep the paper's form.  ``read_in`` (a
``Linear(D+1 -> d_model)``) replaces the token embedding; the learned positional embedding,
the blocks, the final LayerNorm and the unembedding are TransformerLens's own, with
``d_vocab_out = 1`` so that ``unembed`` *is* the linear read-out.  The prediction of ``y_i`` is
read at the position of ``x_i``, i.e. at the token just before the answer.

Because :class:`ICLTransformer` subclasses ``HookedTransformer`` and only swaps the embedding,
every hook keeps its usual name (``hook_embed``, ``hook_pos_embed``,
``blocks.{l}.hook_resid_post``, ``blocks.{l}.attn.hook_pattern``...) and ``run_with_cache`` /
``run_with_hooks`` work on the float inputs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformer_lens import HookedTransformer, HookedTransformerConfig

from llmfeatures.config import get_device

TOKEN_FORMATS = ("paper", "pairs")
ACT_FNS = ("gelu_new", "gelu", "relu", "silu")


@dataclass(frozen=True)
class ICLModelConfig:
    """Architecture of the regression transformer (GPT-2 style, pre-LayerNorm, GELU).

    (The organism's language model has its own :class:`llmfeatures.organism.train.ModelConfig`.)"""

    n_layers: int = 12
    d_model: int = 256
    n_heads: int = 8
    d_mlp: int | None = None  # default 4 * d_model
    token_format: str = "paper"  # or "pairs": the y token repeats its x (see the module notes)
    act_fn: str = "gelu_new"  # GPT-2's tanh GELU; "gelu" (exact, one fused op) is faster on a CPU

    def __post_init__(self) -> None:
        if self.token_format not in TOKEN_FORMATS:
            raise ValueError(f"token_format must be one of {TOKEN_FORMATS}, got {self.token_format!r}")
        if self.act_fn not in ACT_FNS:
            raise ValueError(f"act_fn must be one of {ACT_FNS}, got {self.act_fn!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )


def interleave(xs: torch.Tensor, ys: torch.Tensor, token_format: str = "paper") -> torch.Tensor:
    """Tokens ``x_1, y_1, ..., x_K, y_K`` as vectors of size ``D + 1``.

    xs: ``(B, K, D)``, ys: ``(B, K)`` -> ``(B, 2K, D + 1)``.  ``token_format="pairs"`` repeats
    each x in its y token (see the module notes).
    """
    if token_format not in TOKEN_FORMATS:
        raise ValueError(f"token_format must be one of {TOKEN_FORMATS}, got {token_format!r}")
    if xs.ndim != 3 or ys.shape != xs.shape[:2]:
        raise ValueError(f"need xs (B, K, D) and ys (B, K); got {tuple(xs.shape)}, {tuple(ys.shape)}")
    B, K, D = xs.shape
    tokens = xs.new_zeros(B, K, 2, D + 1)
    tokens[:, :, 0, :D] = xs
    tokens[:, :, 1, D] = ys
    if token_format == "pairs":
        tokens[:, :, 1, :D] = xs
    return tokens.reshape(B, 2 * K, D + 1)


def x_positions(K: int) -> torch.Tensor:
    """Positions of the x tokens (where ``y`` is predicted): ``0, 2, ..., 2K-2``."""
    return torch.arange(0, 2 * K, 2)


class ICLTransformer(HookedTransformer):
    """``HookedTransformer`` on real-valued tokens.

    Call it on ``interleave(xs, ys)`` (shape ``(B, 2K, D+1)``); it returns ``(B, 2K, 1)`` outputs
    (``return_type="logits"``; the prediction of ``y_i`` is at position ``2(i-1)``), or the
    residual stream when ``stop_at_layer`` is given.  Use :meth:`predict` for ``(B, K)``
    predictions.
    """

    def __init__(self, cfg: HookedTransformerConfig, d_input: int, token_format: str = "paper"):
        if cfg.d_vocab_out != 1:
            raise ValueError("ICLTransformer needs d_vocab_out=1 (the unembedding is the read-out)")
        super().__init__(cfg)
        self.d_input = d_input
        self.token_format = token_format
        self.read_in = nn.Linear(d_input, cfg.d_model)
        self.setup()
        self.to(cfg.device, print_details=False)

    def forward(  # type: ignore[override]
        self,
        input: torch.Tensor,
        return_type: str | None = "logits",
        stop_at_layer: int | None = None,
        **kwargs,
    ) -> torch.Tensor | None:
        if input.ndim != 3 or input.shape[-1] != self.d_input:
            raise ValueError(
                f"ICLTransformer takes float tokens of shape (batch, pos, {self.d_input}) made by "
                f"interleave(xs, ys); got {tuple(input.shape)}"
            )
        if input.shape[1] > self.cfg.n_ctx:
            raise ValueError(f"sequence of {input.shape[1]} tokens exceeds n_ctx={self.cfg.n_ctx}")
        if return_type not in ("logits", None):
            raise ValueError("ICLTransformer supports return_type 'logits' or None; compute the MSE with icl_loss")
        B, T, _ = input.shape
        embed = self.hook_embed(self.read_in(input.to(self.read_in.weight.dtype)))
        pos = self.hook_pos_embed(self.pos_embed.W_pos[:T].unsqueeze(0).expand(B, T, -1))
        return super().forward(
            embed + pos, return_type=return_type, start_at_layer=0, stop_at_layer=stop_at_layer,
            **kwargs,
        )

    def tokens(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The model's input for pairs ``(B, K, D), (B, K)``: ``(B, 2K, D + 1)`` in its token format."""
        return interleave(xs, ys, self.token_format)

    def predict(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Predictions of every ``y_i`` from the pairs before it: ``(B, K, D), (B, K) -> (B, K)``."""
        out = self(self.tokens(xs, ys))
        return out[:, 0::2, 0]


def build_model(
    model_cfg: ICLModelConfig,
    D: int,
    K: int,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> ICLTransformer:
    """A freshly initialised :class:`ICLTransformer` for inputs of dimension ``D`` and ``K`` pairs."""
    cfg = HookedTransformerConfig(
        n_layers=model_cfg.n_layers,
        d_model=model_cfg.d_model,
        n_heads=model_cfg.n_heads,
        d_head=model_cfg.d_model // model_cfg.n_heads,
        d_mlp=model_cfg.d_mlp or 4 * model_cfg.d_model,
        n_ctx=2 * K,
        d_vocab=1,
        d_vocab_out=1,
        act_fn=model_cfg.act_fn,
        normalization_type="LN",
        positional_embedding_type="standard",
        attn_only=False,
        seed=seed,
        device=str(get_device(device)),
        default_prepend_bos=False,
    )
    return ICLTransformer(cfg, d_input=D + 1, token_format=model_cfg.token_format)


def icl_loss(preds: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Mean squared error on the y predictions only: ``(B, K), (B, K) -> ()``."""
    return ((preds - ys) ** 2).mean()
