"""A real browser (Debian's chromium via Playwright): log in by link, rank by keyboard, check the DB."""

import os
import re
import socket
import threading
import time

import pytest
from sqlalchemy import select

from rlhfkit.feedback import repo
from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.models import Assignment, Item, Judgement, Project
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.conftest import XSS

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium (make system-deps)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def live(tmp_path):
    db = Database(str(tmp_path / "feedback.db"))
    items = [
        PreferenceItem(id="xss", prompt="Which answer is safest? `code` & <b>bold</b>",
                       responses=[Response(text="A **plain**, careful answer.\nWith two lines:\n\n1. first `<i>x</i>`\n"
                                                "2. **<img src=x onerror=alert(3)>**\n\n> quoted"),
                                  Response(text=XSS),
                                  Response(text="Here is code:\n```python\nprint('<b>hi</b>')\n```\nDone.")]),
        PreferenceItem(id="two", prompt="Name a prime number.",
                       responses=[Response(text="7"), Response(text="Nine."), Response(text="2 is the smallest prime.")]),
        PreferenceItem(id="three", prompt=[{"role": "user", "content": "Say hello in French."}],
                       responses=[Response(text="Bonjour !"), Response(text="Hola"), Response(text="Salut")]),
    ]
    with db.session() as s:
        p = repo.create_project(s, "browser-test", overlap=1, instructions="Rank by helpfulness and harmlessness.")
        repo.import_items(s, p, [(it, f"t:{n}") for n, it in enumerate(items)])
        for n, it in enumerate(s.scalars(select(Item).order_by(Item.id))):
            it.disagreement = 10.0 - n  # serve in file order: the XSS item first
        p.order_by = "disagreement"
        _a, token = repo.add_annotator(s, "alice")
    server, thread, base = _serve(db)
    yield base, token, db
    server.should_exit = True
    thread.join(10)
    db.close()


def _responses(page, expect):
    # Locator waits, not wait_for_function: the page's CSP (kept on here) forbids eval.
    expect(page.locator(".response")).to_have_count(3)
    return page.locator(".response")


def test_keyboard_ranking_in_a_real_browser(live, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    base, token, db = live
    dialogs = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{base}/login?token={token}")
        assert page.url.endswith("/annotate/1")  # one project: straight to it

        # item 1 (the XSS one): press 2 then 1; the last response is placed automatically
        cards = _responses(page, expect)
        texts = [cards.nth(i).locator(".response-text").inner_text() for i in range(3)]
        assert any("<script>alert(1)</script>" in t and 'onerror="alert(2)"' in t for t in texts)
        assert page.locator(".response img, .response script").count() == 0
        assert page.locator(".response pre code").count() == 1  # fenced code rendered as code
        # markdown becomes elements, and HTML inside markdown stays text
        assert page.locator(".response strong").count() == 2 and page.locator(".response ol li").count() == 2
        assert page.locator(".response li code").inner_text() == "<i>x</i>"
        assert page.locator(".response li strong").inner_text() == "<img src=x onerror=alert(3)>"
        assert page.locator(".response blockquote").inner_text() == "quoted"
        assert page.locator(".response i").count() == 0
        page.keyboard.press("2")
        page.keyboard.press("1")
        assert page.locator(".tier").count() == 3
        page.keyboard.press("Backspace")  # undo the auto-placed and then redo
        assert page.locator(".tier").count() == 2
        page.keyboard.press("3")
        page.screenshot(path=str(tmp_path / "annotate.png"), full_page=True)
        page.keyboard.press("Enter")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))

        # item 2: best is 3, then 1 tied with it (Shift+1), 2 last
        _responses(page, expect)
        page.keyboard.press("3")
        page.keyboard.press("Shift+Digit1")
        page.keyboard.press("c")
        page.keyboard.type("Both correct; one explains.")
        page.keyboard.press("Escape")
        page.keyboard.press("Enter")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^2 judged"))

        # item 3 (chat prompt): "=" ties the next number with the previous one
        _responses(page, expect)
        assert "Say hello in French." in page.locator("#prompt").inner_text()
        page.keyboard.press("1")
        page.keyboard.press("=")
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        page.wait_for_selector(".done")
        page.keyboard.press("?")
        assert page.locator("#help").is_visible() and "best remaining" in page.locator("#help").inner_text()
        page.screenshot(path=str(tmp_path / "done.png"))
        browser.close()
    assert dialogs == []  # no alert() ever ran

    with db.session() as s:
        rows = {s.get(Item, j.item_id).external_id: j for j in s.scalars(select(Judgement))}
        assert set(rows) == {"xss", "two", "three"}
        for j in rows.values():
            assert j.shown_order == s.get(Assignment, j.assignment_id).shown_order
        o = rows["xss"].shown_order  # display position -> original index
        assert rows["xss"].judgement == {"kind": "ranking", "tiers": [[o[1]], [o[0]], [o[2]]]}
        o = rows["two"].shown_order
        assert rows["two"].judgement == {"kind": "ranking", "tiers": [[o[2], o[0]], [o[1]]]}
        assert rows["two"].critique == "Both correct; one explains."
        o = rows["three"].shown_order
        assert rows["three"].judgement == {"kind": "ranking", "tiers": [[o[0], o[2]], [o[1]]]}
        assert all(j.time_spent_s is not None and j.time_spent_s >= 0 for j in rows.values())
        assert s.scalar(select(Project)).name == "browser-test"
    assert (tmp_path / "annotate.png").stat().st_size > 10_000
    print("screenshot:", tmp_path / "annotate.png")


