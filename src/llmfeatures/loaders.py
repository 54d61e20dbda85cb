"""One loader API for every chapter: ``load_model``, ``load_sae`` and ``load_world``.

Each chapter asks for a model by name.  ``"organism"`` (the default) is the small model the
package builds and caches itself, so it works offline on a laptop.  The real models the source
papers studied come from the Hugging Face Hub through TransformerLens and sae-lens:

=================  ======================================  ==========================================
name               TransformerLens model                   residual SAEs (sae-lens release)
=================  ======================================  ==========================================
``gpt2-small``     ``gpt2``                                ``gpt2-small-res-jb``
``gemma-2-2b``     ``google/gemma-2-2b``                   Gemma Scope ``gemma-scope-2b-pt-res(-canonical)``
``gemma-2-9b``     ``google/gemma-2-9b``                   Gemma Scope ``gemma-scope-9b-pt-res-canonical``
``llama-3.1-8b``   ``meta-llama/Llama-3.1-8B``             Llama Scope ``llama_scope_lxr_8x``
``pythia-70m``     ``EleutherAI/pythia-70m-deduped``       ``pythia-70m-deduped-res-sm``
=================  ======================================  ==========================================

Training checkpoints: the organism keeps its own (``organism_checkpoints``); Pythia's are the
Hub revisions ``step<N>`` (:func:`model_checkpoints` lists them), loaded with
``load_model("pythia-70m", checkpoint=N)``.  The other real models are loaded as released.

*Layer numbers mean the same thing for every model and in every chapter*: layer ``L`` is the
residual stream **after** block ``L``, ``blocks.L.hook_resid_post`` (the same tensor as
``blocks.{L+1}.hook_resid_pre``), so layers run ``0..n_layers-1``.  The embeddings (token plus
position, ``blocks.0.hook_resid_pre``) are layer :data:`EMBED` ``= -1`` wherever a function
offers them.  :func:`resid_hook` turns a layer into its hook name; ``load_sae(name, L)`` returns
an SAE trained at ``resid_hook(L)`` (see ``sae.cfg.metadata.hook_name``).

Offline stand-ins
-----------------
``load_model(name, hf_model=..., tokenizer=...)`` converts a Hugging Face model you already hold
without touching the network.  ``HookedTransformer.from_pretrained`` cannot do that on its own:
for most architectures it downloads the Hub config of the *official* model (``AutoConfig``), so a
locally built model with other sizes would not even match, and it rejects local paths as model
names.  We therefore write the model's own config to a temporary folder and use the same
TransformerLens steps ``from_pretrained`` uses (``get_pretrained_model_config`` on that folder,
``get_pretrained_state_dict`` from the model in hand, ``load_and_process_state_dict``).  The
tokenizer is saved and re-read from a temporary folder too, because TransformerLens re-loads it by
its ``name_or_path`` to switch on BOS.  Gemma models are the exception: TransformerLens only
configures them by name (which needs no download), so a Gemma ``hf_model`` goes through
``from_pretrained`` with its official name and must have the real sizes.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from llmfeatures.config import get_device, get_scale

if TYPE_CHECKING:
    from sae_lens import SAE
    from transformer_lens import HookedTransformer

    from llmfeatures.organism.world import World

ORGANISM = "organism"
EMBED = -1  # the layer number of the embeddings (blocks.0.hook_resid_pre)


def resid_hook(layer: int) -> str:
    """Hook name of residual-stream layer ``layer`` under the package's one layer convention.

    ``layer = L >= 0``: ``blocks.L.hook_resid_post``, the stream after block ``L``.
    ``layer = EMBED`` (-1): ``blocks.0.hook_resid_pre``, the embeddings before any block.
    """
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < EMBED:
        raise ValueError(
            f"layer must be an integer >= {EMBED} (layer L = blocks.L.hook_resid_post, "
            f"{EMBED} = the embeddings); got {layer!r}"
        )
    return "blocks.0.hook_resid_pre" if layer == EMBED else f"blocks.{layer}.hook_resid_post"


def check_layer(layer: int, n_layers: int, allow_embed: bool = True) -> int:
    """Return ``layer`` if a model with ``n_layers`` blocks has it, else a ``ValueError`` that
    gives the valid range (``EMBED`` = -1 included when ``allow_embed``)."""
    low = EMBED if allow_embed else 0
    if not isinstance(layer, int) or isinstance(layer, bool) or not low <= layer < n_layers:
        embed = f" ({EMBED} = the embeddings)" if allow_embed else ""
        raise ValueError(
            f"layer {layer!r} is out of range: valid layers are {low}..{n_layers - 1}{embed}; "
            f"layer L is blocks.L.hook_resid_post."
        )
    return layer


class ModelUnavailableError(RuntimeError):
    """A paper-scale model or SAE could not be fetched from the Hugging Face Hub."""


@dataclass(frozen=True)
class PaperModel:
    """How to load one real model and its residual-stream SAEs.

    ``sae_ids`` maps a layer to ``(release, sae_id)`` where the default rule is overridden (for
    instance the exact Gemma Scope SAE a paper used); otherwise the SAE id is
    ``sae_template.format(layer=L, next=L + 1)`` in ``sae_release``.
    """

    name: str
    tl_name: str
    n_layers: int
    d_model: int
    gated: bool
    sae_release: str
    sae_template: str
    from_pretrained_kwargs: Mapping[str, Any] = field(default_factory=dict)
    sae_ids: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    last_layer_sae: str | None = None  # sae id used for the last layer when the template fails
    checkpointed: bool = False  # training checkpoints on the Hub (TransformerLens checkpoint_value)


# Gemma: fold the RMSNorm weights (as the geometry paper's TransformerLens runs did) but keep the
# residual stream as Gemma Scope saw it: no centring (RMSNorm models cannot be centred anyway, and
# the logit soft-cap rules out centring the unembedding).
_GEMMA_KWARGS = MappingProxyType(
    {"fold_ln": True, "center_writing_weights": False, "center_unembed": False}
)

PAPER_MODELS: Mapping[str, PaperModel] = MappingProxyType(
    {
        "gpt2-small": PaperModel(
            name="gpt2-small",
            tl_name="gpt2",
            n_layers=12,
            d_model=768,
            gated=False,
            sae_release="gpt2-small-res-jb",
            # the release is keyed by resid_pre; resid_pre of block L+1 = resid_post of block L
            sae_template="blocks.{next}.hook_resid_pre",
            last_layer_sae="blocks.11.hook_resid_post",
        ),
        "gemma-2-2b": PaperModel(
            name="gemma-2-2b",
            tl_name="google/gemma-2-2b",
            n_layers=26,
            d_model=2304,
            gated=True,
            sae_release="gemma-scope-2b-pt-res-canonical",
            sae_template="layer_{layer}/width_16k/canonical",
            from_pretrained_kwargs=_GEMMA_KWARGS,
            # the geometry paper's lobes analysis used this SAE (16k features, mean L0 about 41)
            sae_ids=MappingProxyType(
                {12: ("gemma-scope-2b-pt-res", "layer_12/width_16k/average_l0_41")}
            ),
        ),
        "gemma-2-9b": PaperModel(
            name="gemma-2-9b",
            tl_name="google/gemma-2-9b",
            n_layers=42,
            d_model=3584,
            gated=True,
            sae_release="gemma-scope-9b-pt-res-canonical",
            sae_template="layer_{layer}/width_16k/canonical",
            from_pretrained_kwargs=MappingProxyType({**_GEMMA_KWARGS, "dtype": "bfloat16"}),
        ),
        "llama-3.1-8b": PaperModel(
            name="llama-3.1-8b",
            tl_name="meta-llama/Llama-3.1-8B",
            n_layers=32,
            d_model=4096,
            gated=True,
            sae_release="llama_scope_lxr_8x",
            sae_template="l{layer}r_8x",
            from_pretrained_kwargs=MappingProxyType({"dtype": "bfloat16"}),
        ),
        # the Pythia suite keeps 154 training checkpoints (log-spaced to step 512, then every
        # 1000 steps to 143000); the deduplicated 70m model has residual SAEs for every layer
        "pythia-70m-deduped": PaperModel(
            name="pythia-70m-deduped",
            tl_name="EleutherAI/pythia-70m-deduped",
            n_layers=6,
            d_model=512,
            gated=False,
            sae_release="pythia-70m-deduped-res-sm",
            sae_template="blocks.{layer}.hook_resid_post",
            checkpointed=True,
        ),
    }
)

MODEL_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "gpt2": "gpt2-small",
        "openai-community/gpt2": "gpt2-small",
        "google/gemma-2-2b": "gemma-2-2b",
        "gemma2-2b": "gemma-2-2b",
        "google/gemma-2-9b": "gemma-2-9b",
        "gemma2-9b": "gemma-2-9b",
        "meta-llama/llama-3.1-8b": "llama-3.1-8b",
        "llama3.1-8b": "llama-3.1-8b",
        "pythia-70m": "pythia-70m-deduped",
        "eleutherai/pythia-70m-deduped": "pythia-70m-deduped",
    }
)

MODEL_NAMES: tuple[str, ...] = (ORGANISM, *PAPER_MODELS)


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def resolve_model_name(name: str) -> str:
    """The canonical name for ``name`` (case-insensitive, aliases allowed), else ``ValueError``."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key in MODEL_NAMES:
        return key
    aliases = {k.lower(): v for k, v in MODEL_ALIASES.items()}
    if key in aliases:
        return aliases[key]
    raise ValueError(
        f"Unknown model name {name!r}. Valid names are {', '.join(MODEL_NAMES)} "
        f"(aliases: {', '.join(sorted(MODEL_ALIASES))})."
    )


