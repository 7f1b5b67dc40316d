"""UI defects of issue 14 in a real browser: "all bad" badges are red, a 390 px phone sees
response B uncovered at every scroll position, no page requests a missing favicon, and an
empty response reads "(empty response)"."""

import pytest

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.test_browser import ARGS, CHROMIUM, _serve, live, pytestmark  # noqa: F401  (fixture, skip mark)

BAD_RED = "rgb(180, 35, 24)"  # --bad: #b42318
GOOD_GREEN = "rgb(31, 138, 76)"  # --good: #1f8a4c
LONG = "\n\n".join(f"Paragraph {i}: " + "a fairly long sentence that wraps on a phone screen. " * 3 for i in range(6))


def _browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def _overlap(a, b) -> float:
    """Area shared by two bounding boxes (viewport coordinates)."""
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


def test_all_bad_badges_are_red_not_green(live):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, token, _db = live
    with sync_api.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/login?token={token}")
        sync_api.expect(page.locator(".response")).to_have_count(3)
        page.keyboard.press("x")
        badges = page.locator(".response .rank-badge")
        sync_api.expect(badges.first).to_have_text("bad")
        colours = [badges.nth(i).evaluate("e => getComputedStyle(e).color") for i in range(3)]
        browser.close()
    assert colours == [BAD_RED] * 3, colours


def test_phone_sticky_controls_never_cover_response_b(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    db = Database(str(tmp_path / "f.db"))
    with db.session() as s:
        p = repo.create_project(s, "phone", mode="pairwise", overlap=1, instructions="Pick the more helpful answer.")
        item = PreferenceItem(id="long", prompt="Explain how tides work, in detail.",
                              responses=[Response(text="A. " + LONG), Response(text="B. " + LONG)])
        repo.import_items(s, p, [(item, "t:1")])
        _a, token = repo.add_annotator(s, "pat")
    server, thread, base = _serve(db)
    try:
        with sync_api.sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)
            page.goto(f"{base}/login?token={token}")
            sync_api.expect(page.locator(".response")).to_have_count(2)
            b, controls = page.locator(".response").nth(1), page.locator(".controls")
            checked = 0
            for _step in range(40):  # from the top to the end of the page, 150 px at a time
                bb, cb = b.bounding_box(), controls.bounding_box()
                if bb["y"] < 844 and bb["y"] + bb["height"] > 0:  # B is (partly) on screen
                    assert _overlap(bb, cb) == 0, (bb, cb)
                    checked += 1
                at_end = page.evaluate("() => innerHeight + scrollY >= document.documentElement.scrollHeight - 1")
                if at_end:
                    break
                page.mouse.wheel(0, 150)
                page.wait_for_timeout(30)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            browser.close()
        assert checked >= 3  # B was really on screen at several scroll positions
        assert width <= 390  # nothing forces sideways scrolling
    finally:
        server.should_exit = True
        thread.join(10)
        db.close()


def test_no_page_requests_a_missing_favicon(live):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, token, db = live
    with db.session() as s:
        admin = repo.rotate_admin_token(s)
    failures = []
    with sync_api.sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        page.on("response", lambda r: failures.append((r.status, r.url)) if r.status == 404 else None)
        for url in (f"{base}/login?token={token}", f"{base}/admin", f"{base}/logout", f"{base}/login?token={admin}"):
            page.goto(url)
            page.wait_for_load_state("networkidle")
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        got = page.request.get(base + icon)
        direct = page.request.get(f"{base}/favicon.ico")
        got_type, direct_status, direct_body = got.headers["content-type"], direct.status, direct.body()
        browser.close()
    assert failures == []
    assert got.status == 200 and got_type.startswith("image/svg+xml")
    assert direct_status == 200 and b"<svg" in direct_body


def test_empty_response_reads_as_empty(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from rlhfkit.feedback.items_io import parse_record

    db = Database(str(tmp_path / "f.db"))
    item = parse_record({"id": "e", "prompt": "Say something.", "responses": [{"text": "Hello."}, {"text": ""}]},
                        "rlhfkit", empty="flag")
    with db.session() as s:
        p = repo.create_project(s, "empties", mode="pairwise", overlap=1)
        repo.import_items(s, p, [(item, "t:1")])
        _a, token = repo.add_annotator(s, "eve")
    server, thread, base = _serve(db)
    try:
        with sync_api.sync_playwright() as pw:
            browser = _browser(pw)
            page = browser.new_page()
            page.goto(f"{base}/login?token={token}")
            sync_api.expect(page.locator(".empty-response")).to_have_text("(empty response)")
            texts = page.locator(".response-text").all_inner_texts()
            browser.close()
        assert sorted(t.strip() for t in texts) == ["(empty response)", "Hello."]
    finally:
        server.should_exit = True
        thread.join(10)
        db.close()
