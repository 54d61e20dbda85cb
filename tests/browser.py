"""Load pages of the built book in headless Chromium and report what a reader would see.

A small client of the Chrome DevTools Protocol (over ``websocket-client``): it starts Debian's
``chromium`` headless with a private profile, opens each page at a given window width, waits for
the page and its images, and returns a :class:`PageReport` with

- the images that failed to load (``naturalWidth == 0``) and the size each figure is drawn at,
- console errors, uncaught exceptions and failed requests, each with the URL it came from, so a
  caller can keep those raised by the book's own files (``file://``) apart from third-party
  scripts fetched from a CDN (which fail offline and are not the book's fault),
- a full-page PNG screenshot.

Used by ``tests/test_browser.py``; run by hand with::

    python tests/browser.py _build/ci/_build/html notebooks/06_concept_encoding_decoding
    python tests/browser.py --which     # the Chromium it would use (exit status 1: none)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium executable (``$LLMFEATURES_CHROMIUM`` first), or None."""
    explicit = os.environ.get("LLMFEATURES_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class PageReport:
    """What one page looked like in the browser."""

    url: str
    title: str = ""
    images: list[dict] = field(default_factory=list)  # src, natural/drawn size, in a cell output?
    cells: list[dict] = field(default_factory=list)  # code cells: source start, draws?, images
    errors: list[dict] = field(default_factory=list)  # kind, text, url
    screenshot: Path | None = None

    def own_errors(self, root_url: str) -> list[dict]:
        """Errors raised by files of the book itself (URLs under ``root_url`` or the page)."""
        return [e for e in self.errors if (e.get("url") or self.url).startswith(root_url)]

    def broken_images(self) -> list[str]:
        return [im["src"] for im in self.images if im["naturalWidth"] == 0]

    def cells_without_figure(self) -> list[str]:
        """Code cells that call a plotting function but show no image."""
        return [c["source"] for c in self.cells if c["draws"] and not c["images"]]


# JavaScript run in the page once it has loaded: force lazy images to load, wait for all of them,
# then describe each (drawn size against the size of the PNG).
_IMAGES_JS = r"""
(async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null :
      new Promise(r => { i.addEventListener("load", r); i.addEventListener("error", r);
                         setTimeout(r, 10000); })));
  const images = imgs.map(i => ({src: i.getAttribute("src") || "", currentSrc: i.currentSrc,
      naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
      width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height,
      inOutput: !!i.closest(".cell_output")}));
  // code cells that draw (plot_..., plt., .plot(, Image(...)) and the images they show
  const drawing = /\bplot_\w+\(|\bplt\.(subplots|figure|plot|imshow)|\.plot\(|\bImage\(/;
  const cells = [...document.querySelectorAll("div.cell")].map(c => {
      const src = (c.querySelector(".cell_input") || {}).innerText || "";
      return {source: src.slice(0, 120), draws: drawing.test(src),
              images: c.querySelectorAll(".cell_output img").length};
  });
  return {images, cells};
})()
"""


class Chromium:
    """A headless Chromium driven over the DevTools protocol; use as a context manager."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = 60):
        self.executable, self.width, self.height, self.timeout = executable, width, height, timeout
        self._next_id = 0
        self._events: list[dict] = []

    # ----------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Chromium:
        import websocket  # websocket-client, from the `dev` extra

        self._profile = tempfile.mkdtemp(prefix="llmfeatures-chromium-")
        args = [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.executable} did not start its DevTools server")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout,
                                               suppress_origin=True)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    # ------------------------------------------------------------------------------ protocol
    def send(self, method: str, **params) -> dict:
        """Call a DevTools method and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        msg_id = self._next_id
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def _wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == event for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {self.timeout} s")
            msg = json.loads(self._ws.recv())
            if "method" in msg:
                self._events.append(msg)

    # --------------------------------------------------------------------------------- pages
    def visit(self, url: str, screenshot: Path | None = None) -> PageReport:
        """Open ``url``, wait for it and its images, collect errors; save a full-page PNG."""
        self._events = []
        self.send("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired")
        found = self.send("Runtime.evaluate", expression=_IMAGES_JS, awaitPromise=True,
                          returnByValue=True)["result"].get("value") or {}
        time.sleep(0.3)  # let late console messages arrive
        self.send("Runtime.evaluate", expression="0")
        title = self.send("Runtime.evaluate", expression="document.title",
                          returnByValue=True)["result"].get("value", "")
        report = PageReport(url=url, title=title, images=found.get("images", []),
                            cells=found.get("cells", []), errors=self._errors())
        if screenshot is not None:
            height = self.send("Runtime.evaluate", returnByValue=True,
                               expression="document.documentElement.scrollHeight")["result"]["value"]
            shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": self.width,
                                   "height": min(int(height), 16000), "scale": 1})
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            report.screenshot = screenshot
        return report

    def _errors(self) -> list[dict]:
        requests: dict[str, str] = {}
        errors = []
        for e in self._events:
            method, p = e["method"], e.get("params", {})
            if method == "Network.requestWillBeSent":
                requests[p["requestId"]] = p["request"]["url"]
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                errors.append({"kind": "request failed", "text": p.get("errorText", ""),
                               "url": requests.get(p["requestId"], "")})
            elif method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                frames = (d.get("stackTrace") or {}).get("callFrames") or [{}]
                text = (d.get("exception") or {}).get("description") or d.get("text", "")
                errors.append({"kind": "exception", "text": text,
                               "url": d.get("url") or frames[0].get("url", "")})
            elif method == "Runtime.consoleAPICalled" and p.get("type") == "error":
                frames = (p.get("stackTrace") or {}).get("callFrames") or [{}]
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                errors.append({"kind": "console.error", "text": text,
                               "url": frames[0].get("url", "")})
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                entry = p["entry"]
                errors.append({"kind": f"log ({entry.get('source')})", "text": entry.get("text", ""),
                               "url": entry.get("url", "")})
        return errors


def main(argv: list[str]) -> int:
    if argv == ["--which"]:  # used by the Makefile to say when the browser check is skipped
        exe = find_chromium()
        print(exe or "Chromium not found")
        return 0 if exe else 1
    if len(argv) < 2:
        print("usage: python tests/browser.py HTML_ROOT PAGE...", file=sys.stderr)
        return 2
    exe = find_chromium()
    if exe is None:
        print("Chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 1
    root = Path(argv[0]).resolve()
    with Chromium(exe) as browser:
        for page in argv[1:]:
            shot = root.parent / "browser" / f"{page}.png"
            rep = browser.visit((root / f"{page}.html").as_uri(), screenshot=shot)
            print(f"{page}: {rep.title!r}, {len(rep.images)} images, broken {rep.broken_images()}")
            for src in rep.cells_without_figure():
                print(f"   a drawing cell shows no figure: {src!r}")
            for im in rep.images:
                if im["inOutput"]:
                    print(f"   figure {im['naturalWidth']}x{im['naturalHeight']} drawn at "
                          f"{im['width']:.0f}x{im['height']:.0f}")
            for err in rep.errors:
                print(f"   {err['kind']}: {err['text'][:160]} [{err['url'][:100]}]")
            print(f"   screenshot {shot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
