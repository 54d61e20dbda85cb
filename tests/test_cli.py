"""Tests for the ``llmfeatures`` command line (in-process through ``main`` and as a subprocess)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmfeatures.cli import build_parser, format_report, main, versions
from llmfeatures.config import SCALES


def run_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_info_json_reports_scale_device_and_versions(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LLMFEATURES_SCALE", "gpu")
    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path))
    code, text = run_main("info", "--json")
    assert code == 0
    data = json.loads(text)
    assert data["scale"] == "gpu"
    assert data["cache"] == str(tmp_path)
    assert data["device"] in {"cpu", "cuda", "mps"}
    import torch

    assert data["versions"]["torch"] == str(torch.__version__)
    assert set(data["versions"]) >= {"llmfeatures", "transformer-lens", "sae-lens"}


def test_info_plain_text(monkeypatch) -> None:
    monkeypatch.setenv("LLMFEATURES_SCALE", "ci")
    code, text = run_main("info")
    assert code == 0
    assert "scale: ci" in text.splitlines()
    from importlib.metadata import version

    # the installed distributions' own versions, not a string compared with itself
    assert "versions:" in text and f"  sae-lens: {version('sae-lens')}" in text
    assert versions()["transformer-lens"] == version("transformer-lens")


def test_bad_scale_in_environment_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LLMFEATURES_SCALE", "huge")
    assert main(["info"]) == 2
    assert main(["organism", "info"]) == 2
    err = capsys.readouterr().err
    assert "Unknown scale 'huge'" in err and "ci, book, gpu, paper" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "required: COMMAND"),
        (["organism"], "required: ACTION"),
        (["organism", "info", "--scale", "huge"], "invalid choice: 'huge'"),
        (["organism", "build", "--sclae", "ci"], "unrecognized arguments"),
        (["train"], "invalid choice: 'train'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(argv, needle, capsys) -> None:
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_help_lists_the_commands(capsys) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "info" in text and "organism" in text
    assert main(["organism", "build", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--force" in text and all(s in text for s in SCALES)


def test_parser_scale_choices_are_the_config_scales() -> None:
    parser = build_parser()
    args = parser.parse_args(["organism", "build", "--scale", "paper", "--force"])
    assert (args.scale, args.force) == ("paper", True)
    assert parser.parse_args(["organism", "info"]).scale is None  # falls back to the environment


def test_format_report_nests_and_humanises_sizes() -> None:
    text = format_report(
        {
            "path": "/x",
            "files": {"model.safetensors": 3 * 1024 * 1024, "tokenizer.json": 2048},
            "total_bytes": 5 * 1024**3,
            "metrics": {"fact_accuracy": 0.93456, "n_layers": 4, "ok": True},
        }
    )
    assert text.splitlines() == [
        "path: /x",
        "files:",
        "  model.safetensors: 3145728",
        "  tokenizer.json: 2048",
        "total_bytes: 5.0 GiB",
        "metrics:",
        "  fact_accuracy: 0.9346",
        "  n_layers: 4",
        "  ok: True",
    ]
    sizes = format_report({"sizes": {"a": 1536, "b": 10}})
    assert sizes.splitlines() == ["sizes:", "  a: 1.5 KiB", "  b: 10 B"]


def test_module_and_console_script_run(tmp_path) -> None:
    env = {**os.environ, "LLMFEATURES_SCALE": "book", "LLMFEATURES_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "llmfeatures", "info", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scale"] == "book"
    script = Path(sys.executable).with_name("llmfeatures")
    if script.exists():  # installed with pip install -e: the console script exists
        proc = subprocess.run(
            [str(script), "organism", "info", "--scale", "nope"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 2
        assert "invalid choice: 'nope'" in proc.stderr


@pytest.mark.slow
def test_organism_build_then_info(capsys) -> None:
    code, text = run_main("organism", "build", "--scale", "ci")
    assert code == 0, capsys.readouterr().err
    assert "Done in" in text
    code, text = run_main("organism", "info", "--scale", "ci", "--json")
    assert code == 0
    info = json.loads(text)
    from llmfeatures.organism.pipeline import organism_info

    assert info == json.loads(json.dumps(organism_info("ci"), default=str))
    assert os.environ.get("LLMFEATURES_HOME", "") in text
