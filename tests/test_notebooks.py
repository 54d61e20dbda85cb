"""Notebooks: committed without outputs, all start with the same Colab set-up cell, all in the toc."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml

from llmfeatures import nbtools
from tests.conftest import ROOT, toc_files

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ is empty"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path) -> None:
    nb = json.loads(path.read_text())
    assert not nbtools.has_outputs(nb), f"{path.name} carries outputs: run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_shared_colab_cell(path) -> None:
    nb = json.loads(path.read_text())
    assert nbtools.setup_cell_source(nb) == nbtools.COLAB_SETUP_SOURCE
    assert nb["cells"][0]["cell_type"] == "markdown", "the first cell is the chapter's title"


def test_colab_cell_installs_this_project_from_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == nbtools.REPOSITORY
    assert nbtools.PACKAGE_SPEC.startswith(project["name"] + "[book] @ git+" + nbtools.REPOSITORY)
    assert "google.colab" in nbtools.COLAB_SETUP_SOURCE
    assert nbtools.PACKAGE_SPEC in nbtools.COLAB_SETUP_SOURCE


def test_config_repository_matches_pyproject() -> None:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["repository"]["url"] == nbtools.REPOSITORY
    assert cfg["repository"]["branch"] == "main"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_in_the_toc(path) -> None:
    assert f"notebooks/{path.stem}" in toc_files()


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
