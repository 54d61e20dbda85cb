"""One place for the settings every chapter shares: the scale, the device, the seed, the cache.

The *scale* decides how big every experiment is.  It is read from the environment variable
``LLMFEATURES_SCALE`` and nowhere else, so a notebook never needs editing to run bigger:

========  ==========================================================================
``ci``    the smallest runs that still show each effect; tests and CI use it
``book``  the default: what the rendered book executes on two CPU cores
``gpu``   bigger runs for a single GPU (Colab, a workstation)
``paper`` the sizes of the source papers
========  ==========================================================================

Each module keeps its own presets in a dict keyed by these names and calls
:func:`pick` to choose one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

SCALES: tuple[str, ...] = ("ci", "book", "gpu", "paper")
DEFAULT_SCALE = "book"
SCALE_ENV = "LLMFEATURES_SCALE"
HOME_ENV = "LLMFEATURES_HOME"
DEVICE_ENV = "LLMFEATURES_DEVICE"

T = TypeVar("T")


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is a known scale name, else raise a ``ValueError`` naming the valid ones."""
    if scale not in SCALES:
        raise ValueError(
            f"Unknown scale {scale!r}. Valid scales are {', '.join(SCALES)}; "
            f"set one with the environment variable {SCALE_ENV} or pass scale=..."
        )
    return scale


def get_scale(scale: str | None = None) -> str:
    """The scale in force: ``scale`` if given, else ``$LLMFEATURES_SCALE``, else ``"book"``."""
    if scale is None:
        scale = os.environ.get(SCALE_ENV, "").strip() or DEFAULT_SCALE
    return check_scale(scale)


def pick(presets: Mapping[str, T], scale: str | None = None) -> T:
    """Choose the preset for the scale in force from a ``{scale: preset}`` mapping."""
    scale = get_scale(scale)
    missing = [s for s in SCALES if s not in presets]
    if missing:
        raise KeyError(f"preset table lacks scales {missing}; every table needs all of {SCALES}")
    return presets[scale]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """Pick the device: ``device`` if given, else ``$LLMFEATURES_DEVICE``, else cuda > mps > cpu."""
    if device is None:
        device = os.environ.get(DEVICE_ENV, "").strip() or None
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {device!r} was requested but CUDA is not available here; "
                "use device='cpu' or unset LLMFEATURES_DEVICE."
            )
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU ``torch.Generator`` seeded alike."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds legacy global-state users too
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def progress_disabled(progress: bool = True) -> bool:
    """The ``disable=`` argument for a tqdm bar: off when ``progress`` is false or the
    environment sets ``TQDM_DISABLE`` (book builds do).  tqdm itself ignores that variable
    once ``disable`` is passed explicitly, so every bar in the package goes through here."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return not progress or env not in ("", "0", "false", "no")


def cache_home() -> Path:
    """Root of the on-disk cache: ``$LLMFEATURES_HOME`` or the user's cache folder."""
    env = os.environ.get(HOME_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llmfeatures"))


def describe() -> dict[str, str]:
    """A small summary of the environment, for the first cell of a notebook."""
    return {
        "scale": get_scale(),
        "device": str(get_device()),
        "torch": torch.__version__,
        "cuda": str(torch.cuda.is_available()),
        "cache": str(cache_home()),
    }
