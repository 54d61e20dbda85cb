"""The scale setting, device choice and seeding."""

from __future__ import annotations

import pytest
import torch

from llmfeatures import config


def test_scale_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("LLMFEATURES_SCALE", "gpu")
    assert config.get_scale() == "gpu"
    monkeypatch.delenv("LLMFEATURES_SCALE")
    assert config.get_scale() == "book"
    assert config.get_scale("paper") == "paper"


def test_unknown_scale_lists_valid_ones(monkeypatch) -> None:
    monkeypatch.setenv("LLMFEATURES_SCALE", "huge")
    with pytest.raises(ValueError, match="ci, book, gpu, paper"):
        config.get_scale()


def test_pick_chooses_preset_and_needs_all_scales() -> None:
    table = {"ci": 1, "book": 2, "gpu": 3, "paper": 4}
    assert config.pick(table, "gpu") == 3
    with pytest.raises(KeyError, match="lacks scales"):
        config.pick({"ci": 1, "book": 2}, "ci")


def test_device_choice(monkeypatch) -> None:
    monkeypatch.delenv("LLMFEATURES_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    dev = config.get_device()
    if expected:
        assert dev.type == expected
    assert config.get_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.get_device("cuda")


def test_seed_everything_reproduces_draws() -> None:
    g1 = config.seed_everything(123)
    a = torch.randn(5), torch.randn(3, generator=g1)
    g2 = config.seed_everything(123)
    b = torch.randn(5), torch.randn(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_cache_home_from_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LLMFEATURES_HOME", str(tmp_path))
    assert config.cache_home() == tmp_path


def test_progress_disabled_follows_the_argument_and_tqdm_disable(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert config.progress_disabled(True) is False and config.progress_disabled(False) is True
    for value, off in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert config.progress_disabled(True) is off
        # tqdm honours the explicit argument, so the bar is off exactly when we say so
        assert tqdm(range(2), disable=config.progress_disabled(True)).disable is off