# --------------------------------------------------------------------------------------------
# network errors
# --------------------------------------------------------------------------------------------
def model_checkpoints(name: str = ORGANISM, scale: str | None = None) -> list[int]:
    """Training steps at which ``name`` has a checkpoint, for ``load_model(name, checkpoint=...)``.

    The organism's are the steps it saved while training (``scale`` picks the organism); Pythia's
    are the Hub revisions TransformerLens knows (0, 1, 2, 4, ..., 512, 1000, 2000, ..., 143000).
    Other real models are released without checkpoints: ``ValueError``.
    """
    key = resolve_model_name(name)
    if key == ORGANISM:
        from llmfeatures.organism.pipeline import organism_checkpoints

        return organism_checkpoints(scale)
    spec = PAPER_MODELS[key]
    if not spec.checkpointed:
        with_ckpt = [ORGANISM, *(k for k, v in PAPER_MODELS.items() if v.checkpointed)]
        raise ValueError(
            f"{spec.name} is released without training checkpoints; models with checkpoints: "
            f"{', '.join(with_ckpt)}."
        )
    from transformer_lens.loading_from_pretrained import PYTHIA_CHECKPOINTS

    return list(PYTHIA_CHECKPOINTS)


def _check_checkpoint(spec: PaperModel, checkpoint: int) -> int:
    steps = model_checkpoints(spec.name)
    if isinstance(checkpoint, bool) or not isinstance(checkpoint, int) or checkpoint not in steps:
        near = sorted(steps, key=lambda s: abs(s - checkpoint)
                      if isinstance(checkpoint, int) else s)[:3]
        raise ValueError(
            f"{spec.name} has no checkpoint at step {checkpoint!r}; the nearest saved steps are "
            f"{sorted(near)} (model_checkpoints({spec.name!r}) lists all {len(steps)})."
        )
    return checkpoint


