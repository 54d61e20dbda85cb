"""Helpers for the book's notebooks: the shared Colab set-up cell, glue, writing and stripping.

Every chapter notebook starts with the same code cell, :data:`COLAB_SETUP_SOURCE`.  It installs
the package (and with it the pinned dependencies of ``pyproject.toml``) only when the notebook runs
in Google Colab; elsewhere it does nothing.  ``tests/test_notebooks.py`` checks that every notebook
starts with it, that it names this project's repository, and that notebooks carry no outputs.

Numbers quoted in a notebook's prose come from the run: the code calls :func:`glue` and the text
pastes the value with myst-nb's role, e.g. ``{glue:text}`cd_final:.2f```.
:func:`hand_typed_numbers` finds numbers typed into the prose instead; the tests run it on every
notebook of the book.

Command line::

    python -m llmfeatures.nbtools strip notebooks/*.ipynb
"""

from __future__ import annotations

import json
import numbers
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/llmfeatures/llmfeatures"
# No `book` extra: Colab runs the notebooks itself and needs neither jupyter-book nor jupyterlab.
PACKAGE_SPEC = f"llmfeatures @ git+{REPOSITORY}@main"

# Colab ships its own CUDA build of torch.  The constraint pins it to the version installed, so
# pip keeps it (our range `torch>=2.4,<3` accepts it) and, should a dependency ever demand
# another torch, stops with a resolution error instead of swapping Colab's build for a CPU one.
# pip's output is shown: an install error is visible in the cell.
COLAB_SETUP_SOURCE = f'''# Set-up for Google Colab: install llmfeatures and its pinned dependencies (does nothing elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    from importlib.metadata import version

    with open("/tmp/llmfeatures-constraints.txt", "w") as f:
        f.write(f"torch=={{version('torch')}}\\n")  # keep Colab's own torch build
    subprocess.run([sys.executable, "-m", "pip", "install", "-c", f.name,
                    "{PACKAGE_SPEC}"], check=True)'''


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers, whose ``repr`` myst-nb's formats can read."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Store ``value`` under ``name`` for the page's text (myst-nb's ``glue``) and return it.

    The text pastes it with ``{glue:text}`name:.2f``` (any Python format).  numpy and torch
    scalars are turned into Python numbers first, so formats apply.  Outside a book build
    without myst-nb (Colab installs the package without the ``book`` extra) nothing is stored;
    with ``display=True`` the value is still shown.
    """
    value = _plain(value)
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        if display:
            from IPython.display import display as _display

            _display(value)
        return value
    _myst_glue(name, value, display=display)
    return value


# ------------------------------------------------------------------ numbers typed into prose
# What the prose may contain without glue: numbers in code (inline or fenced: code, preset
# names and values), in glue roles and {{ substitutions }}, in math, in link targets, in
# section and exercise numbers, in names such as Llama-3.1-8B or GPT-2, and in sentences that
# cite a source with a {cite} role (the source's figures).  Anything else that looks like a
# result is reported: a decimal number, a percentage, or a number after "about"/"near"/"~".
_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_ROLE = re.compile(r"\{([\w:.+-]+)\}`[^`]*`")
_CODE = re.compile(r"`[^`]*`")
_SUBST = re.compile(r"\{\{[^}]*\}\}")
_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)
_LINK = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
_HEADING_NUMBER = re.compile(r"^(#+\s+)[\d.]+\s", re.M)
_NAMED_NUMBER = re.compile(
    r"\b(?:exercises?|chapters?|sections?|fig(?:ure)?s?\.?|tables?|steps?|layers?|version)"
    r"\s+\d+(?:\.\d+)*(?:\s*(?:,|and|or|to)\s*\d+(?:\.\d+)*)*", re.I)
_IDENT_NUMBER = re.compile(r"[A-Za-z][\w]*[-_]?\d+(?:\.\d+)+(?:[-\w]*)|\d+(?:\.\d+){2,}")
_RESULT = re.compile(
    r"(?<![\w.])\d*\.\d+(?!\w|\.\d)"                     # 0.83, .5
    r"|\d+(?:\.\d+)?\s?(?:%|per ?cent\b)"                 # 14 %, 20%
    r"|\b(?:about|around|roughly|nearly|near|approximately|almost|some)\s+\d[\d,.]*"
    r"|[~≈]\s?\d[\d,.]*",
    re.I,
)


def _prose(markdown: str) -> str:
    """The prose of a markdown cell: fenced code and directive options dropped."""
    out, fence = [], None
    for line in markdown.splitlines():
        m = _FENCE.match(line.strip())
        if fence is None and m:
            info = m.group(2).strip()
            if info.startswith("{"):  # a directive: keep its body, drop the fence line
                continue
            fence = m.group(1)  # code: skip until the closing fence
            continue
        if fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if _FENCE.match(line.strip()) or re.match(r"^\s*:[\w-]+:", line):
            continue  # closing fence of a directive, or a directive option (:label: ...)
        out.append(line)
    return "\n".join(out)


def hand_typed_numbers(markdown: str) -> list[str]:
    """Results typed into ``markdown`` instead of glued from the run, as short excerpts.

    Empty when every number quoted is glued, in code, a section/exercise number, part of a
    name, or in a sentence that cites its source with a ``{cite}`` role.
    """
    text = _prose(markdown)
    text = _ROLE.sub(lambda m: " CITE " if m.group(1).startswith("cite") else " GLUED ", text)
    text = _CODE.sub(" CODE ", text)
    text = _SUBST.sub(" SUBST ", text)
    text = _MATH.sub(" MATH ", text)
    text = _LINK.sub(" ", text)
    text = _HEADING_NUMBER.sub(r"\1", text)
    text = _NAMED_NUMBER.sub(" NUM ", text)
    text = _IDENT_NUMBER.sub(" NAME ", text)
    found = []
    # sentences: split after . ! ? or a blank line / list item
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z*(])|\n\s*\n|\n\s*[*-]\s", text):
        if "CITE" in sentence:
            continue
        for m in _RESULT.finditer(sentence):
            start = max(0, m.start() - 30)
            found.append(" ".join(sentence[start : m.end() + 20].split()))
    return found


def notebook_markdown(nb: dict) -> list[str]:
    """The sources of a notebook dict's markdown cells."""
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb.get("cells", [])
        if c.get("cell_type") == "markdown"
    ]


