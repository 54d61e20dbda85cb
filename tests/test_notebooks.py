"""Notebooks: committed without outputs, the shared Colab cell, chapter numbers and times, and no
number typed into the prose.

The checks run on every notebook of ``_toc.yml``, so a new chapter is checked as soon as it is
listed there.  What a chapter notebook must have to pass:

- its file named ``notebooks/NN_slug.ipynb`` and its first cell the title ``# N. Title``
  (``# 0.k Title`` for the introductory labs), ``NN`` being the chapter number;
- an entry ``file: notebooks/NN_slug`` in ``book/chapters.yml`` (the course outline);
- its time estimate in its metadata, ``{"myst": {"substitutions": {"time_minutes": 60}}}``,
  shown in its text as ``{{ time_minutes }}``;
- every figure its prose quotes glued from the run (``glue("key", value)`` in code,
  ``{glue:text}`key:.2f``` in the text); see :func:`llmfeatures.nbtools.hand_typed_numbers`;
- links to other written chapters as ``{doc}`` references.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib

import pytest
import yaml

from llmfeatures import nbtools
from tests.conftest import ROOT, toc_files

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHAPTERS = [ROOT / f"{f}.ipynb" for f in toc_files() if f.startswith("notebooks/")]
TITLE_RE = re.compile(r"^# (\d{1,2})\.(\d+)?\s+\S")  # "# 6. Title", "# 0.1 Title"


def _load(path) -> dict:
    return json.loads(path.read_text())


def _chapters_ext():
    spec = importlib.util.spec_from_file_location("chapters", ROOT / "book/_ext/chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _title(nb: dict) -> str:
    return nbtools.notebook_markdown(nb)[0].splitlines()[0]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"
    assert CHAPTERS, "_toc.yml lists no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path) -> None:
    nb = _load(path)
    assert not nbtools.has_outputs(nb), f"{path.name} carries outputs: run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_shared_colab_cell(path) -> None:
    nb = _load(path)
    assert nbtools.setup_cell_source(nb) == nbtools.COLAB_SETUP_SOURCE
    assert nb["cells"][0]["cell_type"] == "markdown", "the first cell is the chapter's title"


def test_colab_cell_installs_this_project_without_the_book_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == nbtools.REPOSITORY
    assert nbtools.PACKAGE_SPEC == f"{project['name']} @ git+{nbtools.REPOSITORY}@main"
    src = nbtools.COLAB_SETUP_SOURCE
    assert "google.colab" in src and nbtools.PACKAGE_SPEC in src
    assert "[book" not in src, "Colab needs neither jupyter-book nor jupyterlab"
    assert '"-q"' not in src, "pip's output must show install errors"
    assert '"-c"' in src and "torch==" in src, "Colab's own torch is pinned by a constraint"
    assert "--upgrade" not in src and '"-U"' not in src


def test_colab_cell_pins_the_installed_torch(tmp_path, monkeypatch) -> None:
    """Run the cell as Colab would, with pip replaced by a recorder."""
    import subprocess
    import sys
    import types
    from importlib.metadata import version

    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda args, check: calls.append(args))
    exec(compile(nbtools.COLAB_SETUP_SOURCE, "colab-cell", "exec"), {})
    (args,) = calls
    assert args[1:4] == ["-m", "pip", "install"] and nbtools.PACKAGE_SPEC in args
    constraints = open(args[args.index("-c") + 1]).read()
    assert constraints.strip() == f"torch=={version('torch')}"


def test_config_repository_matches_pyproject() -> None:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"] == nbtools.REPOSITORY
    assert cfg["repository"]["branch"] == "main"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_in_the_toc(path) -> None:
    assert f"notebooks/{path.stem}" in toc_files()


# ---------------------------------------------------------------- chapter numbers and times
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_file_and_title_carry_its_number(path) -> None:
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), (
        f"{path.name}: chapter notebooks are named NN_slug.ipynb (NN = chapter number)")
    title = _title(_load(path))
    m = TITLE_RE.match(title)
    assert m, f"{path.name}: the title {title!r} must start with its number: '# 6. Title'"
    assert int(m.group(1)) == int(path.name[:2]), f"{path.name}: title {title!r} has another number"
    if path.name.startswith("00_"):
        assert m.group(2), f"{path.name}: introductory labs are numbered 0.1, 0.2, ..."


def test_chapter_numbers_are_unique() -> None:
    numbers = [TITLE_RE.match(_title(_load(p))).groups() for p in CHAPTERS]
    assert len(set(numbers)) == len(numbers), f"two chapters share a number: {numbers}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_states_its_time_from_its_metadata(path) -> None:
    nb = _load(path)
    minutes = _chapters_ext().notebook_time(path)
    assert 5 <= minutes <= 240, f"{path.name}: time_minutes={minutes}?"
    text = "\n".join(nbtools.notebook_markdown(nb))
    assert re.search(r"\{\{\s*time_minutes\s*\}\}", text), (
        f"{path.name}: show the time from the metadata with {{{{ time_minutes }}}}")


def test_course_outline_lists_every_chapter_in_toc_order() -> None:
    entries = _chapters_ext().load_chapters(ROOT)
    written = [e["file"] for e in entries if "file" in e]
    in_toc = [f for f in toc_files() if f.startswith("notebooks/")]
    assert written == in_toc, f"book/chapters.yml lists {written}, _toc.yml {in_toc}"
    # the planned chapters are numbered and in order with the written ones
    numbers = []
    for e in entries:
        title = _title(_load(ROOT / f"{e['file']}.ipynb")) if "file" in e else f"# {e['number']}. x"
        m = TITLE_RE.match(title)
        numbers.append((int(m.group(1)), int(m.group(2) or 0)))
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers


def test_outline_loader_rejects_a_written_chapter_with_its_own_time(tmp_path) -> None:
    ext = _chapters_ext()
    (tmp_path / "book").mkdir()
    (tmp_path / "book/chapters.yml").write_text(
        "- file: notebooks/06_x\n  time_minutes: 30\n  objectives: x\n")
    with pytest.raises(ValueError, match="come from the notebook"):
        ext.load_chapters(tmp_path)
    (tmp_path / "book/chapters.yml").write_text("- number: '1'\n  objectives: x\n")
    with pytest.raises(ValueError, match="needs number, title and time_minutes"):
        ext.load_chapters(tmp_path)
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"metadata": {}, "cells": []}))
    with pytest.raises(ValueError, match="time_minutes"):
        ext.notebook_time(nb)


def test_chapter_number_parser() -> None:
    ext = _chapters_ext()
    assert ext.chapter_number("6. Concept encoding") == (6,)
    assert ext.chapter_number("0.2 The model organism") == (0, 2)
    assert ext.chapter_number("References") is None
    assert ext.chapter_number("2026 in review") is None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_links_to_written_chapters_are_references(path) -> None:
    """"chapter 6" in prose must be a {doc} link when chapter 6 exists (the build checks it)."""
    written = {".".join(filter(None, TITLE_RE.match(_title(_load(p))).groups())): p
               for p in CHAPTERS}
    for md in nbtools.notebook_markdown(_load(path))[1:]:
        prose = re.sub(r"\{doc\}`[^`]*`|`[^`]*`", " ", md)
        for m in re.finditer(r"\b[Cc]hapter\s+(\d+(?:\.\d+)?)", prose):
            target = written.get(m.group(1))
            assert target is None or target == path, (
                f"{path.name}: '{m.group(0)}' should be {{doc}}`/notebooks/{target.stem}`")


# ------------------------------------------------------------------ numbers typed into prose
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_no_hand_typed_numbers_in_prose(path) -> None:
    found = [hit for md in nbtools.notebook_markdown(_load(path))
             for hit in nbtools.hand_typed_numbers(md)]
    assert not found, (
        f"{path.name}: numbers typed into the text; glue them from the run "
        f"(glue('key', value) + {{glue:text}}`key:.2f`), or cite their source: {found}")


@pytest.mark.parametrize("text", [
    "The model reaches a CD of 0.83 at the last layer.",
    "It is about 20% faster.",
    "Training takes about 14 minutes at the book scale.",
    "The error levels off near 0.06.",
    "Accuracy is 95 % on held-out prompts.",
    "The ratio is ~3 on a CPU.",
    "```{note}\nThe loss is 0.5 here.\n```",
])
def test_hand_typed_numbers_are_found(text) -> None:
    assert nbtools.hand_typed_numbers(text), f"missed a typed result in {text!r}"


@pytest.mark.parametrize("text", [
    "The model reaches a CD of {glue:text}`cd:.2f` at layer {glue:text}`layer`.",
    "The paper finds R² between 0.3 and 0.8 {cite}`han2024emergence`.",
    "Gains of up to about 14% are reported by {cite:t}`han2024emergence`.",
    "Run `TaskConfig(noise_std=0.1)` with `curriculum=((0, 1), (700, 2))`.",
    "```python\nx = 0.5  # 20%\n```",
    "## 3.1 Section\nSee Exercise 6.2 and chapters 0.1 and 0.2 on Llama-3.1-8B, torch 2.13.0.",
    "**Time.** About {{ time_minutes }} minutes.",
    "With $\\alpha = 0.5$ the step is half.",
    "```{exercise} Title\n:label: ex-ch6-x\n\nWrite a function of 3 arguments.\n```",
])
def test_glued_cited_and_code_numbers_are_allowed(text) -> None:
    assert nbtools.hand_typed_numbers(text) == []


# ----------------------------------------------------------------------------- glue helper
def test_glue_turns_numpy_and_torch_scalars_into_python_numbers() -> None:
    import numpy as np
    import torch

    assert type(nbtools.glue("a", np.float64(0.25))) is float
    assert type(nbtools.glue("b", torch.tensor(3))) is int
    assert type(nbtools.glue("c", np.bool_(True))) is bool
    assert nbtools.glue("d", "text") == "text"
    assert format(nbtools.glue("e", np.float32(0.5)), ".2f") == "0.50"


def test_strip_removes_outputs(tmp_path) -> None:
    p = nbtools.write_notebook(tmp_path / "x.ipynb", [("md", "# T"), ("code", "1 + 1")])
    nb = json.loads(p.read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "2"}]
    nb["cells"][-1]["execution_count"] = 3
    p.write_text(json.dumps(nb))
    assert nbtools.strip([p]) == [p]
    assert not nbtools.has_outputs(json.loads(p.read_text()))
    assert nbtools.strip([p]) == []


def test_write_notebook_rejects_unknown_cell_kind(tmp_path) -> None:
    with pytest.raises(ValueError, match="kind must be"):
        nbtools.write_notebook(tmp_path / "x.ipynb", [("raw", "x")])
