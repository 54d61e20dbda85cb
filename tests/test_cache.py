"""Atomic writes, manifests, resumable stages and corruption detection."""

from __future__ import annotations

import json

import pytest

from llmfeatures import cache


def _writer(name: str, payload: bytes, calls: list[str]):
    def build(folder):
        calls.append(name)
        cache.atomic_write_bytes(folder / name, payload)
        return [name]

    return build


def test_stage_runs_once_and_records_checksum(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    calls: list[str] = []
    assert art.stage("one", _writer("one.bin", b"hello", calls)) is True
    assert art.stage("one", _writer("one.bin", b"hello", calls)) is False
    assert calls == ["one.bin"]
    manifest = json.loads((art.path / "manifest.json").read_text())
    assert manifest["stages"]["one"]["files"]["one.bin"] == cache.sha256_file(art.path / "one.bin")
    # A new ArtifactDir over the same folder sees the finished stage (resume).
    again = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    assert again.is_done("one")


def test_config_and_scale_choose_the_folder(tmp_path) -> None:
    a = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    b = cache.ArtifactDir("toy", "ci", {"a": 2}, root=tmp_path)
    c = cache.ArtifactDir("toy", "book", {"a": 1}, root=tmp_path)
    assert len({a.path, b.path, c.path}) == 3


def test_corrupt_file_is_detected_and_rebuilt(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    calls: list[str] = []
    art.stage("one", _writer("one.bin", b"hello world", calls))
    (art.path / "one.bin").write_bytes(b"hello")  # truncated
    with pytest.raises(cache.CacheCorruptError, match="checksum"):
        art.verify("one")
    with pytest.warns(UserWarning, match="rebuilding"):
        assert art.stage("one", _writer("one.bin", b"hello world", calls)) is True
    assert calls == ["one.bin", "one.bin"]
    art.verify("one")


def test_missing_file_is_detected(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    art.stage("one", _writer("one.bin", b"x", []))
    (art.path / "one.bin").unlink()
    with pytest.warns(UserWarning):
        assert not art.is_done("one")


def test_failed_build_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "out.bin"

    with pytest.raises(RuntimeError), cache.atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_old(tmp_path) -> None:
    target = tmp_path / "model"
    for text in ("old", "new"):
        with cache.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w.txt").write_text(text)
    assert (target / "w.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_metrics_persist(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    art.add_metrics(loss=0.5)
    assert cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path).metrics["loss"] == 0.5