def _network_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the Hub could not be reached or refused us".

    ``OSError`` covers ``huggingface_hub``'s ``LocalEntryNotFoundError``, ``OfflineModeIsEnabled``,
    ``HfHubHTTPError`` (and so ``GatedRepoError``), ``requests.ConnectionError`` and the
    ``OSError`` that ``transformers`` raises when it cannot fetch a config; the ``httpx`` and
    ``httpx2`` transport and status errors cover what the Hub client raises underneath.
    """
    types: list[type[BaseException]] = [OSError, TimeoutError]
    # huggingface_hub >= 1 talks to the Hub through httpx (2.x through the httpx2 package); their
    # connection, timeout and HTTP status errors do not derive from OSError
    for module in ("httpx", "httpx2"):
        with contextlib.suppress(ImportError):
            httpx = importlib.import_module(module)
            types += [httpx.TransportError, httpx.HTTPStatusError]
    with contextlib.suppress(ImportError):
        import requests

        types.append(requests.RequestException)
    return tuple(types)


def _unavailable_message(what: str, gated: bool) -> str:
    login = (
        " (for gated Gemma/Llama: accept the licence on the model's Hugging Face page and run "
        "`huggingface-cli login` first)"
        if gated
        else ""
    )
    return (
        f"{what} must be downloaded from the Hugging Face Hub, which cannot be reached from here. "
        f"Run this chapter in Google Colab (the Colab button at the top of the page) or on a "
        f"machine with network access{login}; offline, use name='{ORGANISM}'."
    )


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """Hide TransformerLens 3.x's notice that ``from_pretrained`` leaves in 4.0 (we pin <4)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is deprecated", category=DeprecationWarning)
        yield


