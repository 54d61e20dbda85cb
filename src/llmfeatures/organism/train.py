"""Train the organism: a small causal ``HookedTransformer`` on the world's documents.

The loop is deliberately plain (in the spirit of nanoGPT) so a reader can follow every line:

1. :func:`pack_documents` turns documents into rows of ``n_ctx`` token ids.  Each document is
   framed as ``<|bos|> text <|eos|>``; whole documents are packed one after another and every row
   starts at a document boundary, so the model sees ``<|bos|>`` at position 0 just as it does
   when TransformerLens encodes a prompt.
2. :func:`train_model` runs AdamW with a linear warm-up and a cosine decay, shows a tqdm progress
   bar, measures the validation loss at intervals and keeps ``state_dict`` checkpoints at
   log-spaced steps (0, 16, 32, 64, ...) so later chapters can watch features appear.
3. :func:`plot_loss` draws the training and validation loss curves.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import PreTrainedTokenizerBase

from llmfeatures.config import progress_disabled


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the organism's transformer (the vocabulary size comes from the tokenizer)."""

    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 128
    act_fn: str = "gelu"
    normalization_type: str = "LN"
    # token embeddings start at this multiple of TransformerLens's initial scale; a rare word of a
    # briefly trained small model otherwise keeps mostly its random start, which swamps what
    # the corpus taught it (see the book preset)
    embed_init_scale: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for :func:`train_model`."""

    n_steps: int = 1200
    batch_size: int = 32  # rows of n_ctx tokens per step
    lr: float = 2e-3
    min_lr_frac: float = 0.1  # cosine decay ends at lr * min_lr_frac
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 100
    eval_rows: int = 64  # validation rows per evaluation
    checkpoint_steps: tuple[int, ...] = field(default=())  # empty: log-spaced 0, 8, 11, 16, ...

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: linear warm-up over ``warmup_frac`` of the steps (at least
        one), then cosine decay to ``lr * min_lr_frac`` (:func:`scheduled_lr`)."""
        warmup = max(1, int(self.warmup_frac * self.n_steps))
        return scheduled_lr(step, self.lr, self.n_steps, warmup, self.min_lr_frac)


def hooked_config(model: ModelConfig, d_vocab: int, seed: int) -> HookedTransformerConfig:
    """The ``HookedTransformerConfig`` for ``model`` with a vocabulary of ``d_vocab`` tokens."""
    if model.d_model % model.n_heads:
        raise ValueError(
            f"d_model={model.d_model} is not divisible by n_heads={model.n_heads}; "
            "choose n_heads that divides d_model."
        )
    return HookedTransformerConfig(
        n_layers=model.n_layers,
        d_model=model.d_model,
        n_heads=model.n_heads,
        d_head=model.d_model // model.n_heads,
        d_mlp=model.d_mlp,
        n_ctx=model.n_ctx,
        d_vocab=d_vocab,
        act_fn=model.act_fn,
        normalization_type=model.normalization_type,
        positional_embedding_type="standard",
        default_prepend_bos=True,
        model_name="llmfeatures-organism",
        seed=seed,
    )


