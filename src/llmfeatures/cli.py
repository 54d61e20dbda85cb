"""The ``llmfeatures`` command line (also ``python -m llmfeatures``).

::

    llmfeatures info [--json]                                  scale, device, cache, versions
    llmfeatures organism build [--scale S] [--force]           build (or finish) the organism
    llmfeatures organism info  [--scale S] [--json]            its cache folder, files, quality

``S`` is one of ``ci``, ``book``, ``gpu``, ``paper``; without ``--scale`` the scale comes from
``$LLMFEATURES_SCALE`` (default ``book``), as everywhere else in the package.

Exit status: 0 on success, 2 for bad input (unknown command, option or scale; a model that cannot
be reached), 1 when a build fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, TextIO

from llmfeatures.config import SCALES

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_VERSIONED = ("llmfeatures", "torch", "transformer-lens", "sae-lens", "transformers", "tokenizers")


class _Usage(Exception):
    """Bad input detected after parsing; reported like an argparse error (exit status 2)."""


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def _human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _is_size_key(key: str) -> bool:
    key = key.lower()
    return key.endswith("bytes") or key in {"size", "sizes", "total_size"} or key.endswith("_size")


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int) and _is_size_key(key):
        return _human_bytes(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_report(data: Mapping[str, Any], indent: int = 0) -> str:
    """Render a nested mapping as indented ``key: value`` lines (sizes in KiB/MiB/GiB)."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, Mapping):
            lines.append(f"{pad}{key}:")
            if value:
                sizes = _is_size_key(str(key))
                if sizes and all(isinstance(v, int) for v in value.values()):
                    value = {k: _human_bytes(v) for k, v in value.items()}
                lines.append(format_report(value, indent + 1))
        elif (
            isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value)
        ):
            lines.append(f"{pad}{key}:")
            for item in value:
                lines.append(format_report(item, indent + 1))
                lines.append("")
        else:
            lines.append(f"{pad}{key}: {_format_value(str(key), value)}")
    return "\n".join(lines)


def _emit(data: Mapping[str, Any], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump(data, out, indent=2, sort_keys=True, default=str)
        out.write("\n")
    else:
        out.write(format_report(data) + "\n")


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    """Installed versions of the package and the libraries it is built on."""
    found = {}
    for dist in _VERSIONED:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    from llmfeatures.config import describe

    try:
        data: dict[str, Any] = dict(describe())
    except ValueError as err:  # e.g. a bad $LLMFEATURES_SCALE
        raise _Usage(str(err)) from err
    data["versions"] = versions()
    _emit(data, args.json, out)
    return EXIT_OK


def _checked_scale(scale: str | None) -> str:
    from llmfeatures.config import get_scale

    try:
        return get_scale(scale)
    except ValueError as err:
        raise _Usage(str(err)) from err


def _cmd_organism_build(args: argparse.Namespace, out: TextIO) -> int:
    scale = _checked_scale(args.scale)
    from llmfeatures.organism.pipeline import build_organism, organism_info

    out.write(f"Building the organism at scale {scale!r}{' (forced)' if args.force else ''}...\n")
    out.flush()
    start = time.perf_counter()
    artifacts = build_organism(scale, force=args.force)
    elapsed = time.perf_counter() - start
    out.write(f"Done in {elapsed:.0f} s: {getattr(artifacts, 'path', artifacts)}\n")
    _emit(organism_info(scale), False, out)
    return EXIT_OK


def _cmd_organism_info(args: argparse.Namespace, out: TextIO) -> int:
    scale = _checked_scale(args.scale)
    from llmfeatures.organism.pipeline import organism_info

    _emit(organism_info(scale), args.json, out)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    parser = argparse.ArgumentParser(
        prog="llmfeatures",
        description="Build and inspect what the llmfeatures book runs on.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    info = commands.add_parser("info", help="scale, device, cache folder and library versions")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)

    organism = commands.add_parser("organism", help="the embedded model organism")
    org_commands = organism.add_subparsers(dest="organism_command", metavar="ACTION")
    org_commands.required = True
    scale_help = f"one of {', '.join(SCALES)} (default: $LLMFEATURES_SCALE, else book)"

    build = org_commands.add_parser(
        "build", help="build the world, tokenizer, model and SAEs (resumes an interrupted build)"
    )
    build.add_argument("--scale", choices=SCALES, default=None, help=scale_help)
    build.add_argument(
        "--force", action="store_true", help="rebuild every stage even if it is cached"
    )
    build.set_defaults(func=_cmd_organism_build)

    org_info = org_commands.add_parser(
        "info", help="cache folder, file sizes and quality figures of the organism"
    )
    org_info.add_argument("--scale", choices=SCALES, default=None, help=scale_help)
    org_info.add_argument("--json", action="store_true", help="print JSON")
    org_info.set_defaults(func=_cmd_organism_info)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, message printed)
        return int(exit_.code or 0)
    try:
        return int(args.func(args, out))
    except _Usage as err:
        parser.print_usage(sys.stderr)
        print(f"llmfeatures: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("llmfeatures: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    except Exception as err:  # a failed build: say what failed, no traceback wall
        from llmfeatures.loaders import ModelUnavailableError

        print(f"llmfeatures: error: {type(err).__name__}: {err}", file=sys.stderr)
        if isinstance(err, ModelUnavailableError | ValueError):
            return EXIT_USAGE
        if os.environ.get("LLMFEATURES_DEBUG"):
            raise
        print("(set LLMFEATURES_DEBUG=1 for the full traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