@contextlib.contextmanager
def _hub_errors(what: str, gated: bool) -> Iterator[None]:
    """Re-raise Hub and network failures inside the block as :class:`ModelUnavailableError`."""
    try:
        yield
    except _network_error_types() as err:
        kind = type(err).__name__
        raise ModelUnavailableError(
            f"{_unavailable_message(what, gated)}\n(cause: {kind}: {err})"
        ) from err


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
def load_model(
    name: str = ORGANISM,
    *,
    scale: str | None = None,
    checkpoint: int | None = None,
    device: str | None = None,
    hf_model: Any | None = None,
    tokenizer: Any | None = None,
    **kwargs: Any,
) -> HookedTransformer:
    """Load a model as a TransformerLens ``HookedTransformer`` (tokenizer attached).

    Parameters
    ----------
    name:
        ``"organism"`` (built and cached on first use, works offline) or one of
        ``gpt2-small``, ``gemma-2-2b``, ``gemma-2-9b``, ``llama-3.1-8b`` (downloaded from the Hub).
    scale:
        Scale of the organism (``ci``/``book``/``gpu``/``paper``); default ``$LLMFEATURES_SCALE``.
        Real models have one size; the scale is only checked for them.
    checkpoint:
        A training step from :func:`model_checkpoints` (the organism and Pythia only; Pythia's
        are downloaded as the Hub revision ``step<N>``).
    device:
        ``"cuda"``, ``"cpu"``, ...; default :func:`llmfeatures.config.get_device`.
    hf_model, tokenizer:
        A Hugging Face causal LM (and tokenizer) already in memory, converted without any
        download (see the module notes).  Without ``tokenizer`` the official tokenizer is fetched.
    kwargs:
        Extra keyword arguments for ``HookedTransformer.from_pretrained`` (``dtype``,
        ``fold_ln``, ``n_ctx``...), overriding this module's defaults for the model.

    Raises
    ------
    ValueError
        Unknown ``name`` or ``scale`` (the message lists the valid ones).
    ModelUnavailableError
        A real model was asked for and the Hub cannot be reached.
    """
    scale = get_scale(scale)
    key = resolve_model_name(name)
    if key == ORGANISM:
        if hf_model is not None or tokenizer is not None or kwargs:
            extra = sorted(
                [
                    *kwargs,
                    *(["hf_model"] if hf_model is not None else []),
                    *(["tokenizer"] if tokenizer is not None else []),
                ]
            )
            raise TypeError(
                f"load_model('organism') takes only scale, checkpoint and device; got {extra}. "
                "hf_model/tokenizer and from_pretrained options are for the real models."
            )
        from llmfeatures.organism.pipeline import organism_model

        return organism_model(scale=scale, checkpoint=checkpoint, device=device)

    spec = PAPER_MODELS[key]
    dev = str(get_device(device))
    options = {**spec.from_pretrained_kwargs, **kwargs}
    if checkpoint is not None:
        if not spec.checkpointed:
            model_checkpoints(spec.name)  # raises, naming the models that have checkpoints
        if hf_model is not None:
            raise TypeError(
                "pass checkpoint= or hf_model=, not both: a model in hand is already one "
                "checkpoint (convert each stand-in checkpoint with hf_model= on its own)."
            )
        options["checkpoint_value"] = _check_checkpoint(spec, checkpoint)
    if hf_model is not None:
        return _from_hf_model(spec, hf_model, tokenizer, device=dev, options=options)

    from transformer_lens import HookedTransformer

    with _hub_errors(f"The model {spec.name} ({spec.tl_name})", spec.gated), _quiet_deprecation():
        return HookedTransformer.from_pretrained(
            spec.tl_name, device=dev, tokenizer=tokenizer, **options
        )