def pack_documents(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, n_ctx: int
) -> torch.Tensor:
    """Pack documents into rows of ``n_ctx`` token ids, each row starting with ``<|bos|>``.

    Documents are framed as ``<|bos|> text <|eos|>`` and appended to the current row while they
    fit.  When the next one does not fit, the rest of the row is filled with its beginning (so no
    compute is spent on padding) and the document starts afresh in the next row.  A document
    longer than a row is cut into row-sized pieces.

    Returns a ``LongTensor`` of shape ``[n_rows, n_ctx]``.
    """
    if n_ctx < 8:
        raise ValueError(f"n_ctx={n_ctx} is too small to hold a document; use at least 8.")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("pack_documents got no documents; the corpus split is empty.")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    rows: list[list[int]] = []
    row: list[int] = []
    for ids in encoded:
        doc = [bos, *ids, eos]
        if len(row) + len(doc) > n_ctx and row:
            rows.append(row + doc[: n_ctx - len(row)])
            row = []
        while len(doc) > n_ctx:  # a very long document spans several rows
            rows.append(doc[:n_ctx])
            doc = doc[n_ctx:]
        row = row + doc
    if row:  # top up the last row with the first documents again
        filler = [t for ids in encoded for t in (bos, *ids, eos)]
        while len(row) < n_ctx:
            row = row + filler[: n_ctx - len(row)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


def log_spaced_steps(n_steps: int, first: int = 8, per_octave: int = 2) -> list[int]:
    """Checkpoint steps ``0`` and ``round(first * 2**(i / per_octave))`` below ``n_steps``, plus
    ``n_steps``: with the defaults 0, 8, 11, 16, 23, 32, 45, 64, 91, 128, ... (two per doubling,
    so that the early stages of training, where features appear, are seen closely)."""
    if first < 1 or per_octave < 1:
        raise ValueError(f"need first >= 1 and per_octave >= 1; got {first}, {per_octave}.")
    steps = [0]
    i = 0
    while (s := round(first * 2 ** (i / per_octave))) < n_steps:
        if s > steps[-1]:
            steps.append(s)
        i += 1
    steps.append(n_steps)
    return steps


def scheduled_lr(
    step: int, lr: float, n_steps: int, warmup_steps: int, min_lr_frac: float = 0.1,
    cosine: bool = True,
) -> float:
    """The learning rate at ``step`` (0-based) of a linear warm-up and a cosine (or no) decay.

    Steps ``0..warmup_steps-1`` ramp up as ``lr * (step + 1) / warmup_steps``; afterwards the
    rate is ``lr`` (``cosine=False``) or decays along a half cosine from ``lr`` to
    ``lr * min_lr_frac`` at ``n_steps`` and stays there.  Both training loops of the package
    (the organism's and chapter 6's) use it through their configs' ``lr_at(step)``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if not cosine:
        return lr
    progress = min(1.0, (step - warmup_steps) / max(1, n_steps - warmup_steps))
    floor = lr * min_lr_frac
    return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate_loss(model: HookedTransformer, rows: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy of ``model`` on token ``rows`` ``[n_rows, n_ctx]`` (the
    organism's validation loss; chapter 6's regression error is :func:`llmfeatures.icl.train.error_by_basis`)."""
    was_training = model.training
    model.eval()
    device = model.cfg.device
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size].to(device)
        loss = model(batch, return_type="loss", loss_per_token=True)
        total += loss.sum().item()
        count += loss.numel()
    model.train(was_training)
    return total / max(count, 1)


def train_model(
    model: HookedTransformer,
    train_rows: torch.Tensor,
    val_rows: torch.Tensor,
    cfg: TrainConfig,
    seed: int = 0,
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    progress: bool = True,
) -> dict[str, list]:
    """Train ``model`` in place on ``train_rows`` ``[n_rows, n_ctx]``; return the loss history.

    Batches are drawn by a seeded shuffle of the rows (a new permutation every epoch).  At every
    checkpoint step ``on_checkpoint(step, state_dict)`` is called (state on the CPU).  The
    returned history has ``step``/``loss``/``lr`` per step and ``val_step``/``val_loss`` at the
    evaluation steps.
    """
    if len(train_rows) < cfg.batch_size:
        raise ValueError(
            f"Only {len(train_rows)} training rows for batch_size={cfg.batch_size}: the corpus is "
            "too small for this preset. Use more documents or a smaller batch_size."
        )
    device = model.cfg.device
    gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "W_" in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "W_" in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=cfg.betas,
    )
    ckpt_steps = set(cfg.checkpoint_steps or log_spaced_steps(cfg.n_steps))
    val_rows = val_rows[: cfg.eval_rows]
    history: dict[str, list] = {"step": [], "loss": [], "lr": [], "val_step": [], "val_loss": []}

    def checkpoint(step: int) -> None:
        if on_checkpoint is not None and step in ckpt_steps:
            on_checkpoint(step, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})

    def validate(step: int) -> float:
        v = evaluate_loss(model, val_rows)
        history["val_step"].append(step)
        history["val_loss"].append(v)
        return v

    model.train()
    checkpoint(0)
    validate(0)
    order = torch.randperm(len(train_rows), generator=gen)
    cursor = 0
    bar = tqdm(range(1, cfg.n_steps + 1), desc="train organism", disable=progress_disabled(progress))
    for step in bar:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(train_rows), generator=gen), 0
        batch = train_rows[order[cursor : cursor + cfg.batch_size]].to(device)
        cursor += cfg.batch_size
        lr = cfg.lr_at(step - 1)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(batch, return_type="loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        history["lr"].append(lr)
        if step % cfg.eval_every == 0 or step == cfg.n_steps:
            v = validate(step)
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{v:.3f}")
        checkpoint(step)
    model.eval()
    return history


def plot_loss(history: dict[str, list], path: str | os.PathLike[str], title: str = "") -> None:
    """Save the training (smoothed) and validation loss curves as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    steps, loss = np.asarray(history["step"]), np.asarray(history["loss"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, color="0.75", lw=0.8, label="train (per step)")
    if len(loss) >= 20:
        w = max(5, len(loss) // 50)
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax.plot(steps[w - 1 :], smooth, color="C0", label=f"train ({w}-step mean)")
    ax.plot(history["val_step"], history["val_loss"], "o-", color="C1", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title or "Organism training loss")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(Path(path), format="png", dpi=120)
    plt.close(fig)
