"""The team features and the rating/thumbs controls in a real browser: guidelines before the
first item (keys blocked until closed) and under "?", done/remaining, ratings and thumbs by
keyboard only, stored as one judgement per response."""

import pytest
from sqlalchemy import select

from rlhfkit.feedback import projects, repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.models import Judgement
from tests.feedback.conftest import make_items
from tests.feedback.test_browser import ARGS, CHROMIUM, _serve, pytestmark  # noqa: F401  (skip mark)

EXAMPLE = {"prompt": "What is 2+2?", "responses": ["4", "5 <b>no</b>"], "answer": "1 is better", "why": "It is right."}


@pytest.fixture
def served(tmp_path):
    db = Database(str(tmp_path / "f.db"), synchronous="NORMAL")
    servers = []

    def start(mode, n_items=2, k=3, guidelines=False):
        with db.session() as s:
            p = repo.create_project(s, f"p-{mode}", mode=mode, overlap=1)
            repo.import_items(s, p, [(it, f"t:{n}") for n, it in enumerate(make_items(n_items, k=k))])
            if guidelines:
                projects.update_project(s, p, instructions="Judge correctness first.", examples=[EXAMPLE])
            _a, token = repo.add_annotator(s, f"ann-{mode}")
        server, thread, base = _serve(db)
        servers.append((server, thread))
        return base, token

    yield db, start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
    db.close()


def _judgements(db):
    with db.read() as s:
        return [j.judgement for j in s.scalars(select(Judgement).order_by(Judgement.created_at))]