_PROCESSING_KEYS = (
    "fold_ln",
    "center_writing_weights",
    "center_unembed",
    "fold_value_biases",
    "refactor_factored_attn_matrices",
)


def _from_hf_model(
    spec: PaperModel,
    hf_model: Any,
    tokenizer: Any | None,
    *,
    device: str,
    options: dict[str, Any],
) -> HookedTransformer:
    """Convert an in-memory Hugging Face model to a HookedTransformer without downloading."""
    import torch
    from transformer_lens import HookedTransformer

    if not hasattr(hf_model, "config"):
        raise TypeError(
            f"hf_model must be a transformers PreTrainedModel (with a .config), "
            f"got {type(hf_model).__name__}"
        )
    architecture = type(hf_model).__name__
    if architecture.startswith("Gemma"):
        # TransformerLens configures Gemma from the official name (no download needed), so the
        # model in hand must have the official sizes.
        width = getattr(hf_model.config, "hidden_size", None)
        if width != spec.d_model or not spec.name.startswith("gemma"):
            raise ValueError(
                f"TransformerLens builds Gemma models from their official name only, so hf_model "
                f"must be the real {spec.name} (hidden size {spec.d_model}); got a "
                f"{architecture} of hidden size {width}. Small stand-ins can be GPT-2 or Llama."
            )
        with _hub_errors(f"The tokenizer of {spec.name}", spec.gated), _quiet_deprecation():
            return HookedTransformer.from_pretrained(
                spec.tl_name, hf_model=hf_model, tokenizer=tokenizer, device=device, **options
            )

    import transformer_lens.loading_from_pretrained as loading
    from transformers import AutoTokenizer

    processing = {
        "fold_ln": True,
        "center_writing_weights": True,
        "center_unembed": True,
        "fold_value_biases": True,
        "refactor_factored_attn_matrices": False,
    }
    for k in _PROCESSING_KEYS:
        if k in options:
            processing[k] = bool(options.pop(k))
    dtype = options.pop("dtype", torch.float32)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    n_ctx = options.pop("n_ctx", None)
    if options:
        raise TypeError(
            f"Options {sorted(options)} are not supported with hf_model=; supported: "
            f"{', '.join((*_PROCESSING_KEYS, 'dtype', 'n_ctx'))}."
        )

    work = Path(tempfile.mkdtemp(prefix="llmfeatures-hf-"))
    try:
        # The folder name must not contain 'llama'/'gemma': TransformerLens would then guess the
        # architecture from the name instead of reading the config we write.
        cfg_dir = work / "local-model"
        hf_config = copy.deepcopy(hf_model.config)
        hf_config.architectures = [architecture]
        if getattr(hf_config, "model_type", "") == "gpt2" and "n_ctx" not in hf_config.to_dict():
            # TransformerLens reads n_ctx, which transformers 5 no longer stores for GPT-2
            hf_config.n_ctx = hf_config.n_positions
        hf_config.save_pretrained(cfg_dir)

        if tokenizer is None:
            with _hub_errors(f"The tokenizer of {spec.name} ({spec.tl_name})", spec.gated):
                tokenizer = AutoTokenizer.from_pretrained(spec.tl_name)
        tok_dir = work / "local-tokenizer"
        tokenizer.save_pretrained(tok_dir)
        local_tokenizer = AutoTokenizer.from_pretrained(tok_dir)

        cfg = loading.get_pretrained_model_config(
            str(cfg_dir),
            hf_cfg=hf_model.config.to_dict(),
            fold_ln=processing["fold_ln"],
            device=device,
            dtype=dtype,
            n_ctx=n_ctx,
        )
        cfg.model_name = f"{spec.name}-local"
        cfg.tokenizer_name = None
        if len(local_tokenizer) > cfg.d_vocab:
            raise ValueError(
                f"The tokenizer has {len(local_tokenizer)} tokens but hf_model's vocabulary has "
                f"{cfg.d_vocab}; pass the tokenizer the model was built for."
            )
        state_dict = loading.get_pretrained_state_dict(str(cfg_dir), cfg, hf_model, dtype=dtype)
        model = HookedTransformer(cfg, local_tokenizer, move_to_device=False)
        if model.cfg.output_logits_soft_cap and model.cfg.output_logits_soft_cap > 0:
            processing["center_unembed"] = False
        if model.cfg.normalization_type not in ("LN", "LNPre"):
            processing["center_writing_weights"] = False
        model.load_and_process_state_dict(state_dict, **processing)
        model.move_model_modules_to_device()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model


