"""Shared test set-up: every test runs at the `ci` scale with a cache folder of its own session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("LLMFEATURES_SCALE", "ci")
os.environ.setdefault("MPLBACKEND", "Agg")


def toc_files() -> list[str]:
    """Every page of the book, in the order of ``_toc.yml`` (paths without extension)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [ch["file"] for ch in part.get("chapters", [])]
    return files


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def html_root() -> Path:
    """The built book's ``html`` folder, from ``LLMFEATURES_BOOK_HTML`` (the Makefile sets it)."""
    path = os.environ.get("LLMFEATURES_BOOK_HTML")
    if not path:
        pytest.skip("set LLMFEATURES_BOOK_HTML to a built book (make test does)")
    root = Path(path).resolve()
    assert (root / "index.html").exists(), f"no index.html in {root}: the book build failed"
    return root


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every network connection fail and put the Hugging Face Hub and datasets offline."""
    import socket

    import huggingface_hub.constants as hf_constants

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def gpt2_stand_in(tokenizer, *, n_head: int = 2, n_positions: int = 64, seed: int = 0):
    """A small random GPT-2 (2 layers, width 32) loaded as ``load_model("gpt2-small", ...)``.

    The real loader's offline path (``hf_model=`` and ``tokenizer=``), so tests of the Colab
    calls run the same conversion a reader's GPT-2 goes through, without the network.
    """
    import warnings

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from llmfeatures.loaders import load_model

    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=n_head, vocab_size=len(tokenizer),
                                    n_positions=n_positions)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("gpt2-small", hf_model=hf, tokenizer=tokenizer, device="cpu")
