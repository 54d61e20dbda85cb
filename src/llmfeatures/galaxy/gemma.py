"""The paper-scale path: Gemma Scope residual SAEs of Gemma-2-2b, decoder weights only.

Each Gemma Scope SAE is one ``params.npz`` on the Hugging Face Hub (``W_enc``, ``W_dec``,
``b_enc``, ``b_dec``, ``threshold``).  An ``.npz`` is a zip archive, and the Hub serves byte
ranges, so :func:`gemma_scope_decoder` opens the file through ``huggingface_hub.HfFileSystem`` and
reads the ``W_dec`` member alone: half the download of the full SAE, and no encoder in memory.
The SAE of each layer is the sae-lens *canonical* one (release
``gemma-scope-2b-pt-res-canonical``, resolved offline from sae-lens' directory of releases).

Layer ``L`` is ``blocks.L.hook_resid_post`` of Gemma-2-2b (26 layers, d_model 2304).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GEMMA_RELEASE = "gemma-scope-2b-pt-res-canonical"
GEMMA_D_MODEL = 2304
GEMMA_N_LAYERS = 26
WIDTHS = {"16k": 16384, "65k": 65536}


def decoder_bytes(width: str = "16k", n_layers: int = GEMMA_N_LAYERS) -> int:
    """Bytes of ``W_dec`` (float32) read for ``n_layers`` Gemma Scope SAEs of ``width``."""
    if width not in WIDTHS:
        raise ValueError(f"width must be one of {sorted(WIDTHS)}, got {width!r}")
    return WIDTHS[width] * GEMMA_D_MODEL * 4 * n_layers


def gemma_scope_path(layer: int, width: str = "16k", release: str = GEMMA_RELEASE) -> str:
    """``<hub repo>/<folder>/params.npz`` of the canonical Gemma Scope SAE of ``layer``."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    if width not in WIDTHS:
        raise ValueError(f"width must be one of {sorted(WIDTHS)}, got {width!r}")
    if not 0 <= layer < GEMMA_N_LAYERS:
        raise ValueError(f"Gemma-2-2b has layers 0..{GEMMA_N_LAYERS - 1}, got {layer}")
    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise ValueError(f"sae-lens knows no release {release!r}; try {GEMMA_RELEASE!r}")
    entry = directory[release]
    sae_id = f"layer_{layer}/width_{width}/canonical"
    if sae_id not in entry.saes_map:
        raise ValueError(f"release {release} has no SAE {sae_id!r}")
    return f"{entry.repo_id}/{entry.saes_map[sae_id]}/params.npz"


def gemma_scope_decoder(layer: int, width: str = "16k", *, fs=None,
                        d_model: int = GEMMA_D_MODEL) -> np.ndarray:
    """``W_dec [U, d_model]`` (float32) of the canonical Gemma Scope residual SAE of ``layer``.

    ``fs``: an fsspec file system holding the Hub paths (default ``HfFileSystem()``; tests pass a
    stand-in).  Raises :class:`~llmfeatures.loaders.ModelUnavailableError` when the Hub cannot be
    reached and ``ValueError`` when the file holds no ``W_dec`` of width ``d_model``."""
    from llmfeatures.loaders import _hub_errors

    path = gemma_scope_path(layer, width)
    with _hub_errors(f"The Gemma Scope decoder {path}", gated=False):
        if fs is None:
            from huggingface_hub import HfFileSystem

            fs = HfFileSystem()
        with fs.open(path, "rb") as f, np.load(f) as archive:
            if "W_dec" not in archive.files:
                raise ValueError(f"{path} has no W_dec (members: {archive.files})")
            w = np.asarray(archive["W_dec"], dtype=np.float32)
    if w.ndim != 2 or w.shape[1] != d_model:
        raise ValueError(f"{path}: W_dec has shape {w.shape}, expected [U, {d_model}]")
    return w


def gemma_galaxy(layers: Sequence[int] = range(GEMMA_N_LAYERS), width: str = "16k", *, fs=None,
                 config=None, d_model: int = GEMMA_D_MODEL, keep_rows: int | None = 5000):
    """:func:`~llmfeatures.galaxy.galaxy_layers` on Gemma Scope decoders (paper settings:
    ranks 11..150, 5000 rows, PCA to 100 dimensions).  One layer is read and measured at a time;
    ``keep_rows`` random rows of each decoder are kept for the figures.  The download is
    :func:`decoder_bytes` for the chosen width; the peak memory is a few float64 copies of one
    decoder (0.3 GB each at 16k, 1.2 GB at 65k)."""
    from functools import partial

    from llmfeatures.galaxy.analysis import GEMMA_CONFIG, galaxy_layers

    cfg = config or GEMMA_CONFIG
    loaders = {L: partial(gemma_scope_decoder, L, width, fs=fs, d_model=d_model) for L in layers}
    return galaxy_layers(loaders, None, cfg, n_layers=GEMMA_N_LAYERS, keep_rows=keep_rows)
