"""The rendered quick book, opened as a reader would, in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped with the
reason when they are missing. Nothing comes from the network: formulas are typeset by the MathJax
copy the book carries. The book is the quick one the end-to-end tests execute (the
``quick_book`` fixture); screenshots of every page are kept under its build folder
(``_build/screenshots/``) as artifacts.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from helpers import book

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)"),
]


def _build_html(root: Path) -> Path:
    """Build the HTML of the book whose sources and executed notebooks are in ``root``."""
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", "--quiet", str(root)],
                   check=True, capture_output=True)
    return root / "_build" / "html"


def _browser(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--no-first-run", "--disable-component-update",
                 f"--user-data-dir={profile_dir}", "--window-size=1280,1600"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def test_every_page_of_the_quick_book_renders_in_chromium(quick_book, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    html = _build_html(quick_book)
    screenshots = quick_book / "_build" / "screenshots"
    screenshots.mkdir(exist_ok=True)
    chapters = book.toc_notebooks()
    pages = [html / "index.html"] + [html / "book" / "executed" / f"{name}.html" for name in chapters]
    driver = _browser(tmp_path / "chromium-profile")
    try:
        for page in pages:
            assert page.is_file(), page
            driver.get(page.as_uri())
            # index.html redirects to the intro: wait until a page with a heading has finished loading
            heading_script = "return document.querySelector('main h1, article h1')?.innerText || ''"
            WebDriverWait(driver, 20).until(
                lambda d: (d.execute_script("return document.readyState") == "complete"
                           and not d.current_url.endswith("/index.html") and d.execute_script(heading_script)))
            name = Path(urlparse(driver.current_url).path).stem
            heading = driver.execute_script(heading_script)
            assert heading.strip() and heading.strip().rstrip("#").strip() in driver.title, (name, driver.title)
            text = driver.execute_script("return document.body.innerText")
            assert "Traceback" not in text and "Error" not in heading, name
            assert not re.search(r"\d+%\|", text) and "it/s]" not in text, f"{name}: progress-bar text"
            # every page says which data it shows and the training budget
            assert "Data:" in text and "Budget (profile quick)" in text, name
            assert "TqdmWarning" not in text and "IProgress" not in text, f"{name}: a warning no reader can act on"
            if name in chapters:
                loaded = driver.execute_script(
                    "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
                tables = driver.execute_script("return document.querySelectorAll('main table').length")
                assert loaded >= 1 or tables >= 1, f"{name}: neither a figure nor a table"
                # every code line fits the page, folded cells included (opened first)
                too_wide = driver.execute_script("""
                    document.querySelectorAll('details').forEach(d => d.open = true);
                    return Array.from(document.querySelectorAll('div.cell_input pre'))
                        .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
                        .map(pre => pre.innerText.split('\\n').reduce((a, b) => a.length >= b.length ? a : b));""")
                assert not too_wide, f"{name}: code wider than the page: {too_wide}"
                assert driver.execute_script(
                    "return document.querySelectorAll('div.cell_input pre').length") >= 1, name
            if name == "01_prepare_data":  # the simulator's formula, typeset by the book's own MathJax
                WebDriverWait(driver, 20).until(
                    lambda d: d.execute_script("return document.querySelectorAll('mjx-container').length") > 0)
                sources = driver.execute_script(
                    "return Array.from(document.scripts).map(s => s.src).filter(s => s.includes('mathjax'))")
                assert sources and all(s.startswith("file://") for s in sources), sources
            links = driver.execute_script(
                "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            local = [unquote(urlparse(link).path) for link in links if link.startswith("file://")]
            assert local, f"{name}: no navigation links"
            for target in local:
                assert Path(target).exists(), f"{name} links to missing {target}"
            if name in chapters[:-1]:  # the next chapter is one click away
                assert any(p.endswith(f"{chapters[chapters.index(name) + 1]}.html") for p in local), name
            driver.save_screenshot(str(screenshots / f"{name}.png"))
    finally:
        driver.quit()
    assert len(list(screenshots.glob("*.png"))) == len(pages)
