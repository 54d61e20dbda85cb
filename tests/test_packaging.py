"""The set-up files agree with each other: pyproject.toml, environment.yml, Makefile, CI, README."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from tests.conftest import ROOT


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _normalise(req: str) -> tuple[str, str]:
    r = Requirement(req)
    return r.name.lower().replace("_", "-"), str(r.specifier)


def test_environment_yml_matches_pyproject() -> None:
    project = _pyproject()["project"]
    declared = list(project["dependencies"])
    for extra in ("book", "dev"):
        declared += project["optional-dependencies"][extra]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    in_env = sorted(map(_normalise, pip_lists[0]))
    in_pyproject = sorted(map(_normalise, declared))
    missing = set(in_pyproject) - set(in_env)
    extra = set(in_env) - set(in_pyproject)
    assert not missing and not extra, f"environment.yml lacks {missing}, has extra {extra}"


def test_stack_pins_as_decided() -> None:
    reqs = {n: s for n, s in map(_normalise, _pyproject()["project"]["dependencies"])}
    book = {n: s for n, s in map(_normalise, _pyproject()["project"]["optional-dependencies"]["book"])}
    assert "<4" in reqs["transformer-lens"] and ">=3" in reqs["transformer-lens"]
    assert "<7" in reqs["sae-lens"] and ">=6" in reqs["sae-lens"]
    assert "<2" in book["jupyter-book"] and ">=1.0.4" in book["jupyter-book"]
    # Every dependency has an upper bound, so an install a year from now gets the same majors.
    for name, spec in {**reqs, **book}.items():
        assert "<" in spec, f"{name} has no upper bound: {spec!r}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"^(make test)\b", readme, flags=re.M)
    assert m, "README must give `make test` as the test command"
    assert re.search(r"^make test\s*$", ci, flags=re.M), ".ci/run must call `make test`"


def test_makefile_defaults_to_cpu_torch_2_13() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH_SPEC\s*\?=\s*torch==2\.13\.0\s*$", makefile, flags=re.M)
    assert "TORCH_INDEX" in makefile


def test_makefile_jupyter_book_options_exist() -> None:
    """Every option the Makefile passes to `jupyter-book build` is one the installed CLI knows."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    help_text = subprocess.run([exe, "build", "--help"], capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in (ROOT / "Makefile").read_text().splitlines() if "jupyter-book build" in ln]
    assert len(lines) >= 2, "the Makefile should build the book in `book` and `book-ci`"
    for line in lines:
        for opt in re.findall(r"\s(--?[A-Za-z][\w-]*)", line.split("jupyter-book build", 1)[1]):
            assert re.search(rf"(^|[\s,]){re.escape(opt)}\b", help_text, flags=re.M), f"unknown option {opt}"
