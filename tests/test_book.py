"""The HTML book: MathJax vendoring, the summary-table extension, the warning-free build, and the
built pages in a real headless browser (Debian's chromium), offline.

The browser tests build the real tree (`_config.yml`, `_toc.yml`, `book/`) into a temporary
folder, serve it on 127.0.0.1 and open the tour chapter and the intro: figures must load,
formulas must be typeset by the local MathJax, and no request may leave 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from ensembles_lib import book
from ensembles_lib.book_ext import format_value
from ensembles_lib.paths import checkout_root
from ensembles_lib.results import load_results

ROOT = checkout_root()
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# --- MathJax vendoring (no network) ------------------------------------------------------------

def _npm_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_bundle_flattens_es5_and_keeps_licence(tmp_path):
    tgz = _npm_tarball(tmp_path / "mathjax-3.2.2.tgz", {
        "package/es5/tex-chtml.js": b"// entry",
        "package/es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff": b"font",
        "package/LICENSE": b"Apache",
        "package/package.json": b"{}",
        "package/README.md": b"readme",
    })
    book._extract_bundle(tgz, tmp_path / "out")
    files = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == ["LICENSE", "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "tex-chtml.js"]
    assert (tmp_path / "out" / "tex-chtml.js").read_bytes() == b"// entry"


def test_extract_bundle_refuses_paths_that_escape(tmp_path):
    tgz = _npm_tarball(tmp_path / "evil.tgz", {"package/es5/../../../escaped.js": b"x"})
    with pytest.raises(RuntimeError, match="refusing to unpack"):
        book._extract_bundle(tgz, tmp_path / "out")
    assert not (tmp_path / "escaped.js").exists()


def test_vendor_mathjax_reuses_an_existing_copy_without_npm(tmp_path, monkeypatch):
    entry = tmp_path / "vendor" / book.MATHJAX_ENTRY
    entry.parent.mkdir(parents=True)
    entry.write_text("// mathjax")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert book.vendor_mathjax(tmp_path) == tmp_path / "vendor" / "mathjax"


def test_vendor_mathjax_without_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="npm is needed"):
        book.vendor_mathjax(tmp_path)
    assert not (tmp_path / "vendor" / "mathjax").exists()


def test_build_html_refuses_a_folder_that_is_not_a_book(tmp_path):
    with pytest.raises(ValueError, match="root must be a book folder holding _config.yml"):
        book.build_html(tmp_path)


# --- the summary table's data ------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [(0.87654, "0.877"), (12, "12"), ("—", "—"), ("yes", "yes"), (1e-5, "1e-05")])
def test_format_value(value, text):
    assert format_value(value) == text


# --- a failing build ---------------------------------------------------------------------------

def _vendored() -> Path:
    try:
        return book.vendor_mathjax(ROOT)
    except RuntimeError as err:
        pytest.skip(f"no local MathJax copy and it cannot be fetched here: {err}")


def test_warnings_fail_the_build_and_are_all_reported(tmp_path):
    """A broken reference and a malformed results file: -W fails the build, --keep-going lets the
    error name both."""
    _vendored()
    (tmp_path / "vendor").symlink_to(ROOT / "vendor", target_is_directory=True)
    shutil.copy(ROOT / "_config.yml", tmp_path)
    (tmp_path / "book" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "book" / "references.bib", tmp_path / "book")
    (tmp_path / "book" / "results" / "tour.json").write_text('{"chapter": "tour"}')
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (tmp_path / "book" / "intro.md").write_text(
        "# Intro\n\nSee {doc}`no-such-page`.\n\n```{claims-summary} /book/results\n```\n")
    with pytest.raises(RuntimeError) as failure:
        book.build_html(tmp_path, tmp_path / "out")
    assert "no-such-page" in str(failure.value)
    assert "claims-summary: cannot read the results" in str(failure.value)
    assert "tour.json" in str(failure.value)


# --- the real book in a headless browser -------------------------------------------------------

@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt-get where this runs as root with apt; else skip."""
    pytest.importorskip("playwright.sync_api", reason="playwright-python is not installed")
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("/usr/bin/chromium is missing and apt-get as root is not available to install it")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, text=True)
        if done.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, text=True)
        if not CHROMIUM.exists():
            pytest.skip(f"apt-get could not install chromium: {done.stderr.strip()[-300:]}")
    return CHROMIUM


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """The real tree built into a temporary folder; its `_build/html`."""
    if not (ROOT / "book" / "tour.ipynb").is_file():
        pytest.fail("book/tour.ipynb is missing: the book's first chapter; run `ensembles run tour --profile cpu`")
    _vendored()
    index = book.build_html(ROOT, tmp_path_factory.mktemp("book"))
    return index.parent


