"""Checks on the built book (run by `make test` after `jupyter-book build`).

Set ``LLMFEATURES_BOOK_HTML`` to the built ``_build/html`` folder; the Makefile does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from llmfeatures.nbtools import REPOSITORY
from tests.conftest import toc_files

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def html_root() -> Path:
    path = os.environ.get("LLMFEATURES_BOOK_HTML")
    if not path:
        pytest.skip("set LLMFEATURES_BOOK_HTML to a built book (make test does)")
    root = Path(path)
    assert (root / "index.html").exists(), f"no index.html in {root}: the book build failed"
    return root


@pytest.mark.parametrize("page", toc_files())
def test_page_exists(html_root: Path, page: str) -> None:
    assert (html_root / f"{page}.html").exists()


NOTEBOOK_PAGES = [p for p in toc_files() if p.startswith("notebooks/")]


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_notebook_page_executed_without_traceback(html_root: Path, page: str) -> None:
    soup = BeautifulSoup((html_root / f"{page}.html").read_text(), "html.parser")
    text = soup.get_text()
    assert "Traceback (most recent call last)" not in text
    assert not soup.select(".output.traceback, .output.error")
    # Executed: at least one cell output is on the page.
    assert soup.select(".cell_output"), f"{page} shows no cell output: was it executed?"
    # Book builds set TQDM_DISABLE: no progress-bar lines flood the page.
    assert not re.search(r"\d+/\d+ \[\d+:\d+<", text), f"{page} shows tqdm progress bars"
    # Nor library chatter: device moves, the ipywidgets hint, UMAP's n_jobs notice.
    for noise in ("Moving model to device", "IProgress not found", "n_jobs value"):
        assert noise not in text, f"{page} shows library chatter: {noise!r}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_colab_link_points_at_main(html_root: Path, page: str) -> None:
    html = (html_root / f"{page}.html").read_text()
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    links = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html)
    assert links, f"{page} has no Colab launch link"
    expected = f"https://colab.research.google.com/github/{owner_repo}/blob/main/{page}.ipynb"
    assert expected in links, f"{page}: Colab link {links} is not {expected}"


def test_getting_started_shows_its_figure(html_root: Path) -> None:
    soup = BeautifulSoup((html_root / "notebooks/00_getting_started.html").read_text(), "html.parser")
    imgs = [img for img in soup.select(".cell_output img") if img.get("src")]
    assert imgs, "the attention-pattern figure is missing"
    for img in imgs:
        assert (html_root / "notebooks" / img["src"]).exists() or img["src"].startswith("data:")
