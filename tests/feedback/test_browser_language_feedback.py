"""Language feedback in a real browser: a critique of one response (k then its number) and an edit
of the best response (e) with its word diff shown before submit, all by keyboard; typing in the
new text fields never triggers a shortcut; what lands in the database uses original indices."""

import re

import pytest
from sqlalchemy import select

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.models import Judgement
from rlhfkit.schema import PreferenceItem, Response
from tests.feedback.test_browser import ARGS, CHROMIUM, _serve, pytestmark  # noqa: F401  (skip mark)

TEXTS = ["Paris is the capital of France.", "The capital is Paris, a city on the Seine with many museums.",
         "Lyon <b>maybe</b>."]


def _served(tmp_path, mode):
    db = Database(str(tmp_path / "f.db"))
    item = PreferenceItem(id="q", prompt="Capital of France?", responses=[Response(text=t) for t in TEXTS])
    with db.session() as s:
        p = repo.create_project(s, f"lf-{mode}", mode=mode, overlap=1)
        repo.import_items(s, p, [(item, "t:1")])
        _a, token = repo.add_annotator(s, "ann")
    server, thread, base = _serve(db)
    return db, server, thread, base, token


def _stop(db, server, thread):
    server.should_exit = True
    thread.join(10)
    db.close()


def test_critique_and_edit_by_keyboard_in_ranking_mode(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, server, thread, base, token = _served(tmp_path, "ranking")
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/login?token={token}")
            cards = page.locator(".response")
            expect(cards).to_have_count(3)
            shown = [cards.nth(i).locator(".response-text").inner_text().strip() for i in range(3)]
            original = [TEXTS.index(t) for t in shown]  # display position -> original index

            page.keyboard.press("e")  # nothing ranked yet: no edit, a hint instead
            expect(page.locator("#status")).to_have_text(re.compile("Rank first"))
            assert page.locator("#edit-box").is_hidden()

            page.keyboard.press("k")
            page.keyboard.press("2")
            area = cards.nth(1).locator(".response-critique")
            expect(area).to_be_visible()
            expect(area).to_be_focused()
            page.keyboard.type("Too long: 1 sentence, 3 words.")  # digits and 'e' typed here are text
            page.keyboard.press("Escape")
            assert page.locator(".tier").count() == 0 and page.locator("#edit-box").is_hidden()

            page.keyboard.press("3")
            page.keyboard.press("1")  # 3 first, then 1; 2 is placed last for you
            assert page.locator(".tier").count() == 3
            page.keyboard.press("e")
            edit = page.locator("#edit-text")
            expect(edit).to_be_focused()
            assert edit.input_value() == shown[2]  # seeded with the best (ranked first) response
            expect(page.locator("#edit-diff")).to_have_text(re.compile("No changes yet"))
            page.keyboard.press("ControlOrMeta+a")
            page.keyboard.type("Paris.")
            expect(page.locator("#edit-diff ins")).to_have_count(1)
            # no word of the original is the token "Paris.": all of it removed (shown first), one word added
            parts = page.locator("#edit-diff > *")
            diff = [(parts.nth(i).evaluate("e => e.tagName"), parts.nth(i).inner_text()) for i in range(parts.count())]
            assert diff == [("DEL", shown[2]), ("INS", "Paris.")]
            assert page.locator("#edit-diff b").count() == 0  # markup in a response stays text in the diff
            page.screenshot(path=str(tmp_path / "edit.png"), full_page=True)
            page.keyboard.press("Escape")
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))
            browser.close()
        with db.read() as s:
            j = s.scalar(select(Judgement))
        assert j.judgement == {"kind": "ranking", "tiers": [[original[2]], [original[0]], [original[1]]]}
        assert j.response_critiques == [{"response": original[1], "text": "Too long: 1 sentence, 3 words."}]
        assert j.edit == {"response": original[2], "text": "Paris."}
    finally:
        _stop(db, server, thread)


def test_pairwise_critique_of_a_and_edit_of_the_choice(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, server, thread, base, token = _served(tmp_path, "pairwise")
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(f"{base}/login?token={token}")
            cards = page.locator(".response")
            expect(cards).to_have_count(2)
            shown = [TEXTS.index(cards.nth(i).locator(".response-text").inner_text().strip()) for i in range(2)]
            page.keyboard.press("k")
            page.keyboard.press("a")
            expect(cards.nth(0).locator(".response-critique")).to_be_focused()
            page.keyboard.type("Answer with the city only.")
            page.keyboard.press("Escape")
            page.keyboard.press("b")
            page.keyboard.press("e")
            expect(page.locator("#edit-text")).to_be_focused()
            assert page.locator("#edit-text").input_value() == TEXTS[shown[1]]
            page.keyboard.press("End")
            page.keyboard.type(" Sure.")
            expect(page.locator("#edit-diff ins")).to_have_text(re.compile("Sure"))
            page.click("#edit-discard")  # discarded: no edit is sent
            assert page.locator("#edit-box").is_hidden()
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))
            browser.close()
        with db.read() as s:
            j = s.scalar(select(Judgement))
        assert j.judgement == {"kind": "pairwise", "a": shown[0], "b": shown[1], "choice": "b"}
        assert j.response_critiques == [{"response": shown[0], "text": "Answer with the city only."}]
        assert j.edit is None
    finally:
        _stop(db, server, thread)


def test_rating_mode_critique_of_the_selected_and_edit_of_the_highest_rated(tmp_path):
    """In a rating project k still moves the selection and digits rate (scales.js); K critiques
    the selected response and e edits the highest-rated one."""
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, server, thread, base, token = _served(tmp_path, "rating")
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/login?token={token}")
            cards = page.locator(".response")
            expect(cards).to_have_count(3)
            original = [TEXTS.index(cards.nth(i).locator(".response-text").inner_text().strip()) for i in range(3)]

            page.keyboard.press("j")
            page.keyboard.press("j")
            page.keyboard.press("k")  # back to the second card: k is the selection's, not a critique
            expect(cards.nth(1)).to_have_class(re.compile(r"\bselected\b"))
            assert page.locator(".response-critique:visible").count() == 0
            page.keyboard.press("e")  # nothing rated yet
            expect(page.locator("#status")).to_have_text(re.compile("Rate first"))
            page.keyboard.press("Shift+K")
            area = cards.nth(1).locator(".response-critique")
            expect(area).to_be_focused()
            page.keyboard.type("Wrong: 7 words, k j.")  # digits and k/j typed here are text
            page.keyboard.press("Escape")
            expect(page.locator(".scale-option.chosen")).to_have_count(0)

            for key in ("2", "6", "4"):  # selection at 2nd card: rates 2nd, 3rd, then the 1st
                page.keyboard.press(key)
            expect(page.locator(".scale-option.chosen")).to_have_count(3)
            page.keyboard.press("e")
            edit = page.locator("#edit-text")
            expect(edit).to_be_focused()
            assert edit.input_value() == TEXTS[original[2]]  # rated 6, the highest
            page.keyboard.press("ControlOrMeta+a")
            page.keyboard.type("Paris.")
            page.keyboard.press("Escape")
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text(re.compile(r"^1 judged"))
            browser.close()
        with db.read() as s:
            j = s.scalar(select(Judgement))
        assert {x["response"]: x["score"] for x in j.judgement["judgements"]} == {
            original[0]: 4, original[1]: 2, original[2]: 6}
        assert j.response_critiques == [{"response": original[1], "text": "Wrong: 7 words, k j."}]
        assert j.edit == {"response": original[2], "text": "Paris."}
    finally:
        _stop(db, server, thread)