def _cell(cell_type: str, source: str) -> dict:
    cell: dict = {"cell_type": cell_type, "metadata": {}, "source": source.strip("\n")}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def write_notebook(path: str | Path, cells: Sequence[tuple[str, str]]) -> Path:
    """Write a notebook from ``[("md" | "code", source), ...]``, prefixed by the Colab set-up cell.

    The notebook is written without outputs, with a Python 3 kernelspec.
    """
    kinds = {"md": "markdown", "markdown": "markdown", "code": "code"}
    nb_cells = []
    for i, (kind, source) in enumerate(cells):
        if kind not in kinds:
            raise ValueError(f"cell {i}: kind must be 'md' or 'code', got {kind!r}")
        nb_cells.append(_cell(kinds[kind], source))
    # The title cell stays first so the book page gets its heading; set-up comes right after.
    insert_at = 1 if nb_cells and nb_cells[0]["cell_type"] == "markdown" else 0
    nb_cells.insert(insert_at, _cell("code", COLAB_SETUP_SOURCE))
    nb = {
        "cells": nb_cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for i, c in enumerate(nb["cells"]):
        c["id"] = f"cell-{i:03d}"
    path = Path(path)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return path


def setup_cell_source(nb: dict) -> str | None:
    """Source of the first code cell of a notebook dict (the Colab set-up cell), or None."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            return "".join(src) if isinstance(src, list) else src
    return None


def has_outputs(nb: dict) -> bool:
    """True if any code cell carries outputs or an execution count."""
    return any(
        c.get("outputs") or c.get("execution_count") is not None
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code"
    )


def strip(paths: Iterable[str | Path]) -> list[Path]:
    """Remove outputs and execution counts from notebooks in place; return those changed."""
    changed = []
    for p in map(Path, paths):
        nb = json.loads(p.read_text())
        if not has_outputs(nb):
            continue
        for c in nb["cells"]:
            if c.get("cell_type") == "code":
                c["outputs"], c["execution_count"] = [], None
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        changed.append(p)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "strip":
        print("usage: python -m llmfeatures.nbtools strip NOTEBOOK...", file=sys.stderr)
        return 2
    for p in strip(argv[1:]):
        print(f"stripped {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
