"""Helpers for the book's notebooks: the shared Colab set-up cell, writing and stripping notebooks.

Every chapter notebook starts with the same code cell, :data:`COLAB_SETUP_SOURCE`.  It installs
the package (and with it the pinned dependencies of ``pyproject.toml``) only when the notebook runs
in Google Colab; elsewhere it does nothing.  ``tests/test_notebooks.py`` checks that every notebook
starts with it, that it names this project's repository, and that notebooks carry no outputs.

Command line::

    python -m llmfeatures.nbtools strip notebooks/*.ipynb
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPOSITORY = "https://github.com/llmfeatures/llmfeatures"
PACKAGE_SPEC = f"llmfeatures[book] @ git+{REPOSITORY}@main"

COLAB_SETUP_SOURCE = f'''# Set-up for Google Colab: install llmfeatures and its pinned dependencies (does nothing elsewhere).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{PACKAGE_SPEC}"], check=True)'''


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
