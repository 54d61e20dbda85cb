"""Figures shared by several chapters: attention patterns, heatmaps, loss curves.

Chapter-specific figures live with their chapter's module; what more than one chapter draws lives
here, with one consistent style.  Every function takes an optional ``ax`` and returns the
``matplotlib.axes.Axes`` it drew on, so figures compose into subplots.

The book's style (:data:`BOOK_RC`, applied by the :func:`book_style` decorator) keeps figures
readable on a page: the book's text column is about 800 px wide at a 1280 px window, a figure is
drawn at 100 dpi, so a figure at most :data:`MAX_WIDTH` inches wide is shown near full size and
its 10-point text stays about 13 px high.  ``tests/test_browser.py`` measures the drawn size.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes

MAX_WIDTH = 8.0  # inches at 100 dpi: what the book's text column shows without shrinking much
BOOK_RC = {
    "figure.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "legend.title_fontsize": 10,
    "lines.markersize": 5,
    "lines.linewidth": 1.6,
}

F = TypeVar("F", bound=Callable)


def book_style(func: F) -> F:
    """Decorator: draw with :data:`BOOK_RC` (sizes are fixed when text is made), then put back
    those settings only.

    Not ``plt.rc_context``: that restores *every* setting, and when a figure is the first of a
    Jupyter session it would undo ``interactive``, which the inline backend turns on while the
    figure is made; no later figure of the notebook would then be shown.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        saved = {key: plt.rcParams[key] for key in BOOK_RC}
        plt.rcParams.update(BOOK_RC)
        try:
            return func(*args, **kwargs)
        finally:
            plt.rcParams.update(saved)

    return wrapper  # type: ignore[return-value]


def fit_column(func: F) -> F:
    """Decorator for a function that draws a figure: :func:`book_style`, and a figure wider than
    :data:`MAX_WIDTH` is scaled down to it (height in proportion) and laid out again, so the page
    shows it near full size and its text stays readable."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        out = book_style(func)(*args, **kwargs)
        fig = getattr(out, "figure", None) if not isinstance(out, plt.Figure) else out
        if fig is None and isinstance(out, tuple | list):
            fig = next((getattr(o, "figure", o) for o in out
                        if isinstance(getattr(o, "figure", o), plt.Figure)), None)
        if not isinstance(fig, plt.Figure) and plt.get_fignums():
            fig = plt.gcf()
        if isinstance(fig, plt.Figure):
            # the page shows the figure's tight bounding box (legends and labels outside the
            # axes included), so that is what must fit; two rounds settle the layout
            for _ in range(2):
                w, h = fig.get_size_inches()
                with contextlib.suppress(Exception):
                    w_shown = fig.get_tightbbox(fig.canvas.get_renderer()).width
                    w_shown = max(w_shown, w) if w > MAX_WIDTH else w_shown
                if w_shown <= MAX_WIDTH:
                    break
                scale = MAX_WIDTH / w_shown
                fig.set_size_inches(w * scale, h * scale)
                if not fig.get_constrained_layout():
                    # colour-bar axes are not tight_layout's kind: lay out the rest, quietly
                    with warnings.catch_warnings(), contextlib.suppress(Exception):
                        warnings.simplefilter("ignore")
                        fig.tight_layout()
        return out

    return wrapper  # type: ignore[return-value]


def fit_module_figures(namespace: dict) -> None:
    """Apply :func:`fit_column` to every ``plot_*`` function defined in a module's namespace
    (call at the end of a chapter's ``plots`` module with ``globals()``)."""
    for name, obj in list(namespace.items()):
        if name.startswith("plot_") and callable(obj) and getattr(obj, "__module__", None) == \
                namespace.get("__name__"):
            namespace[name] = fit_column(obj)


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


@book_style
def plot_attention_pattern(
    pattern: torch.Tensor | np.ndarray,
    tokens: Sequence[str],
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Draw one head's attention pattern as a heatmap.

    Parameters
    ----------
    pattern:
        Attention weights, shape ``[query_pos, key_pos]`` (rows sum to one).
    tokens:
        The string tokens, length ``pos``; labels for both axes.
    """
    pat = _to_numpy(pattern)
    if pat.ndim != 2 or pat.shape[0] != pat.shape[1]:
        raise ValueError(f"pattern must be a square [query_pos, key_pos] matrix, got shape {pat.shape}")
    if len(tokens) != pat.shape[0]:
        raise ValueError(f"got {len(tokens)} tokens for a pattern over {pat.shape[0]} positions")
    if ax is None:
        size = max(3.0, 0.35 * len(tokens) + 1.5)
        _, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(pat, cmap="Blues", vmin=0.0, vmax=1.0)
    labels = [repr(t)[1:-1] for t in tokens]
    ax.set_xticks(range(len(tokens)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), labels, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return ax


@book_style
def plot_heatmap(
    values: torch.Tensor | np.ndarray,
    *,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    cmap: str = "viridis",
    annotate: bool = False,
    fmt: str = ".2f",
    ax: Axes | None = None,
    **imshow_kwargs,
) -> Axes:
    """A labelled heatmap of a ``[rows, cols]`` matrix, optionally with values written in cells."""
    mat = _to_numpy(values)
    if mat.ndim != 2:
        raise ValueError(f"values must be 2-D [rows, cols], got shape {mat.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4, 0.5 * mat.shape[1] + 2), max(3, 0.4 * mat.shape[0] + 1.5)))
    im = ax.imshow(mat, cmap=cmap, aspect="auto", **imshow_kwargs)
    if xlabels is not None:
        ax.set_xticks(range(mat.shape[1]), list(xlabels), rotation=45, ha="right")
    if ylabels is not None:
        ax.set_yticks(range(mat.shape[0]), list(ylabels))
    if annotate:
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(j, i, format(mat[i, j], fmt), ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax)
    return ax
