"""Sparse autoencoders on the organism's residual stream, trained and stored with sae-lens.

One SAE per layer ``L`` reads ``blocks.L.hook_resid_post`` (:func:`llmfeatures.loaders.resid_hook`,
the package's one layer convention).  Training goes through sae-lens' own runner
(:class:`sae_lens.LanguageModelSAERunnerConfig` + :class:`sae_lens.LanguageModelSAETrainingRunner`)
with the trained model and an in-memory ``datasets.Dataset`` of the same packed token rows the
model was trained on; nothing is logged to Weights & Biases.  The default architecture is
BatchTopK (k active latents per token on average over a batch), which sae-lens saves as a
JumpReLU SAE for inference.  SAEs are written with ``SAE.save_model`` and read back with
``SAE.load_from_disk``, so the folders are ordinary sae-lens SAEs.

:func:`sae_metrics` measures what the book's quality bars need: fraction of variance explained,
mean L0 and the share of dead latents on held-out activations.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from sae_lens import SAE
from transformer_lens import HookedTransformer

from llmfeatures.loaders import check_layer, check_sae_matches, resid_hook


@dataclass(frozen=True)
class SAETrainConfig:
    """How to train one residual-stream SAE (the width is ``expansion * d_model``)."""

    expansion: int = 8
    architecture: str = "batchtopk"  # or "topk", "standard" (L1), "jumprelu"
    k: float = 16  # mean active latents per token (topk / batchtopk)
    l1_coefficient: float = 5.0  # only for "standard"
    training_tokens: int = 1_000_000
    batch_tokens: int = 4096
    lr: float = 1e-3
    dead_window: int = 50  # steps without firing after which a latent counts as dead (aux loss)
    aux_coefficient: float = 1.0  # weight of the loss that revives dead latents (topk/batchtopk)
    store_batch_rows: int = 32  # model batch (rows) when collecting activations
    n_batches_in_buffer: int = 16


def _training_sae_config(d_in: int, cfg: SAETrainConfig, device: str):
    import sae_lens

    common = {
        "d_in": d_in,
        "d_sae": cfg.expansion * d_in,
        "device": device,
        "dtype": "float32",
        "normalize_activations": "expected_average_only_in",
    }
    arch = cfg.architecture
    if arch == "batchtopk":
        return sae_lens.BatchTopKTrainingSAEConfig(
            k=float(cfg.k), aux_loss_coefficient=cfg.aux_coefficient, **common
        )
    if arch == "topk":
        return sae_lens.TopKTrainingSAEConfig(
            k=int(cfg.k), aux_loss_coefficient=cfg.aux_coefficient, **common
        )
    if arch == "standard":
        return sae_lens.StandardTrainingSAEConfig(l1_coefficient=cfg.l1_coefficient, **common)
    if arch == "jumprelu":
        return sae_lens.JumpReLUTrainingSAEConfig(**common)
    raise ValueError(
        f"Unknown SAE architecture {arch!r}; choose one of 'batchtopk', 'topk', 'standard', "
        "'jumprelu'."
    )


@contextmanager
def _keep_signal_handlers() -> Iterator[None]:
    """sae-lens installs its own SIGINT/SIGTERM handlers; put the previous ones back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train_sae(
    model: HookedTransformer,
    rows: torch.Tensor,
    layer: int,
    cfg: SAETrainConfig,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> SAE:
    """Train an SAE on layer ``layer`` (``blocks.{layer}.hook_resid_post``) of ``model`` with
    sae-lens' ``LanguageModelSAETrainingRunner``.

    ``rows`` are packed token ids ``[n_rows, n_ctx]`` (each row starts with ``<|bos|>``);
    activations at the special tokens (bos/eos/pad) are left out.  Returns the inference SAE
    (``d_in = d_model``, ``d_sae = expansion * d_model``).
    """
    import datasets
    import sae_lens

    check_layer(layer, model.cfg.n_layers, allow_embed=False)
    if rows.ndim != 2 or rows.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"rows must be [n_rows, n_ctx<={model.cfg.n_ctx}] token ids; got {tuple(rows.shape)}.")
    device = str(device or model.cfg.device)
    ds = datasets.Dataset.from_dict({"input_ids": rows.tolist()})
    runner_cfg = sae_lens.LanguageModelSAERunnerConfig(
        sae=_training_sae_config(model.cfg.d_model, cfg, device),
        model_name=model.cfg.model_name,
        hook_name=resid_hook(layer),
        dataset_path="llmfeatures-organism-corpus",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=rows.shape[1],
        prepend_bos=True,  # metadata: the rows already start with <|bos|>
        exclude_special_tokens=True,
        training_tokens=cfg.training_tokens,
        train_batch_size_tokens=cfg.batch_tokens,
        store_batch_size_prompts=cfg.store_batch_rows,
        # sae-lens' mixing buffer holds n_batches_in_buffer * context_size activations and must
        # hold at least two training batches
        n_batches_in_buffer=max(cfg.n_batches_in_buffer, -(-2 * cfg.batch_tokens // rows.shape[1])),
        n_batches_for_norm_estimate=20,
        lr=cfg.lr,
        lr_scheduler_name="cosineannealing",
        lr_warm_up_steps=max(1, cfg.training_tokens // cfg.batch_tokens // 20),
        lr_decay_steps=max(1, cfg.training_tokens // cfg.batch_tokens // 2),
        dead_feature_window=cfg.dead_window,
        feature_sampling_window=max(cfg.dead_window, 100),
        device=device,
        seed=seed,
        logger=sae_lens.LoggingConfig(log_to_wandb=False),
        checkpoint_path=None,
        output_path=None,
        n_checkpoints=0,
        verbose=False,
    )
    torch.manual_seed(seed)
    sae_logger = logging.getLogger("sae_lens")
    level = sae_logger.level
    with _keep_signal_handlers(), warnings.catch_warnings():
        # sae-lens's notes on what this call does on purpose (an in-memory model and dataset,
        # a small corpus read for several epochs, a model built without from_pretrained): true,
        # expected, and noise in a notebook that happens to build the organism first
        for message in _EXPECTED_SAE_LENS_NOTES:
            warnings.filterwarnings("ignore", message=message)
        sae_logger.setLevel(logging.ERROR)  # "You just passed in a model/dataset ..."
        try:
            runner = sae_lens.LanguageModelSAETrainingRunner(
                runner_cfg, override_model=model, override_dataset=ds
            )
            trained = runner.run()
            return _to_inference(trained)
        finally:
            sae_logger.setLevel(level)


_EXPECTED_SAE_LENS_NOTES = (
    r"The training dataset contains fewer samples",
    r"All samples in the training dataset have been exhausted",
    r"To copy construct from a tensor",
    r"(?s).*non-empty model_from_pretrained_kwargs",
)


def _to_inference(trained) -> SAE:
    """Turn a sae-lens ``TrainingSAE`` into its inference SAE via sae-lens' own disk format."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trained.save_inference_model(tmp)
        return SAE.load_from_disk(tmp, device=str(trained.cfg.device))


def save_sae(sae: SAE, path: str | os.PathLike[str]) -> None:
    """Write ``sae`` to the folder ``path`` in sae-lens' format (``cfg.json`` + safetensors).

    The training runner records TransformerLens ``from_pretrained`` arguments in the SAE's
    metadata; the organism is never loaded with ``from_pretrained``, so they are cleared (sae-lens
    would otherwise warn about them every time the SAE is loaded).
    """
    if getattr(sae.cfg, "metadata", None) is not None:
        sae.cfg.metadata.model_from_pretrained_kwargs = {}
    sae.save_model(str(path))


def load_sae_folder(
    path: str | os.PathLike[str],
    model: HookedTransformer | None = None,
    device: str | torch.device = "cpu",
) -> SAE:
    """Load an SAE saved with ``sae.save_model(path)`` (``SAE.load_from_disk``); check it reads
    ``model``'s activations (:func:`llmfeatures.loaders.check_sae_matches`) if one is given.

    This is the folder reader behind ``llmfeatures.load_sae(..., path=...)`` and the organism's
    cache; use ``load_sae`` in chapters.
    """
    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(
            f"No saved SAE at {path}: expected cfg.json and the weights written by "
            "sae.save_model(folder); for the organism's SAEs run "
            "`python -m llmfeatures organism build`."
        )
    with warnings.catch_warnings():
        # folders written before save_sae cleared the field still carry it (see save_sae)
        warnings.filterwarnings("ignore", message=".*non-empty model_from_pretrained_kwargs")
        sae = SAE.load_from_disk(str(path), device=str(device))
    if getattr(sae.cfg, "metadata", None) is not None:
        sae.cfg.metadata.model_from_pretrained_kwargs = {}
    if model is not None:
        check_sae_matches(model, sae)
    return sae


def non_special(model: HookedTransformer, rows: torch.Tensor) -> torch.Tensor:
    """``[n_rows, n_ctx]`` bool: the tokens of ``rows`` that are not BOS, EOS or padding (the
    tokens :func:`residual_activations` keeps, in the same row-major order)."""
    special = torch.tensor(
        [t for t in (model.tokenizer.bos_token_id, model.tokenizer.eos_token_id,
                     model.tokenizer.pad_token_id) if t is not None]
    )
    return ~torch.isin(rows.cpu(), special)


@torch.no_grad()
def residual_streams(
    model: HookedTransformer,
    rows: torch.Tensor,
    layers: list[int] | tuple[int, ...],
    batch_size: int = 32,
    skip_special: bool = True,
) -> dict[int, torch.Tensor]:
    """Residual stream of every layer in ``layers`` (``blocks.L.hook_resid_post``) from ONE
    forward pass per batch (stopping after the last of them).

    ``rows`` ``[n_rows, n_ctx]`` -> ``{L: [n_tokens, d_model]}`` on the CPU, tokens in row-major
    order, BOS/EOS/padding dropped unless ``skip_special=False`` (:func:`non_special`).
    """
    layers = sorted(set(layers))
    if not layers:
        raise ValueError("no layers given; pass at least one layer index.")
    for layer in layers:
        check_layer(layer, model.cfg.n_layers, allow_embed=False)
    names = {resid_hook(L): L for L in layers}
    out: dict[int, list[torch.Tensor]] = {L: [] for L in layers}
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size].to(model.cfg.device)
        _, cache = model.run_with_cache(batch, names_filter=lambda n: n in names,
                                        stop_at_layer=layers[-1] + 1)
        keep = non_special(model, batch) if skip_special else None
        for name, L in names.items():
            acts = cache[name].cpu()
            out[L].append(acts[keep] if skip_special else acts.reshape(-1, acts.shape[-1]))
    return {L: torch.cat(v) for L, v in out.items()}


def residual_activations(
    model: HookedTransformer,
    rows: torch.Tensor,
    layer: int,
    batch_size: int = 32,
    skip_special: bool = True,
) -> torch.Tensor:
    """Residual stream of layer ``layer`` (``blocks.{layer}.hook_resid_post``) at every
    (non-special) token of ``rows``.

    ``rows`` ``[n_rows, n_ctx]`` -> activations ``[n_tokens, d_model]`` on the CPU.  Several
    layers of the same rows: :func:`residual_streams` (one pass for all of them).
    """
    return residual_streams(model, rows, [layer], batch_size, skip_special)[layer]


@torch.no_grad()
def sae_metrics(sae: SAE, acts: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Reconstruction and sparsity of ``sae`` on activations ``acts`` ``[n_tokens, d_in]``.

    Returns ``fve`` (1 - residual variance / total variance), ``l0`` (mean active latents per
    token), ``dead_frac`` (share of latents never active on these tokens) and ``n_tokens``.
    """
    if acts.ndim != 2 or acts.shape[1] != sae.cfg.d_in:
        raise ValueError(f"acts must be [n_tokens, {sae.cfg.d_in}]; got {tuple(acts.shape)}.")
    from sae_lens.saes.topk_sae import TopK

    from llmfeatures.features.engine import sparse_encode

    # a TopK SAE is encoded and decoded sparsely (sae-lens's sparse path), else densely
    topk = isinstance(getattr(sae, "activation_fn", None), TopK)
    device = next(sae.parameters()).device
    mean = acts.mean(0)
    sse = sst = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=device)
    for i in range(0, len(acts), batch_size):
        x = acts[i : i + batch_size].to(device)
        if topk:
            t, u, v = sparse_encode(sae, x)
            f = torch.sparse_coo_tensor(torch.stack([t, u]), v, (len(x), sae.cfg.d_sae))
            x_hat = sae.decode(f)
            l0 += len(v)
            fired[u] = True
        else:
            f = sae.encode(x)
            x_hat = sae.decode(f)
            active = f > 0
            l0 += active.sum().item()
            fired |= active.any(0)
        sse += (x - x_hat).pow(2).sum().item()
        sst += (x - mean.to(device)).pow(2).sum().item()
    n = len(acts)
    return {
        "fve": 1.0 - sse / sst,
        "l0": l0 / n,
        "dead_frac": 1.0 - fired.float().mean().item(),
        "n_tokens": float(n),
    }
