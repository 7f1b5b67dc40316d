"""The report in a real browser (headless Chromium via playwright): every plot decodes, every
section is on the page, model text stays inert, nothing is fetched; a full-page screenshot is
taken (and written to docs/images/report.png when RLHFKIT_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from rlhfkit.eval.report import build_report
from rlhfkit.eval.report_sections import SECTIONS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "report.png"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, html_path: Path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html_path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, requests


def test_report_renders_in_chromium(browser, rl_run, tmp_path):
    page, requests = _open(browser, build_report(rl_run, tmp_path / "report.html"))
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
    assert len(images) == 5
    for complete, width, height, alt in images:
        assert complete and width > 300 and height > 100, alt
    for sid, title in SECTIONS:
        section = page.locator(f"div.panel#{sid}")
        assert section.count() == 1 and section.is_visible(), sid
    # the completion holding <script> and an onerror handler ran nothing and reads as text
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".sample .text", has_text="<script>window.__pwned = 1</script>").count() == 1
    assert [u for u in requests if not u.startswith("file://")] == []  # nothing fetched
    # the table of contents links to every section
    assert page.locator("nav.toc a").count() == len(SECTIONS)

    png = page.screenshot(full_page=True)
    from PIL import Image

    shot = Image.open(io.BytesIO(png))
    assert shot.width == 1200 and shot.height > 2000
    (tmp_path / "report.png").write_bytes(png)
    if os.environ.get("RLHFKIT_UPDATE_SCREENSHOTS") == "1":
        # 256-colour palette (octree keeps the plot colours): flat colours and line art, ~3x smaller
        small = io.BytesIO()
        shot.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(small, "PNG", optimize=True)
        assert len(small.getvalue()) < 400_000
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(small.getvalue())
    page.close()


def test_reward_run_report_in_chromium(browser, trained_runs, tmp_path):
    page, requests = _open(browser, build_report(trained_runs["reward"], tmp_path / "rm.html"))
    widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(widths) == 2 and min(widths) > 300
    assert page.locator("p.na-line", has_text="not available: eval/winrate.json").is_visible()
    assert page.locator("nav.toc a.na").count() == len(SECTIONS) - 2  # greyed links for missing sections
    assert [u for u in requests if not u.startswith("file://")] == []
    page.close()