# --------------------------------------------------------------------------------------------
# SAEs
# --------------------------------------------------------------------------------------------
def sae_release_and_id(
    model_name: str, layer: int, *, release: str | None = None, sae_id: str | None = None
) -> tuple[str, str]:
    """The sae-lens ``(release, sae_id)`` for the residual stream after block ``layer``.

    Checked against sae-lens's own directory of pretrained SAEs, so a bad layer fails here, with
    the valid layers in the message, before anything is downloaded.
    """
    key = resolve_model_name(model_name)
    if key == ORGANISM:
        raise ValueError("the organism's SAEs are not on the Hub; use load_sae('organism', layer)")
    spec = PAPER_MODELS[key]
    if release is not None and sae_id is None and release != spec.sae_release:
        raise ValueError(
            f"release={release!r} needs an explicit sae_id=...; the layer rule only knows "
            f"{spec.sae_release!r}."
        )
    if sae_id is not None:
        return (release or spec.sae_release), sae_id
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise TypeError(f"layer must be an int, got {type(layer).__name__}")
    if not 0 <= layer < spec.n_layers:
        raise ValueError(
            f"layer {layer} is out of range for {spec.name}: it has {spec.n_layers} blocks, "
            f"so valid layers are 0..{spec.n_layers - 1}."
        )
    if layer in spec.sae_ids:
        return spec.sae_ids[layer]
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    known = get_pretrained_saes_directory()[spec.sae_release].saes_map
    candidate = spec.sae_template.format(layer=layer, next=layer + 1)
    if candidate not in known and spec.last_layer_sae is not None and layer == spec.n_layers - 1:
        candidate = spec.last_layer_sae
    if candidate not in known:
        valid = [
            L
            for L in range(spec.n_layers)
            if L in spec.sae_ids or spec.sae_template.format(layer=L, next=L + 1) in known
        ]
        raise ValueError(
            f"sae-lens release {spec.sae_release!r} has no SAE {candidate!r} for layer {layer} of "
            f"{spec.name}; layers with SAEs: {valid}. Pass release=... and sae_id=... explicitly."
        )
    return spec.sae_release, candidate


def _sae_expected_width(model: HookedTransformer, sae: SAE) -> int:
    hook = sae.cfg.metadata.hook_name or ""
    if sae.cfg.reshape_activations == "hook_z" or hook.endswith("hook_z"):
        return model.cfg.n_heads * model.cfg.d_head
    return model.cfg.d_model


