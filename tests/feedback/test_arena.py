"""Arena: anonymous battles, Bradley-Terry fit (checked against Hunter's MM algorithm and a
closed form), bootstrap intervals, the API and the leaderboard."""

import json
import math

import numpy as np

from rlhfkit.feedback.arena import SCALE, Battles, fit_bradley_terry, leaderboard
from rlhfkit.schema import PreferenceItem, Provenance, Response

MODELS = ["ckpt-100", "ckpt-200", "ckpt-300"]


def test_two_models_closed_form():
    # a beats b 30 times, loses 10, ties 10: MLE p = (30 + 10/2) / 50 = 0.7, s_a - s_b = logit(0.7)
    y = np.array([1.0] * 30 + [0.0] * 10 + [0.5] * 10)
    s = fit_bradley_terry(np.zeros(50, int), np.ones(50, int), y, 2, ridge=1e-12)
    assert abs((s[0] - s[1]) - math.log(0.7 / 0.3)) < 1e-6 and abs(s.sum()) < 1e-12


def _mm_bradley_terry(wins: np.ndarray, iters: int = 20_000) -> np.ndarray:
    """Hunter (2004) minorise-maximise: p_i <- W_i / sum_j n_ij / (p_i + p_j); log p centred."""
    n = wins + wins.T
    p = np.ones(len(wins))
    for _ in range(iters):
        p = wins.sum(axis=1) / (n / (p[:, None] + p[None, :])).sum(axis=1)
        p /= np.exp(np.log(p).mean())
    return np.log(p)


def test_fit_matches_hunters_mm_algorithm():
    rng = np.random.default_rng(0)
    true = np.array([0.0, 0.6, -0.4, 1.1])
    a = rng.integers(0, 4, 3000)
    b = (a + rng.integers(1, 4, 3000)) % 4
    y = (rng.random(3000) < 1 / (1 + np.exp(-(true[a] - true[b])))).astype(float)
    wins = np.zeros((4, 4))
    np.add.at(wins, (np.where(y == 1, a, b), np.where(y == 1, b, a)), 1)
    s = fit_bradley_terry(a, b, y, 4, ridge=1e-12)
    assert np.max(np.abs(s - _mm_bradley_terry(wins))) < 1e-5
    assert np.max(np.abs(s - (true - true.mean()))) < 0.2  # and it recovers the generating strengths


def test_leaderboard_intervals_and_elo_scale():
    rng = np.random.default_rng(1)
    n = 400
    a, b = rng.integers(0, 2, n), None
    b = 1 - a
    y = (rng.random(n) < np.where(a == 0, 0.75, 0.25)).astype(float)  # model 0 wins 75%
    board = leaderboard(Battles(["x", "y"], a, b, y), rounds=100, seed=3)
    assert [r["model"] for r in board] == ["x", "y"] and [r["rank"] for r in board] == [1, 2]
    x = board[0]
    assert abs((x["score"] - board[1]["score"]) - SCALE * (x["bt_logit"] - board[1]["bt_logit"])) < 1e-9
    assert abs(x["score"] + board[1]["score"] - 2000) < 1e-6  # centred around 1000
    assert x["ci_low"] < x["score"] < x["ci_high"] and x["ci_high"] - x["ci_low"] < 150
    assert x["wins"] + x["losses"] + x["ties"] == x["battles"] == n
    again = leaderboard(Battles(["x", "y"], a, b, y), rounds=100, seed=3)
    assert again == board  # seeded
    small = leaderboard(Battles(["x", "y"], a[:40], b[:40], y[:40]), rounds=100, seed=3)
    assert small[0]["ci_high"] - small[0]["ci_low"] > x["ci_high"] - x["ci_low"]


def _arena_items(n):
    return [PreferenceItem(id=f"q{i}", prompt=f"question {i}?", responses=[
        Response(text=f"{m} says {i}", provenance=Provenance(model=m)) for m in MODELS]) for i in range(n)]


