"""The Makefile's set-up logic, checked with dry runs (`make -n`) in a copy of the project.

- An old Python stops `make` at once with a message saying what is needed.
- Changing TORCH_SPEC or TORCH_INDEX reinstalls torch (its stamp is named after them).
- A change under src/ makes the next book build clear the notebooks' execution cache.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the Makefile reads: Makefile, pyproject.toml, src/."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "src", tmp_path / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tmp_path


def make_n(project: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    # run as a fresh make, not as a sub-make of `make test` (whose flags would be inherited)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-n", f"PYTHON={python}", "VENV=venv", *args], cwd=project,
                          capture_output=True, text=True, env=env)


def stamps_written(dry_run: str) -> list[str]:
    """The stamp files a dry run would write (`echo ... > STAMP` / `touch STAMP`)."""
    return re.findall(r"(?:> |touch )(\S*\.(?:torch|installed|code)-\d+)", dry_run)


def pretend_installed(project: Path, *args: str) -> None:
    """Create the stamps `make install` would leave, as if it had run with ``args``."""
    (project / "venv").mkdir(exist_ok=True)
    for stamp in stamps_written(make_n(project, "install", *args).stdout):
        (project / stamp).touch()


def test_old_python_stops_make_with_a_clear_message(project: Path) -> None:
    fake = project / "python3.10"
    fake.write_text("#!/bin/sh\n"
                    'case "$1" in --version) echo "Python 3.10.12";; *) echo 0;; esac\n')
    fake.chmod(0o755)
    for goal in ("test", "book", "install"):
        res = make_n(project, goal, python=str(fake))
        assert res.returncode != 0, f"make {goal} ran with Python 3.10"
        assert "needs Python 3.11 or newer" in res.stderr and "Python 3.10.12" in res.stderr
        assert "PYTHON=python3.11" in res.stderr, "the message should say how to fix it"
        assert "pip install" not in res.stdout  # stopped before doing anything
    assert make_n(project, "clean", python=str(fake)).returncode == 0  # clean needs no Python


def test_first_install_installs_torch_then_the_package(project: Path) -> None:
    out = make_n(project, "install").stdout
    assert f"{sys.executable} -m venv venv" in out
    torch_at, package_at = out.index('pip install "torch==2.13.0"'), out.index('-e ".[book,dev]"')
    assert torch_at < package_at


def test_changing_torch_spec_or_index_reinstalls_torch(project: Path) -> None:
    pretend_installed(project)
    assert "pip install" not in make_n(project, "install").stdout, "up to date: nothing to do"
    out = make_n(project, "install", "TORCH_SPEC=torch==2.12.0").stdout
    assert 'pip install "torch==2.12.0"' in out and '-e ".[book,dev]" "torch==2.12.0"' in out
    out = make_n(project, "install", "TORCH_INDEX=https://example.org/whl/cu999").stdout
    assert "--index-url https://example.org/whl/cu999" in out
    # installing another torch removes the old stamps, so going back reinstalls the default
    assert "rm -f venv/.torch-* venv/.installed-*" in out


@pytest.mark.parametrize(("goal", "folder"), [("book", "_build"), ("book-ci", "_build/ci/_build")])
def test_a_change_under_src_reexecutes_the_notebooks(project: Path, goal: str, folder: str) -> None:
    pretend_installed(project)
    out = make_n(project, goal).stdout
    assert f"rm -rf {folder}/.jupyter_cache {folder}/.doctrees" in out  # first build: fresh
    for stamp in stamps_written(out):
        (project / stamp).parent.mkdir(parents=True, exist_ok=True)
        (project / stamp).touch()
    out = make_n(project, goal).stdout
    assert ".jupyter_cache" not in out, "same code: the execution cache is kept"
    assert "jupyter-book build" in out
    module = project / "src" / "llmfeatures" / "config.py"
    module.write_text(module.read_text() + "\n# changed\n")
    out = make_n(project, goal).stdout
    assert f"rm -rf {folder}/.jupyter_cache {folder}/.doctrees" in out, "stale outputs served"
    assert out.index(".jupyter_cache") < out.index("jupyter-book build")
