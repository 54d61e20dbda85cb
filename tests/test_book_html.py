"""Checks on the built book (run by `make test` after `jupyter-book build`).

Set ``LLMFEATURES_BOOK_HTML`` to the built ``_build/html`` folder; the Makefile does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from llmfeatures.nbtools import REPOSITORY
from tests.conftest import ROOT, toc_files

pytestmark = pytest.mark.book


def _soup(html_root: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((html_root / f"{page}.html").read_text(), "html.parser")


def _chapter_number(page: str) -> str:
    """The number a chapter's source notebook gives itself in its title ("6", "0.1")."""
    nb = json.loads((ROOT / f"{page}.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    m = re.match(r"# (\d+)\.(\d+)?\s", first)
    assert m, f"{page}: title without a number"
    return ".".join(filter(None, m.groups()))


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
def test_no_output_shows_a_warning_a_temporary_path_or_a_progress_bar(html_root: Path,
                                                                      page: str) -> None:
    soup = _soup(html_root, page)
    stderr = [o.get_text()[:200] for o in soup.select(".cell_output .output.stderr")]
    assert not stderr, f"{page}: a cell writes to stderr (a warning or a log line): {stderr}"
    for out in soup.select(".cell_output"):
        # the book's own folders (its cache lives in the clone) are not temporary paths, wherever
        # the clone is
        text = out.get_text().replace(str(ROOT), "<repo>")
        for pattern, what in [(r"\b\w*Warning\b:", "a warning"),
                              (r"/tmp/|ipykernel_\d+|/var/folders/", "a temporary path"),
                              (r"\d+%\|", "a progress bar"),
                              (r"(?m)^\s*warnings\.warn\(", "a warning's source line")]:
            assert not re.search(pattern, text), f"{page}: an output shows {what}: {text[:300]!r}"


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chapter_title_and_sidebar_carry_its_number(html_root: Path, page: str) -> None:
    soup = _soup(html_root, page)
    number = _chapter_number(page)
    h1 = soup.select_one("main h1, article h1").get_text(" ", strip=True)
    assert re.match(rf"{re.escape(number)}\.?\s", h1), f"{page}: title {h1!r} lacks {number}"
    # the sidebar of any page lists the chapter with its number
    index = _soup(html_root, "book/how_to_read")
    link = index.select_one(f'nav a[href$="{page.split("/")[-1]}.html"]')
    assert link is not None, f"{page} is not in the sidebar"
    assert re.match(rf"{re.escape(number)}\.?\s", link.get_text(" ", strip=True))


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_exercises_are_numbered_within_their_chapter(html_root: Path, page: str) -> None:
    soup = _soup(html_root, page)
    number = _chapter_number(page)
    titles = [t.get_text(" ", strip=True) for t in soup.select(".exercise .admonition-title")]
    for i, title in enumerate(titles, start=1):
        assert title.startswith(f"Exercise {number}.{i} "), f"{page}: exercise {i} is {title!r}"
    solutions = [t.get_text(" ", strip=True) for t in soup.select(".solution .admonition-title")]
    for i, title in enumerate(solutions, start=1):
        assert f"Exercise {number}.{i}" in title, f"{page}: solution {i} is {title!r}"


def test_course_outline_times_are_the_chapters_own(html_root: Path) -> None:
    soup = _soup(html_root, "book/course_outline")
    rows = soup.select(".chapter-outline table tbody tr")
    linked = {}
    for row in rows:
        cells = row.find_all("td")
        link = cells[0].find("a")
        if link is not None:
            linked[link["href"].split("#")[0]] = (cells[0].get_text(" ", strip=True),
                                                  cells[-1].get_text(strip=True))
        else:
            assert "in preparation" in cells[0].get_text(), "a chapter without a link"
    for page in NOTEBOOK_PAGES:
        href = f"../{page}.html"
        assert href in linked, f"the course outline does not link {page}"
        title, time = linked[href]
        assert title.startswith(_chapter_number(page))
        m = re.search(r"About (\d+) minutes", _soup(html_root, page).get_text(), re.IGNORECASE)
        assert m, f"{page} states no time"
        assert time == f"{m.group(1)} min", f"{page}: outline says {time}, the chapter {m.group(0)}"


def test_framing_article_is_cited_with_author_and_year(html_root: Path) -> None:
    intro = _soup(html_root, "book/intro").get_text(" ", strip=True)
    assert re.search(r"Krampis,? [(\[]? ?2025", intro), "cite the framing article as Krampis (2025)"
    refs = _soup(html_root, "book/bibliography").get_text(" ", strip=True)
    assert "Features in Transformer LLMs and Mechanistic Interpretability" in refs
    assert "Krampis" in refs and "April 2025" in refs


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


def test_organism_page_shows_a_feature_dashboard(html_root: Path) -> None:
    """The feature engine's dashboard is rendered inside the page (HTML output, no script)."""
    soup = _soup(html_root, "notebooks/00_model_organism")
    boards = soup.select(".cell_output .llmf-dashboard")
    assert len(boards) == 1, "the organism page should show one feature dashboard"
    board = boards[0]
    assert board.find("svg"), "the dashboard's activation histogram is missing"
    assert board.select(".llmf-max"), "the dashboard shows no max-activating example"
    assert "promotes" in board.get_text() and "purity (entity_type)" in board.get_text()
