"""Fixtures for the feedback app: a fresh SQLite database per test, tokens, items."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rlhfkit.feedback import repo
from rlhfkit.feedback.app import create_app
from rlhfkit.feedback.db import Database
from rlhfkit.schema import Annotation, PreferenceItem, RankingJudgement, Response

XSS = '<script>alert(1)</script> and <img src=x onerror="alert(2)">'


def make_items(n: int, k: int = 3, prefix: str = "it", gold: bool = False) -> list[PreferenceItem]:
    items = []
    for i in range(n):
        responses = [Response(id=f"{prefix}{i}r{j}", text=f"answer {j} to question {i}" + " more" * j) for j in range(k)]
        anns = [Annotation(judgement=RankingJudgement(tiers=[[j] for j in range(k)]))] if gold else []
        items.append(PreferenceItem(id=f"{prefix}{i}", prompt=f"question {i}?", responses=responses, annotations=anns))
    return items


class Env:
    def __init__(self, db: Database):
        self.db = db
        self.app = create_app(db)
        self.client = TestClient(self.app)
        with db.session() as s:
            self.admin = repo.ensure_admin_token(s)
        self.tokens: dict[str, str] = {}

    def hdr(self, who: str | None) -> dict:
        if who is None:
            return {}
        token = self.admin if who == "admin" else self.tokens[who]
        return {"Authorization": f"Bearer {token}"}

    def add_annotator(self, name: str) -> str:
        with self.db.session() as s:
            _a, token = repo.add_annotator(s, name)
        self.tokens[name] = token
        return token

    def project(self, name="p", items=None, gold_items=None, **kw) -> int:
        with self.db.session() as s:
            p = repo.create_project(s, name, **kw)
            repo.import_items(s, p, [(it, f"test:{n}") for n, it in enumerate(items or [])])
            if gold_items:
                repo.import_items(s, p, [(it, f"gold:{n}") for n, it in enumerate(gold_items)], gold=True)
            return p.id

    def next(self, who: str, pid: int) -> dict:
        r = self.client.get(f"/api/projects/{pid}/next", headers=self.hdr(who))
        assert r.status_code == 200, r.text
        return r.json()

    def rank_submit(self, who: str, pid: int, jid: str, best_first: list[int] | None = None) -> dict:
        """Take the next item and rank it (default: original index order), returning the response."""
        nxt = self.next(who, pid)
        a = nxt["assignment"]
        k = len(a["responses"])
        order = best_first or list(range(k))
        body = {"id": jid, "judgement": {"kind": "ranking", "tiers": [[i] for i in order]}}
        r = self.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=self.hdr(who))
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture
def env(tmp_path):
    # fsync per commit (the server default, FULL) is tested in test_storage/test_durability;
    # unit tests skip it to stay fast. NORMAL in WAL mode still survives a process crash.
    db = Database(str(tmp_path / "feedback.db"), synchronous="NORMAL")
    e = Env(db)
    e.add_annotator("alice")
    e.add_annotator("bob")
    e.add_annotator("carol")
    yield e
    e.client.close()
    db.close()