def test_pairwise_mode_and_admin_dashboard(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db = Database(str(tmp_path / "feedback.db"))
    items = [PreferenceItem(id=f"p{i}", prompt=f"Is {i} even?", responses=[
        Response(text=f"Yes, {i} is even." if i % 2 == 0 else f"No, {i} is odd."), Response(text="I cannot say.")])
        for i in range(2)]
    with db.session() as s:
        p = repo.create_project(s, "pairs", mode="pairwise", overlap=1)
        repo.import_items(s, p, [(it, f"t:{n}") for n, it in enumerate(items)])
        _a, token = repo.add_annotator(s, "bob")
        admin = repo.ensure_admin_token(s)
    server, thread, base = _serve(db)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"{base}/login?token={token}")
            expect(page.locator(".response")).to_have_count(2)
            page.keyboard.press("a")
            expect(page.locator(".response.best")).to_have_count(1)
            page.screenshot(path=str(tmp_path / "pairwise.png"))
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))
            page.keyboard.press("t")
            page.keyboard.press("Enter")
            expect(page.locator(".done")).to_have_count(1)
            page.keyboard.press("Shift+U")  # undo the last submission: the item comes back
            expect(page.locator(".response")).to_have_count(2)
            page.keyboard.press("x")
            page.keyboard.press("Enter")
            expect(page.locator(".done")).to_have_count(1)
            admin_page = browser.new_page(viewport={"width": 1200, "height": 800})
            admin_page.goto(f"{base}/login?token={admin}")
            expect(admin_page.locator("h1")).to_have_text("Projects")
            assert "bob" in admin_page.locator("table").first.inner_text()
            admin_page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
            browser.close()
        with db.read() as s:
            got = sorted(j.judgement["choice"] for j in s.scalars(select(Judgement)))
        assert got == ["a", "both_bad"]  # the retracted "tie" is gone
    finally:
        server.should_exit = True
        thread.join(10)
        db.close()
    print("screenshots:", tmp_path)


def test_drag_to_rank_and_tie(live):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    base, token, db = live
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/login?token={token}")
        _responses(page, expect)
        page.drag_and_drop(".response[data-pos='2']", "#ranking")  # response 3 is best
        expect(page.locator(".tier")).to_have_count(1)
        page.drag_and_drop(".response[data-pos='0']", ".tier")  # response 1 ties with it
        expect(page.locator(".tier")).to_have_count(2)  # and response 2 is placed last
        assert page.locator(".tier").first.inner_text().replace("\n", " ").endswith("3 = 1")
        page.keyboard.press("Enter")
        expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))
        browser.close()
    with db.read() as s:
        j = s.scalar(select(Judgement))
        o = j.shown_order
        assert j.judgement["tiers"] == [[o[2], o[0]], [o[1]]]
