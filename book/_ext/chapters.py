"""Sphinx extension of the book: chapter numbers and the course outline.

Two things every chapter inherits without writing them by hand:

* **Numbers restart per chapter.**  A page whose title starts with a chapter number
  (``# 6. Concept encoding ...``, ``# 0.1 Getting started``) gets its exercises, figures, tables
  and code listings numbered within the chapter: "Exercise 6.1", "Exercise 6.2", ...  Sphinx
  numbers them across the whole book; after it has, this extension rewrites each page's numbers
  to ``(chapter..., n)``.  ``:label:`` and ``{ref}``/``{numref}`` keep working.
* **The course outline is generated** from ``book/chapters.yml`` by the ``chapter-outline``
  directive.  A written chapter's entry names its ``file``; its number and title come from the
  page title and its time from the notebook's metadata (``myst.substitutions.time_minutes``,
  which the notebook's own text shows as ``{{ time_minutes }}``), so the outline and the chapter
  cannot disagree.  A planned chapter gives ``number``, ``title`` and ``time_minutes`` and is
  listed as "in preparation", without a link.  Links are ``{doc}`` references: a missing page
  fails the strict build.

It also keeps the pages free of two browser console errors of the theme stack (found by
``tests/test_browser.py``): inline scripts that extensions register twice (sphinx-thebe's
``const THEBE_JS_URL`` declared twice is a SyntaxError) are written once, and the theme's colour
mode gets a valid default ("auto"; left empty, the theme logs "Got invalid theme mode").
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

CHAPTERS_FILE = "book/chapters.yml"
NUMBER_RE = re.compile(r"^(\d{1,2})\.(\d+)?\s")  # "6. Title" or "0.1 Title"


def chapter_number(title: str) -> tuple[int, ...] | None:
    """``"6. Concept ..."`` -> ``(6,)``, ``"0.1 Getting started"`` -> ``(0, 1)``, else None."""
    m = NUMBER_RE.match(title.strip())
    if m is None:
        return None
    return (int(m.group(1)),) if m.group(2) is None else (int(m.group(1)), int(m.group(2)))


def notebook_time(path: Path) -> int:
    """The chapter's time estimate in minutes, from the notebook's metadata."""
    meta = json.loads(path.read_text())["metadata"]
    try:
        return int(meta["myst"]["substitutions"]["time_minutes"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: no integer metadata myst.substitutions.time_minutes; add it (the chapter's "
            "time estimate) and show it in the text as {{ time_minutes }}"
        ) from err


def load_chapters(srcdir: str | Path) -> list[dict]:
    """The entries of ``book/chapters.yml``, checked: written ones have ``file`` only."""
    entries = yaml.safe_load((Path(srcdir) / CHAPTERS_FILE).read_text())
    for i, e in enumerate(entries):
        if "objectives" not in e:
            raise ValueError(f"{CHAPTERS_FILE} entry {i}: give its learning objectives")
        if "file" in e:
            doubled = {"number", "title", "time_minutes"} & set(e)
            if doubled:
                raise ValueError(
                    f"{CHAPTERS_FILE} entry {e['file']}: {sorted(doubled)} come from the notebook "
                    "(its title and metadata); remove them here"
                )
        elif not {"number", "title", "time_minutes"} <= set(e):
            raise ValueError(
                f"{CHAPTERS_FILE} entry {i}: a planned chapter needs number, title and time_minutes"
            )
    return entries


class ChapterOutline(SphinxDirective):
    """The table of the course: chapter, learning objectives, time."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        srcdir = Path(self.env.srcdir)
        try:
            entries = load_chapters(srcdir)
        except (OSError, ValueError) as err:
            raise self.error(str(err)) from err
        self.env.note_dependency(str(srcdir / CHAPTERS_FILE))
        lines = ["| chapter | learning objectives | time |", "|---|---|---|"]
        for e in entries:
            objectives = " ".join(str(e["objectives"]).split())
            if "file" in e:
                path = srcdir / f"{e['file']}.ipynb"
                if not path.exists():
                    raise self.error(f"{CHAPTERS_FILE}: no notebook {path.relative_to(srcdir)}")
                self.env.note_dependency(str(path))
                try:
                    minutes = notebook_time(path)
                except ValueError as err:
                    raise self.error(str(err)) from err
                chapter = f"{{doc}}`/{e['file']}`"
            else:
                minutes = int(e["time_minutes"])
                chapter = f"{e['number']}. {e['title']} *(in preparation)*"
            lines.append(f"| {chapter} | {objectives} | {minutes} min |")
        container = nodes.container(classes=["chapter-outline"])
        self.state.nested_parse(StringList(lines, source=CHAPTERS_FILE), self.content_offset,
                                container)
        return [container]


def number_per_chapter(app: Sphinx, env) -> list[str]:
    """Rewrite Sphinx's book-wide numbers of exercises, figures, ... to per-chapter ones."""
    for docname, by_type in env.toc_fignumbers.items():
        title = env.titles.get(docname)
        chapter = chapter_number(title.astext()) if title is not None else None
        if chapter is None:
            continue
        for figtype, numbers in by_type.items():
            ordered = sorted(numbers, key=lambda ident: numbers[ident])
            by_type[figtype] = {ident: (*chapter, i + 1) for i, ident in enumerate(ordered)}
    return []


def default_colour_mode(app: Sphinx, config) -> None:
    """The pydata theme reads its default colour mode from ``html_context["default_mode"]``."""
    if not config.html_context.get("default_mode"):
        config.html_context["default_mode"] = "auto"


def scripts_once(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop repeated identical scripts (same file or same inline body) from a page."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        # the registry's copy has filename None, the builder's "" for the same inline script
        key = (str(getattr(js, "filename", js) or ""),
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.add_directive("chapter-outline", ChapterOutline)
    app.connect("config-inited", default_colour_mode)
    app.connect("html-page-context", scripts_once)
    # after Sphinx's own TocTreeCollector (priority 500) has assigned the book-wide numbers
    app.connect("env-get-updated", number_per_chapter, priority=900)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
