"""The built book in a real browser: every page of ``_toc.yml`` in headless Chromium at 1280 px.

Fails on an image that does not load, an error raised by the book's own files (console errors,
uncaught exceptions, failed loads of local files; third-party scripts fetched from a CDN are not
the book's and fail offline), a chapter page without figures, a code cell that calls a plotting
function but shows no figure, a page that shows fewer figures than its executed notebook made,
and a figure shrunk so far that its text becomes unreadable.  A full-page screenshot of each
page is saved under ``_build/.../browser/`` (next to ``html/``) to look at.

Skipped, with the reason, when no Chromium is installed; ``.ci/run`` installs it and sets
``LLMFEATURES_REQUIRE_BROWSER=1`` so that CI fails instead of skipping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.browser import Chromium, find_chromium
from tests.conftest import toc_files

pytestmark = pytest.mark.book

WIDTH = 1280
# A figure drawn at less than this fraction of its pixel width shrinks 10-pt text below ~9 px.
MIN_SCALE = 0.7


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        msg = ("Chromium not found: the browser check is skipped (Debian: apt-get install "
               "chromium, or set LLMFEATURES_CHROMIUM)")
        if os.environ.get("LLMFEATURES_REQUIRE_BROWSER"):
            pytest.fail(msg.replace("is skipped", "is required (LLMFEATURES_REQUIRE_BROWSER)"))
        pytest.skip(msg)
    with Chromium(exe, width=WIDTH) as b:
        yield b


def _executed_images(html_root: Path, page: str) -> int:
    """Images (PNG/JPEG/SVG outputs) of the executed notebook behind ``page``."""
    path = html_root.parent / "jupyter_execute" / f"{page}.ipynb"
    if not path.exists():
        return 0
    nb = json.loads(path.read_text())
    return sum(
        any(m in out.get("data", {}) for m in ("image/png", "image/jpeg", "image/svg+xml"))
        for cell in nb["cells"] if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
    )


@pytest.mark.parametrize("page", toc_files())
def test_page_in_browser(browser, html_root: Path, page: str) -> None:
    shot = html_root.parent / "browser" / f"{page}.png"
    report = browser.visit((html_root / f"{page}.html").as_uri(), screenshot=shot)
    root_url = html_root.resolve().as_uri()
    assert report.title, f"{page}: no title"
    assert not report.broken_images(), f"{page}: images that do not load: {report.broken_images()}"
    own = report.own_errors(root_url)
    assert not own, f"{page}: errors from the book's own files: {own}"
    figures = [im for im in report.images if im["inOutput"]]
    expected = _executed_images(html_root, page)
    assert len(figures) >= expected, (
        f"{page}: the notebook made {expected} figures, the page shows {len(figures)}")
    if page.startswith("notebooks/"):
        assert figures, f"{page}: a chapter page without figures"
    missing = report.cells_without_figure()
    assert not missing, f"{page}: cells that draw but show no figure: {missing}"
    for im in figures:
        scale = im["width"] / im["naturalWidth"]
        assert im["width"] > 0 and im["height"] > 0, f"{page}: a figure is not displayed"
        assert scale >= MIN_SCALE, (
            f"{page}: a {im['naturalWidth']} px wide figure is drawn {im['width']:.0f} px wide "
            f"at {WIDTH} px ({scale:.2f}x): its text is too small; make the figure narrower")
    assert shot.exists() and shot.stat().st_size > 1000


def test_own_errors_are_told_apart_from_third_party_ones() -> None:
    from tests.browser import PageReport

    rep = PageReport(url="file:///b/html/x.html", errors=[
        {"kind": "exception", "text": "boom", "url": "file:///b/html/_static/ours.js"},
        {"kind": "request failed", "text": "net::ERR", "url": "https://cdn.example/mathjax.js"},
        {"kind": "console.error", "text": "inline", "url": ""},
    ])
    own = rep.own_errors("file:///b/html")
    assert [e["text"] for e in own] == ["boom", "inline"]
    rep.images = [{"src": "a.png", "naturalWidth": 0}, {"src": "b.png", "naturalWidth": 10}]
    assert rep.broken_images() == ["a.png"]
    rep.cells = [{"source": "plots.plot_x(a)", "draws": True, "images": 0},
                 {"source": "plt.subplots()", "draws": True, "images": 1},
                 {"source": "print(1)", "draws": False, "images": 0}]
    assert rep.cells_without_figure() == ["plots.plot_x(a)"]
