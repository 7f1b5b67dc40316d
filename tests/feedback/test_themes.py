"""Light and dark themes follow prefers-color-scheme, with readable contrast in both; with
RLHFKIT_SCREENSHOTS=DIR set, the README screenshots are written there (under 300 KB each)."""

import os
import random
from pathlib import Path

import pytest

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.simulate import AnnotatorPool, SimulatedAnnotator, label_over_http
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.test_browser import ARGS, CHROMIUM, _serve, pytestmark  # noqa: F401  (skip mark)

PROMPT = "How should I store passwords in my web app's database?"
ANSWERS = [
    "Never store them in plain text. Hash each password with a slow, salted algorithm:\n\n"
    "1. Use **Argon2id** (or bcrypt) from a maintained library.\n2. Store only the hash string.\n"
    "3. On login, call `verify(hash, password)`.\n\n```python\nfrom argon2 import PasswordHasher\n"
    "ph = PasswordHasher()\nstored = ph.hash(password)\n```",
    "Encrypt them with AES and keep the key in the same database so you can decrypt them later.",
    "Use SHA-256 on the password. It is fast, which keeps logins quick.",
]


def _luminance(rgb: str) -> float:
    r, g, b = (int(x) / 255 for x in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two rgb() colours."""
    hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture
def demo(tmp_path):
    db = Database(str(tmp_path / "demo.db"), synchronous="NORMAL")
    rng = random.Random(0)
    with db.session() as s:
        p = repo.create_project(s, "helpfulness", overlap=3, gold_rate=0.0,
                                instructions="Rank by correctness first, then clarity.")
        items = [PreferenceItem(id=f"q{n}", prompt=f"Question {n}?", responses=[
            Response(text=f"{rng.randint(0, 9)} answer {n}.{j} " + "detail " * rng.randint(0, 12)) for j in range(3)])
            for n in range(12)]
        repo.import_items(s, p, [(it, f"demo:{n}") for n, it in enumerate(items)])
        names = ["ana", "ben", "chen", "dara"]
        tokens = {n: repo.add_annotator(s, n)[1] for n in names}
        _a, viewer = repo.add_annotator(s, "you")
        admin = repo.ensure_admin_token(s)
        pid = p.id
    server, thread, base = _serve(db)
    from fastapi.testclient import TestClient

    from rlhfkit.feedback.app import create_app

    gold = lambda prompt, text: float(text[0]) if text[0].isdigit() else 5.0  # noqa: E731
    pool = AnnotatorPool([SimulatedAnnotator(n, gold, temperature=1.5 + i, flip_rate=0.05 * i)
                          for i, n in enumerate(names)], seed=1)
    with TestClient(create_app(db)) as c:
        label_over_http("", pid, pool, tokens, client=c, max_judgements=30)
    with db.session() as s:  # the item "you" sees first in the screenshots
        p = repo.get_project(s, pid)
        pw = PreferenceItem(id="pw", prompt=PROMPT, responses=[Response(text=t) for t in ANSWERS])
        repo.import_items(s, p, [(pw, "demo:pw")])
        from rlhfkit.feedback.models import Item

        s.query(Item).filter(Item.external_id == "pw").one().disagreement = 1.0
        p.order_by = "disagreement"
    yield base, viewer, admin, db
    server.should_exit = True
    thread.join(10)
    db.close()


def test_themes_follow_the_system_setting_with_readable_contrast(demo):
    sync_api = pytest.importorskip("playwright.sync_api")
    base, viewer, admin, _db = demo
    shots = os.environ.get("RLHFKIT_SCREENSHOTS")
    seen = {}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 1280, "height": 820}, color_scheme=scheme)
            page.goto(f"{base}/login?token={viewer}")
            sync_api.expect(page.locator(".response")).to_have_count(3)
            page.keyboard.press("1")  # place one response so the ranking bar shows a tier
            body = page.locator("body")
            bg = body.evaluate("e => getComputedStyle(e).backgroundColor")
            ink = body.evaluate("e => getComputedStyle(e).color")
            card = page.locator(".prompt-box")
            card_bg = card.evaluate("e => getComputedStyle(e).backgroundColor")
            muted = page.locator(".brand").evaluate("e => getComputedStyle(e).color")
            seen[scheme] = (bg, ink)
            assert contrast(ink, bg) >= 7, (scheme, ink, bg)
            assert contrast(muted, card_bg) >= 4.5, (scheme, muted, card_bg)
            if shots:
                page.screenshot(path=str(Path(shots) / f"annotate-{scheme}.png"))
            page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 820}, color_scheme="light")
        page.goto(f"{base}/login?token={admin}")
        sync_api.expect(page.locator(".admin table").first).to_be_visible()
        if shots:
            page.screenshot(path=str(Path(shots) / "admin.png"))
        browser.close()
    assert seen["light"][0] == "rgb(246, 247, 249)" and seen["dark"][0] == "rgb(18, 21, 28)"
    if shots:
        for name in ("annotate-light.png", "annotate-dark.png", "admin.png"):
            assert (Path(shots) / name).stat().st_size < 300_000, name
