"""Atomic, checksummed storage for everything the book builds (models, SAEs, corpora, results).

Every artefact lives in a folder ``<cache_home>/<kind>/<scale>-<hash>/`` next to a
``manifest.json`` that records the configuration, the finished stages, metrics and the SHA-256 of
every file.  The hash covers the configuration *and the code version* of the artefact, so results
written by older code are rebuilt, never silently loaded:

* ``ArtifactDir(..., version=N)``: the schema/code version of the whole artefact, kept beside the
  code that writes it (e.g. ``ORGANISM_VERSION``).  Bump it when a change alters what the early,
  expensive stages produce or how their files are laid out (the training loop, the data, a file
  format, the meaning of a column); the artefact then gets a new folder.  Version 1 is the layout
  from before versions existed, so its folders keep their old names.
* ``stage(..., version=N)``: the version of one stage.  Bump it when only that stage's code
  changed (an evaluation, a summary table); that stage is rebuilt in the same folder and the
  finished stages before it are kept.  Files are written to a temporary name and renamed into place, so an interrupted
build never leaves a half-written file that looks finished; a file whose checksum no longer
matches the manifest is reported as corrupt and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from llmfeatures.config import cache_home

MANIFEST = "manifest.json"


class CacheCorruptError(RuntimeError):
    """A cached file is missing or its checksum differs from the manifest."""


def config_hash(config: Any, length: int = 10) -> str:
    """Stable short hash of a JSON-able configuration (dataclasses are converted with ``asdict``)."""
    if is_dataclass(config) and not isinstance(config, type):
        config = asdict(config)
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def folder_hash(config: Any, version: int = 1) -> str:
    """The hash in an artefact's folder name: of the configuration and the code ``version``.

    Version 1 hashes the configuration alone, as before versions existed, so caches built then
    stay valid; every later version hashes both, so bumping it always gives a new folder.
    """
    return config_hash(config) if version == 1 else config_hash({"config": config, "version": version})


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it onto ``final``.

    Works for files and for folders (anything written at the yielded path).  On error the
    temporary is removed and ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir():
            _rmtree(final)
        os.replace(target, final)
    finally:
        _rmtree(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def _rmtree(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


class ArtifactDir:
    """A cache folder with a manifest of finished stages, metrics and file checksums.

    Parameters
    ----------
    kind:
        What is stored, e.g. ``"organism"`` or ``"icl"``; the first folder level.
    scale:
        The scale name; part of the folder name.
    config:
        The configuration (dataclass or dict); its hash is part of the folder name and it is
        stored in the manifest.
    root:
        Cache root; defaults to :func:`llmfeatures.config.cache_home`.
    version:
        Code/schema version of the artefact (a positive integer, see the module notes); part of
        the folder's hash.
    """

    def __init__(
        self,
        kind: str,
        scale: str,
        config: Any,
        root: str | os.PathLike[str] | None = None,
        version: int = 1,
    ):
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"version must be a positive integer, got {version!r}")
        self.config = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
        self.version = version
        self.path = Path(root or cache_home()) / kind / f"{scale}-{folder_hash(self.config, version)}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.path / MANIFEST
        self.manifest = self._read_manifest()

    # -- manifest ---------------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        fresh = {"config": self.config, "version": self.version, "stages": {}, "metrics": {}}
        if not self.manifest_path.exists():
            return fresh
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            manifest = None
        if (isinstance(manifest, dict) and isinstance(manifest.get("stages"), dict)
                and isinstance(manifest.get("metrics", {}), dict)):
            manifest.setdefault("metrics", {})
            manifest["version"] = self.version
            return manifest
        import warnings

        warnings.warn(
            f"{self.manifest_path} is not a manifest (unreadable JSON, or no 'stages' and "
            "'metrics' tables); nothing in that folder is trusted, every stage is rebuilt.",
            stacklevel=3,
        )
        return fresh

    def _entry(self, stage: str) -> dict[str, Any]:
        """The manifest entry of a recorded stage, checked: ``{"files": {path: sha256}, ...}``."""
        entry = self.manifest["stages"][stage]
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise CacheCorruptError(
                f"{self.manifest_path}: the entry of stage {stage!r} is malformed (expected "
                f'{{"files": {{relative path: sha256}}}}, got {json.dumps(entry)[:80]}); the '
                "stage cannot be trusted. Rebuild it (building again does so) or delete the folder "
                f"{self.path}."
            )
        return entry

    def _save_manifest(self) -> None:
        atomic_write_json(self.manifest_path, self.manifest)

    # -- stages -----------------------------------------------------------------------------
    def stage_files(self, stage: str) -> list[str]:
        """Relative paths of the files recorded for a finished stage."""
        if stage not in self.manifest["stages"]:
            return []
        return sorted(self._entry(stage)["files"])

    def stage_version(self, stage: str) -> int | None:
        """The code version a recorded stage was built with (entries without one: 1)."""
        if stage not in self.manifest["stages"]:
            return None
        return int(self._entry(stage).get("version", 1))

    def verify(self, stage: str) -> None:
        """Raise :class:`CacheCorruptError` if the entry of ``stage`` is malformed or one of its
        files is missing or altered."""
        if stage not in self.manifest["stages"]:
            return
        files = self._entry(stage)["files"]
        for rel, digest in files.items():
            p = self.path / rel
            if not p.exists():
                raise CacheCorruptError(f"{p} is missing (stage {stage!r})")
            if sha256_file(p) != digest:
                raise CacheCorruptError(f"{p} does not match its checksum (stage {stage!r})")

    def is_done(self, stage: str, version: int = 1) -> bool:
        """True if ``stage`` finished with code ``version`` and all its files are intact.

        A stage built by another version is forgotten (it is rebuilt); a corrupt one (a file or
        its manifest entry) is forgotten with a warning.
        """
        if stage not in self.manifest["stages"]:
            return False
        try:
            self.verify(stage)
            if self.stage_version(stage) != version:
                self.forget(stage)
                return False
        except CacheCorruptError as err:
            import warnings

            warnings.warn(f"{err}; rebuilding stage {stage!r}.", stacklevel=2)
            self.forget(stage)
            return False
        return True

    def forget(self, stage: str) -> None:
        """Drop a stage from the manifest (its files are left to be overwritten)."""
        self.manifest["stages"].pop(stage, None)
        self._save_manifest()

    def finish(
        self, stage: str, files: list[str], metrics: dict[str, Any] | None = None, version: int = 1
    ) -> None:
        """Record ``stage`` as finished by code ``version`` with the checksums of ``files``
        (relative to the folder)."""
        digests = {}
        for rel in files:
            p = self.path / rel
            if p.is_dir():
                for sub in sorted(q for q in p.rglob("*") if q.is_file()):
                    digests[str(sub.relative_to(self.path))] = sha256_file(sub)
            else:
                digests[rel] = sha256_file(p)
        self.manifest["stages"][stage] = {"files": digests, "version": version}
        if metrics:
            self.manifest["metrics"].update(metrics)
        self._save_manifest()

    def stage(
        self,
        stage: str,
        build: Callable[[Path], list[str]],
        metrics: dict[str, Any] | None = None,
        version: int = 1,
    ) -> bool:
        """Run ``build(folder)`` unless ``stage`` is already done by code ``version``; return
        True if it ran.

        ``build`` writes its outputs (atomically) inside the folder and returns their relative
        paths.
        """
        if self.is_done(stage, version):
            return False
        files = build(self.path)
        self.finish(stage, files, metrics, version)
        return True

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest["metrics"]

    def add_metrics(self, **metrics: Any) -> None:
        """Merge ``metrics`` into the manifest."""
        self.manifest["metrics"].update(metrics)
        self._save_manifest()