def test_rating_by_keyboard_with_guidelines_first(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, start = served
    base, token = start("rating", guidelines=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/login?token={token}")
        intro = page.locator("#guidelines-intro")
        expect(intro).to_be_visible()
        expect(intro.locator(".example-answer")).to_have_text("Answer: 1 is better")
        expect(intro.locator(".example-responses li").nth(1)).to_have_text("5 <b>no</b>")  # text, not markup
        expect(page.locator("#done-remaining")).to_have_text("· 2 remaining")
        page.keyboard.press("5")  # swallowed by the dialog: nothing is rated behind it
        expect(page.locator(".scale-option.chosen")).to_have_count(0)
        page.keyboard.press("Enter")
        expect(intro).to_have_count(0)
        for key in ("7", "1", "4"):
            page.keyboard.press(key)
        expect(page.locator(".scale-option.chosen")).to_have_count(3)
        page.keyboard.press("Backspace")  # clears the last one (4) ...
        expect(page.locator(".scale-option.chosen")).to_have_count(2)
        page.keyboard.press("3")  # ... and re-rates it
        page.keyboard.press("Enter")
        expect(page.locator("#done-remaining")).to_have_text("· 1 remaining")
        expect(page.locator("#progress")).to_contain_text("1 judged")  # the done count
        page.keyboard.press("?")  # the help panel holds the guidelines and the example
        expect(page.locator("#help .guidelines .example-answer")).to_have_text("Answer: 1 is better")
        page.reload()  # guidelines are not forced on again after the first item
        expect(page.locator(".response")).to_have_count(3)
        expect(page.locator("#guidelines-intro")).to_have_count(0)
        browser.close()
    [j] = _judgements(db)
    by_pos = {x["response"]: x["score"] for x in j["judgements"]}
    assert sorted(by_pos.values()) == [1, 3, 7] and j["kind"] == "per_response"


def test_thumbs_by_keyboard_and_buttons(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, start = served
    base, token = start("binary", n_items=1, k=2)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/login?token={token}")
        expect(page.locator(".response")).to_have_count(2)
        expect(page.locator("#allbad")).to_be_hidden()
        page.keyboard.press("y")
        expect(page.locator("#submit")).to_be_disabled()
        page.keyboard.press("-")
        expect(page.locator(".response .rank-badge").nth(1)).to_have_text("👎 bad")
        # buttons are real, focusable controls: Tab to the first card's thumbs-down and press Space
        page.locator(".response").nth(0).locator(".scale-option").nth(1).focus()
        page.keyboard.press("Space")
        expect(page.locator(".response .rank-badge").nth(0)).to_have_text("👎 bad")
        page.keyboard.press("Enter")
        expect(page.locator(".done")).to_be_visible()
        browser.close()
    [j] = _judgements(db)
    assert [x["thumbs_up"] for x in j["judgements"]] == [False, False]


def test_review_page_adopt_and_save_by_keyboard(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, start = served
    base, _token = start("pairwise", n_items=1, k=2)
    with db.session() as s:
        p = repo.project_by_name(s, "p-pairwise")
        p.overlap = 2
        tokens = {n: repo.add_annotator(s, n)[1] for n in ("x1", "x2")}
        _r, reviewer = repo.add_annotator(s, "rita", role="reviewer")
        pid = p.id
    from fastapi.testclient import TestClient

    from rlhfkit.feedback.app import create_app

    with TestClient(create_app(db)) as c:
        for n, (who, tok) in enumerate(tokens.items()):
            h = {"Authorization": f"Bearer {tok}"}
            a = c.get(f"/api/projects/{pid}/next", headers=h).json()["assignment"]
            # x1 prefers response 0, x2 response 1, whatever order each was shown: a real dispute
            j = {"kind": "pairwise", "a": a["shown_order"][0], "b": a["shown_order"][1],
                 "choice": "a" if a["shown_order"][0] == n else "b"}
            assert c.post(f"/api/assignments/{a['assignment_id']}/judgement", json={"id": f"j{n}", "judgement": j},
                          headers=h).status_code == 201
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/login?token={reviewer}")
        expect(page).to_have_url(f"{base}/review")
        page.click(f"a[href='/review/{pid}']")
        expect(page.locator("#review-judgements tr")).to_have_count(3)  # header + two annotators
        expect(page.locator("#queue li")).to_have_count(1)
        expect(page.locator("#current-adjudication")).to_have_text("Not adjudicated yet.")
        labels = sorted(page.locator("#review-judgements td.label").all_text_contents())
        assert labels == ["1 > 2", "2 > 1"]
        page.keyboard.press("a")  # focus the label field, type a label of our own, Enter saves
        page.keyboard.type("1 = 2")
        page.keyboard.press("Tab")
        page.keyboard.type("both fine")
        page.keyboard.press("Enter")
        expect(page.locator("#review-status")).to_have_text("Adjudication saved.")
        expect(page.locator("#current-adjudication")).to_have_text("Current: 1 = 2 by rita (both fine)")
        expect(page.locator("#queue .pill")).to_have_text("adjudicated")
        page.locator("#review-judgements button").first.click()  # adopt an annotator's label
        page.locator("#adj-save").click()
        expect(page.locator("#current-adjudication")).to_contain_text("by rita")
        browser.close()
    from rlhfkit.feedback.models import Adjudication

    with db.read() as s:
        [adj] = s.scalars(select(Adjudication)).all()
    assert adj.judgement["choice"] in ("a", "b") and adj.note == "both fine"


def test_admin_manages_a_project_and_annotators_in_the_browser(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db, start = served
    base, member_token = start("ranking", n_items=1)
    with db.session() as s:
        admin = repo.rotate_admin_token(s)
        pid = repo.project_by_name(s, "p-ranking").id
        outsider = repo.add_annotator(s, "outsider")[1]
    from fastapi.testclient import TestClient

    from rlhfkit.feedback.app import create_app

    with TestClient(create_app(db)) as c:  # the pages' auth paths
        assert c.get(f"/admin/projects/{pid}").status_code == 401
        assert c.get("/admin/annotators", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get(f"/admin/projects/{pid}", headers={"Authorization": f"Bearer {outsider}"}).status_code == 403
        assert c.get("/admin/projects/999", headers={"Authorization": f"Bearer {admin}"}).status_code == 404
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{base}/login?token={admin}")
        page.click(f"a[href='/admin/projects/{pid}']")
        page.fill("#member-name", "ann-ranking")
        page.click("#add-member")
        expect(page.locator("#manage-status")).to_have_text("ann-ranking added.")
        expect(page.locator("#members-only")).to_be_checked()
        page.fill("#instructions", "Prefer <b>correct</b> answers.")
        page.fill("#examples", '[{"prompt": "2+2?", "responses": ["4", "5"], "answer": "1 > 2"}]')
        page.click("#save-guidelines")
        expect(page.locator("#manage-status")).to_have_text("Guidelines saved.")
        page.fill("#examples", "[{")
        page.click("#save-guidelines")
        expect(page.locator("#manage-status")).to_contain_text("not valid JSON")
        page.check("#archived")
        expect(page.locator("#manage-status")).to_have_text("Archived: hidden from annotators.")
        page.goto(f"{base}/admin/annotators")
        page.fill("#new-name", "rosa")
        page.select_option("#new-role", "reviewer")
        page.click("#add-annotator")
        expect(page.locator("#new-link")).to_contain_text("/login?token=ann_")
        expect(page.locator("#annotators tbody tr")).to_have_count(3)
        page.goto(f"{base}/admin/projects/{pid}")
        page.fill("#confirm-name", "wrong")
        page.click("#delete-project")
        expect(page.locator("#manage-status")).to_have_text("Type the project's name exactly to delete it.")
        with db.read() as s:
            p = repo.get_project(s, pid)
            assert (p.archived, p.members_only, p.instructions) == (True, True, "Prefer <b>correct</b> answers.")
            assert p.examples == [{"prompt": "2+2?", "responses": ["4", "5"], "answer": "1 > 2", "why": ""}]
            assert projects.members(s, p) == ["ann-ranking"]
            assert repo.annotator_by_name(s, "rosa").role == "reviewer"
        page.fill("#confirm-name", "p-ranking")
        page.click("#delete-project")
        expect(page).to_have_url(f"{base}/admin")
        browser.close()
    with db.read() as s:
        assert repo.find_project(s, pid) is None