def check_sae_matches(model: HookedTransformer, sae: SAE) -> None:
    """Raise ``ValueError`` unless ``sae`` reads activations of ``model``'s width at a real hook.

    The SAE's input width ``sae.cfg.d_in`` must equal the width of the hooked activation
    (``d_model`` for the residual stream, ``n_heads * d_head`` for ``hook_z``); its hook name,
    when recorded, must be one of the model's hook points.
    """
    expected = _sae_expected_width(model, sae)
    hook = sae.cfg.metadata.hook_name
    model_name = getattr(model.cfg, "model_name", "the model")
    if sae.cfg.d_in != expected:
        raise ValueError(
            f"SAE/model mismatch: the SAE reads vectors of width d_in={sae.cfg.d_in} "
            f"(hook {hook!r}), but {model_name} has width {expected} there "
            f"(d_model={model.cfg.d_model}). Load the SAE trained for this model, e.g. "
            f"load_sae(<same model name>, layer)."
        )
    if hook and hook not in model.hook_dict:
        raise ValueError(
            f"SAE/model mismatch: the SAE was trained at hook {hook!r}, which {model_name} does "
            f"not have (it has {model.cfg.n_layers} layers); pick a layer below {model.cfg.n_layers}."
        )


def load_sae(
    model_name: str,
    layer: int,
    *,
    scale: str | None = None,
    release: str | None = None,
    sae_id: str | None = None,
    path: str | Path | None = None,
    device: str | None = None,
    model: HookedTransformer | None = None,
) -> SAE:
    """Load the sae-lens SAE on the residual stream after block ``layer`` of ``model_name``.

    ``"organism"`` SAEs are built and cached on first use; real models' SAEs come from the Hub
    (``release``/``sae_id`` override the defaults in :data:`PAPER_MODELS`).  ``path=`` loads an SAE
    saved with ``sae.save_model(path)`` instead.  When ``model`` is given, or the model is a known
    real one, the SAE's width is checked against it (:func:`check_sae_matches`).

    Raises
    ------
    ValueError
        Unknown model name or scale, bad layer, or an SAE whose width does not match the model.
    FileNotFoundError
        ``path`` has no saved SAE.
    ModelUnavailableError
        The SAE must come from the Hub and the Hub cannot be reached.
    """
    scale = get_scale(scale)
    key = resolve_model_name(model_name)
    dev = str(get_device(device))
    if path is not None:
        from llmfeatures.organism.sae import load_sae_folder

        sae = load_sae_folder(path, device=dev)
    elif key == ORGANISM:
        if release is not None or sae_id is not None:
            raise ValueError("release/sae_id are for Hub SAEs; the organism's SAEs are local")
        from llmfeatures.organism.pipeline import organism_sae

        sae = organism_sae(layer, scale=scale, device=device)
    else:
        spec = PAPER_MODELS[key]
        rel, sid = sae_release_and_id(key, layer, release=release, sae_id=sae_id)
        from sae_lens import SAE

        with _hub_errors(f"The SAE {rel}/{sid} for {spec.name}", gated=False):
            sae = SAE.from_pretrained(release=rel, sae_id=sid, device=dev)

    if model is not None:
        check_sae_matches(model, sae)
    elif key in PAPER_MODELS and sae.cfg.d_in != PAPER_MODELS[key].d_model:
        spec = PAPER_MODELS[key]
        raise ValueError(
            f"SAE/model mismatch: the SAE reads vectors of width d_in={sae.cfg.d_in}, but "
            f"{spec.name}'s residual stream has d_model={spec.d_model}. Load an SAE trained on "
            f"{spec.name} (or pass the model it belongs to)."
        )
    return sae


# --------------------------------------------------------------------------------------------
# world
# --------------------------------------------------------------------------------------------
def load_world(scale: str | None = None) -> World:
    """The organism's generated world (facts, relations, documents, ground truth) at ``scale``."""
    scale = get_scale(scale)
    from llmfeatures.organism.world import build_world

    return build_world(scale=scale)


__all__ = [
    "MODEL_ALIASES",
    "MODEL_NAMES",
    "ORGANISM",
    "PAPER_MODELS",
    "ModelUnavailableError",
    "PaperModel",
    "check_sae_matches",
    "load_model",
    "load_sae",
    "load_world",
    "resid_hook",
    "resolve_model_name",
    "sae_release_and_id",
]