def test_arena_project_over_the_api(env):
    r = env.client.post("/api/admin/projects", json={"name": "arena", "mode": "arena", "overlap": 2},
                        headers=env.hdr("admin"))
    pid = r.json()["id"]
    bare = PreferenceItem(id="bare", prompt="q", responses=[Response(text="a"), Response(text="b")])
    r = env.client.post(f"/api/admin/projects/{pid}/items", json={"items": [bare.model_dump(mode="json")]},
                        headers=env.hdr("admin"))
    assert r.status_code == 422 and "provenance.model" in r.json()["detail"]
    items = [it.model_dump(mode="json") for it in _arena_items(6)]
    assert env.client.post(f"/api/admin/projects/{pid}/items", json={"items": items},
                           headers=env.hdr("admin")).status_code == 200
    votes = 0
    for who in ("alice", "bob", "carol"):
        while not (nxt := env.next(who, pid))["done"]:
            a = nxt["assignment"]
            assert a["mode"] == "pairwise" and len(a["responses"]) == 2
            # anonymous: the policies' names appear nowhere outside the response texts
            assert "ckpt" not in json.dumps({k: v for k, v in a.items() if k != "responses"})
            texts = [x["text"] for x in a["responses"]]
            assert all(set(x) == {"index", "text", "empty"} for x in a["responses"])
            # ckpt-300 always wins; 100 vs 200 is a tie
            rank = {m: n for n, m in enumerate(MODELS)}
            ma, mb = (t.split(" says")[0] for t in texts)
            choice = "tie" if {ma, mb} == {"ckpt-100", "ckpt-200"} else ("a" if rank[ma] > rank[mb] else "b")
            j = {"kind": "pairwise", "a": a["responses"][0]["index"], "b": a["responses"][1]["index"], "choice": choice}
            r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json={"id": f"v{votes}", "judgement": j},
                                headers=env.hdr(who))
            assert r.status_code == 201, r.text
            votes += 1
    assert votes == 12
    url = f"/api/admin/projects/{pid}/leaderboard?rounds=50"
    board = env.client.get(url, headers=env.hdr("admin")).json()
    assert board["battles"] == 12 and board["models"][0]["model"] == "ckpt-300"
    assert env.client.get(url).status_code == 401
    assert env.client.get(url, headers=env.hdr("alice")).status_code == 403
    assert env.client.get("/api/admin/projects/999/leaderboard", headers=env.hdr("admin")).status_code == 404
    other = env.project("ranked", items=[])
    assert env.client.get(f"/api/admin/projects/{other}/leaderboard", headers=env.hdr("admin")).status_code == 422
    page = env.client.get(f"/admin/arena/{pid}", headers=env.hdr("admin"))
    assert page.status_code == 200 and "ckpt-300" in page.text
    assert env.client.get(f"/admin/arena/{pid}", headers=env.hdr("alice")).status_code == 403


def test_arena_merge_puts_checkpoints_side_by_side(tmp_path):
    from typer.testing import CliRunner

    from rlhfkit.cli import app
    from rlhfkit.data import read_items
    from rlhfkit.feedback.arena import policy_name

    def run(step, prompts):
        items = [PreferenceItem(id=f"{step}-{n}", prompt=p, responses=[
            Response(text=f"step {step} on {p}", provenance=Provenance(model="tiny", model_version=str(step))),
            Response(text="second sample, not used", provenance=Provenance(model="tiny", model_version=str(step)))])
            for n, p in enumerate(prompts)]
        folder = tmp_path / f"step{step}"
        folder.mkdir()
        (folder / "gen.jsonl").write_text("".join(it.model_dump_json() + "\n" for it in items))
        return folder / "gen.jsonl"

    a = run(100, ["q1", "q2", "only in 100"])
    b = run(200, ["q2", "q1"])
    out = tmp_path / "arena.jsonl"
    r = CliRunner().invoke(app, ["feedback", "arena-merge", str(a), str(b), "-o", str(out)])
    assert r.exit_code == 0 and "wrote 2 arena items" in r.output and "1 prompts answered by one policy" in r.output
    items = {it.prompt: it for it in read_items(out)}
    assert sorted(items) == ["q1", "q2"]
    assert [policy_name(x.provenance.model_dump()) for x in items["q2"].responses] == ["tiny@100", "tiny@200"]
    assert [x.text for x in items["q1"].responses] == ["step 100 on q1", "step 200 on q1"]
    r = CliRunner().invoke(app, ["feedback", "arena-merge", str(a), str(a), "-o", str(out)])
    assert r.exit_code == 2 and "tiny@100" in r.output
