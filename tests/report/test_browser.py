"""Open the report in a real browser (Playwright driving Debian's chromium, no browser download) and check
what a person would see: no console errors, every figure decoded, a card and a section per technique."""
import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

from frugalnn.techniques import TECHNIQUES


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def test_report_renders_in_chromium(tiny_report, tiny_outcomes):
    chromium = _chromium()
    if chromium is None:  # the one allowed skip: `apt-get install chromium` (.ci/run does it as root)
        pytest.skip("chromium not installed")
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto((tiny_report / "index.html").as_uri(), wait_until="load")

            images = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => ({alt: i.alt, ok: i.complete, width: i.naturalWidth}))")
            cards = page.eval_on_selector_all(".cards > a.card", "cs => cs.map(c => c.dataset.technique)")
            sections = page.eval_on_selector_all("section.technique", "ss => ss.map(s => s.id)")
            # a card's link lands on its section
            page.click("#card-tmac")
            landed = page.evaluate("location.hash")
            shot = tiny_report / "index.png"
            page.goto((tiny_report / "index.html").as_uri(), wait_until="load")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    print(f"\nscreenshot: {shot}")
    assert errors == []
    assert outside == [], "the report must not load anything from outside the file"
    assert len(images) == sum(len(o.result.figures) for o in tiny_outcomes) > 0 and all(i["ok"] and i["width"] > 0 for i in images), images
    assert cards == [t.name for t in TECHNIQUES]
    assert sections == [t.name for t in TECHNIQUES]
    assert landed == "#tmac"
    assert shot.stat().st_size > 10_000