@pytest.fixture(scope="module")
def served(built_book):
    """`built_book` on http://127.0.0.1:PORT (fonts and scripts load as on a web server)."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _open(browser, url: str, math: bool = True) -> tuple:
    """Open `url`, recording every request; any request off 127.0.0.1 is aborted (and recorded).
    Returns (page, requested urls, page errors) once MathJax has finished typesetting (`math`)
    and the network is idle."""
    context = browser.new_context()
    requests, errors = [], []
    context.on("request", lambda request: requests.append(request.url))

    def gate(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url, wait_until="load")
    if math:
        page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
        page.evaluate("() => MathJax.startup.promise")
    page.wait_for_load_state("networkidle")
    return page, requests, errors


def _outside(requests: list[str]) -> list[str]:
    return [u for u in requests if urlparse(u).scheme not in ("data", "blob")
            and urlparse(u).hostname != "127.0.0.1"]


IMAGES_JS = """() => [...document.querySelectorAll('article img')].map(i => ({
    src: i.currentSrc, complete: i.complete, natural: i.naturalWidth,
    width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height}))"""


def test_tour_page_shows_figures_and_math_offline(browser, served):
    page, requests, errors = _open(browser, f"{served}/book/tour.html")
    images = page.evaluate(IMAGES_JS)
    figures = [i for i in images if "/_images/" in i["src"]]
    assert figures, f"no figure on the tour page; images: {images}"
    for img in figures:
        assert img["complete"] and img["natural"] > 0 and img["width"] > 0 and img["height"] > 0, img
    assert page.locator("article mjx-container").count() > 0, "no typeset math on the tour page"
    assert page.locator("article mjx-merror").count() == 0, "MathJax reported a TeX error"
    assert _outside(requests) == []
    assert any("/_static/mathjax/tex-chtml.js" in u for u in requests)
    assert any("/_static/mathjax/output/chtml/fonts/" in u for u in requests), "MathJax fonts not served locally"
    assert errors == []
    page.context.close()


def test_intro_page_has_math_citations_and_the_summary_table(browser, served):
    page, requests, errors = _open(browser, f"{served}/book/intro.html")
    assert page.locator("article mjx-container").count() >= 3
    assert page.locator("article mjx-merror").count() == 0
    # Exactly one MathJax script: the whole bundle auto-loaded as page scripts would be a regression.
    assert page.locator("script[src*='mathjax/']").count() == 1
    cites = page.locator("article a[href*='references.html#id']")
    assert cites.count() >= 5
    expected = load_results(ROOT / "book" / "results")
    rows = page.locator("table.claims-summary tbody tr")
    assert rows.count() == sum(len(r["claims"]) for r in expected)
    if expected:
        first = rows.nth(0).locator("td")
        assert first.nth(0).inner_text().startswith(expected[0]["chapter"])
        # Sphinx's smart quotes turn ' into a typographic apostrophe.
        assert first.nth(1).inner_text().replace("\u2019", "'") == expected[0]["claims"][0]["claim"]
        assert first.nth(0).locator("a").count() == 1, "the chapter cell links to the chapter"
    assert _outside(requests) == []
    assert errors == []
    page.context.close()


def test_references_page_lists_the_five_papers(browser, served):
    page, requests, _ = _open(browser, f"{served}/book/references.html", math=False)
    text = page.locator("article").inner_text()
    for title in ("TREND", "DVERGE", "Stochastic Quantization", "Strength in Numbers", "Resilience from Diversity"):
        assert title in text
    assert _outside(requests) == []
    page.context.close()
