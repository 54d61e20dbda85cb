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


def test_code_version_is_part_of_the_folder(tmp_path) -> None:
    calls: list[str] = []
    v1 = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    v1.stage("one", _writer("one.bin", b"old code", calls))
    # version 1 keeps the folder name of caches written before versions existed
    assert v1.path.name == f"ci-{cache.config_hash({'a': 1})}"
    v2 = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path, version=2)
    assert v2.path != v1.path and v2.path.parent == v1.path.parent
    assert not v2.is_done("one")  # results of the older code are not loaded: rebuilt
    assert v2.stage("one", _writer("one.bin", b"new code", calls)) is True
    assert (v1.path / "one.bin").read_bytes() == b"old code"
    assert json.loads((v2.path / "manifest.json").read_text())["version"] == 2
    assert cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path, version=3).path not in {
        v1.path, v2.path}
    with pytest.raises(ValueError, match="version must be a positive integer"):
        cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path, version=0)


def test_stage_version_rebuilds_only_that_stage(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    calls: list[str] = []
    art.stage("train", _writer("model.bin", b"weights", calls))
    art.stage("eval", _writer("eval.json", b"{}", calls))
    assert art.stage_version("eval") == 1
    # the evaluation code changed (version 2): eval is rebuilt, train is kept
    again = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    assert again.stage("train", _writer("model.bin", b"weights", calls)) is False
    assert again.stage("eval", _writer("eval.json", b'{"v": 2}', calls), version=2) is True
    assert calls == ["model.bin", "eval.json", "eval.json"]
    assert again.stage_version("eval") == 2 and again.is_done("eval", 2)
    assert not again.is_done("eval", 1)


def test_malformed_stage_entry_is_named_and_rebuilt(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    calls: list[str] = []
    art.stage("one", _writer("one.bin", b"x", calls))
    manifest = json.loads(art.manifest_path.read_text())
    for bad in ("done", {"files": ["one.bin"]}, {"files": {"one.bin": 5}}, {}):
        manifest["stages"]["one"] = bad
        art.manifest_path.write_text(json.dumps(manifest))
        broken = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
        with pytest.raises(cache.CacheCorruptError, match="entry of stage 'one' is malformed"):
            broken.verify("one")
        with pytest.warns(UserWarning, match="malformed.*rebuilding stage 'one'"):
            assert broken.stage("one", _writer("one.bin", b"x", calls)) is True
        broken.verify("one")
    assert len(calls) == 5


def test_manifest_that_is_not_a_manifest_starts_over(tmp_path) -> None:
    art = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
    art.stage("one", _writer("one.bin", b"x", []))
    for text in ('{"stages": "all of them"}', "[1, 2]", "{not json"):
        art.manifest_path.write_text(text)
        with pytest.warns(UserWarning, match="is not a manifest"):
            fresh = cache.ArtifactDir("toy", "ci", {"a": 1}, root=tmp_path)
        assert not fresh.is_done("one")
