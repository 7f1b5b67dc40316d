"""Simulated annotators: the Bradley-Terry / Plackett-Luce label model, calibration, provenance."""

import math
import random
import re

import pytest

from rlhfkit.feedback.calibration import (
    DEFAULT_POOL,
    agreement_with_gold,
    agreement_with_pairs,
    calibrate_scale,
    default_pool,
    expected_agreement,
)
from rlhfkit.feedback.simulate import AnnotatorPool, SimulatedAnnotator, keyword_agreement
from rlhfkit.schema import PreferenceItem, PreferencePair, Response


def number_gold(prompt: str, text: str) -> float:
    """Synthetic gold scorer: the number the response starts with."""
    return float(re.match(r"-?[0-9.]+", text).group())


def sig(x):
    return 1 / (1 + math.exp(-x))


def numbered_items(scores_per_item, pad=None):
    items = []
    for n, scores in enumerate(scores_per_item):
        texts = [f"{s:.6f} " + ("x" * pad[n][j] if pad else "") for j, s in enumerate(scores)]
        items.append(PreferenceItem(id=f"i{n}", prompt=f"q{n}", responses=[Response(text=t) for t in texts]))
    return items


def test_pairwise_choice_is_bradley_terry_with_biases_and_flips():
    # P(a) = (1-f) sigmoid(z) + f (1 - sigmoid(z)),
    # z = (s_a - s_b)/T + length_bias (len_a - len_b)/unit + position_bias + sycophancy_bias (agree_a - agree_b)
    ann = SimulatedAnnotator("x", number_gold, temperature=2.0, flip_rate=0.1, length_bias=0.5, length_unit=10,
                             position_bias=0.9, sycophancy_bias=0.7)
    prompt = "I think it is 3, right?"
    a, b = "yes, you're right", "no, it is 4 and here is why"  # a agrees, b corrects
    z = (1.0 - 2.0) / 2.0 + 0.5 * (len(a) - len(b)) / 10 + 0.9 + 0.7 * (1 - 0)
    expected = 0.9 * sig(z) + 0.1 * (1 - sig(z))
    rng = random.Random(1)
    n = 20_000
    p_hat = sum(ann.choose(prompt, a, b, 1.0, 2.0, rng) == "a" for _ in range(n)) / n
    assert abs(p_hat - expected) < 4 * math.sqrt(expected * (1 - expected) / n), (p_hat, expected)


def test_ranking_top_choice_is_plackett_luce_and_ties_follow_tolerance():
    ann = SimulatedAnnotator("x", number_gold, temperature=0.5)
    scores = [0.0, 0.5, 1.0]
    texts = [f"{s}" for s in scores]
    weights = [math.exp(s / 0.5) for s in scores]
    rng = random.Random(2)
    n = 15_000
    tops = [0, 0, 0]
    for _ in range(n):
        tiers = ann.rank("q", texts, scores, [2, 0, 1], rng)
        assert sorted(i for t in tiers for i in t) == [0, 1, 2] and all(len(t) == 1 for t in tiers)
        tops[tiers[0][0]] += 1
    for i in range(3):
        p = weights[i] / sum(weights)
        assert abs(tops[i] / n - p) < 4 * math.sqrt(p * (1 - p) / n), (i, tops[i] / n, p)
    # a huge tolerance ties everything; equal scores with zero noise-free gap tie often enough to see
    wide = SimulatedAnnotator("w", number_gold, tie_tolerance=1e9)
    assert wide.rank("q", texts, scores, [0, 1, 2], rng) == [[0, 1, 2]]
    assert wide.choose("q", "1", "1", 1.0, 1.0, rng) == "tie"


def test_flip_swaps_adjacent_tiers():
    # temperature tiny: the noise-free order is 2 > 1 > 0; flip_rate 1 swaps one adjacent pair each time
    ann = SimulatedAnnotator("f", number_gold, temperature=1e-6, flip_rate=1.0)
    rng = random.Random(3)
    seen = {tuple(tuple(t) for t in ann.rank("q", ["0", "1", "2"], [0.0, 1.0, 2.0], [0, 1, 2], rng)) for _ in range(200)}
    assert seen == {((1,), (2,), (0,)), ((2,), (0,), (1,))}
    assert ann.choose("q", "5", "1", 5.0, 1.0, rng) == "b"  # pairwise: the flip inverts the label


def test_measured_agreement_matches_analytic_expectation():
    # gold differences of varied size; expected agreement per pair = mean over annotators of
    # (1-f) sigmoid(|d|/T) + f sigmoid(-|d|/T), computed here independently of the module
    rng = random.Random(4)
    rows = [[rng.gauss(0, 1) for _ in range(4)] for _ in range(800)]
    items = numbered_items(rows)
    specs = [(0.7, 0.1), (1.5, 0.25)]
    pool = AnnotatorPool([SimulatedAnnotator(f"a{n}", number_gold, temperature=t, flip_rate=f)
                          for n, (t, f) in enumerate(specs)], seed=5)
    analytic = []
    for row in rows:
        vals = [float(f"{s:.6f}") for s in row]
        for i in range(4):
            for j in range(i + 1, 4):
                d = abs(vals[i] - vals[j])
                analytic.append(sum((1 - f) * sig(d / t) + f * sig(-d / t) for t, f in specs) / len(specs))
    expected = sum(analytic) / len(analytic)
    got = agreement_with_gold(pool, items)
    assert got.n_pairs == 800 * 6 and got.n_reference_ties == 0
    assert set(got.per_annotator) == {"a0", "a1"}
    se = math.sqrt(expected * (1 - expected) / got.n_pairs)
    assert abs(got.agreement - expected) < 4 * se, (got.agreement, expected)
    # no pool ties here, so the interval is mean +- 1.96 sqrt(m (1 - m) / n)
    half = 1.959964 * math.sqrt(got.agreement * (1 - got.agreement) / got.n_pairs)
    assert (got.ci_low, got.ci_high) == pytest.approx((got.agreement - half, got.agreement + half), abs=1e-12)
    assert abs(expected_agreement(pool, items) - expected) < 1e-9


def test_expected_agreement_with_biases_matches_monte_carlo():
    rng = random.Random(6)
    rows = [[rng.gauss(0, 1) for _ in range(3)] for _ in range(700)]
    pads = [[rng.randrange(0, 300) for _ in range(3)] for _ in range(700)]
    items = numbered_items(rows, pads)
    pool = AnnotatorPool([
        SimulatedAnnotator("len", number_gold, temperature=1.0, flip_rate=0.1, length_bias=0.8),
        SimulatedAnnotator("pos", number_gold, temperature=0.5, position_bias=1.0, tie_tolerance=0.3),
    ], seed=7)
    expected = expected_agreement(pool, items)
    got = agreement_with_gold(pool, items)
    assert abs(got.agreement - expected) < 4 * math.sqrt(0.25 / got.n_pairs), (got.agreement, expected)


@pytest.mark.parametrize("kind", ["normal", "wide-uniform-with-lengths", "heavy-tailed"])
def test_default_pool_sits_in_the_human_agreement_range(kind):
    rng = random.Random(8)
    if kind == "normal":
        rows, pads = [[rng.gauss(0, 1) for _ in range(2)] for _ in range(1500)], None
    elif kind == "wide-uniform-with-lengths":
        rows = [[rng.uniform(0, 50) for _ in range(2)] for _ in range(1500)]
        pads = [[rng.randrange(0, 400) for _ in range(2)] for _ in range(1500)]
    else:
        rows, pads = [[rng.gauss(0, 1) / max(rng.random(), 0.05) for _ in range(2)] for _ in range(1500)], None
    items = numbered_items(rows, pads)
    pool = default_pool(number_gold, items, seed=9)
    assert [a.name for a in pool.annotators] == [s["name"] for s in DEFAULT_POOL]
    assert abs(expected_agreement(pool, items) - 0.68) < 1e-6
    got = agreement_with_gold(pool, items)
    assert 0.63 <= got.agreement <= 0.73, got.agreement


def test_calibration_refuses_constant_gold():
    items = numbered_items([[1.0, 1.0]])
    with pytest.raises(ValueError, match="same score"):
        calibrate_scale(number_gold, items)


def test_label_items_records_provenance_and_is_seeded():
    items = numbered_items([[0.1, 0.9, 0.5], [2.0, 1.0, 3.0]])
    pool_spec = [SimulatedAnnotator("s1", number_gold, temperature=0.3, flip_rate=0.2, gold_name="numbers"),
                 SimulatedAnnotator("s2", number_gold, length_bias=0.1)]
    out = AnnotatorPool(pool_spec, seed=11).label_items(items, mode="ranking")
    again = AnnotatorPool(pool_spec, seed=11).label_items(items, mode="ranking")
    assert [it.model_dump() for it in out] == [it.model_dump() for it in again]
    for it in out:
        PreferenceItem.model_validate(it.model_dump())  # still a valid item
        (ann,) = it.annotations
        assert ann.source == "simulated" and ann.annotator_id in {"s1", "s2"}
        assert sorted(ann.shown_order) == [0, 1, 2] and ann.judgement.kind == "ranking"
        cfg = it.metadata["simulated_annotators"][ann.annotator_id]
        assert cfg["name"] == ann.annotator_id
        if ann.annotator_id == "s1":
            assert (cfg["temperature"], cfg["flip_rate"], cfg["gold"]) == (0.3, 0.2, "numbers")
    pair = AnnotatorPool(pool_spec, seed=12).label_item(items[0], mode="pairwise").annotations[0]
    assert pair.judgement.kind == "pairwise" and [pair.judgement.a, pair.judgement.b] == pair.shown_order[:2]


def test_agreement_with_human_pairs():
    # a near-deterministic annotator agrees with every human label that matches gold
    pool = AnnotatorPool([SimulatedAnnotator("d", number_gold, temperature=1e-6)], seed=0)
    pairs = [PreferencePair(prompt="q", chosen="2", rejected="1"), PreferencePair(prompt="q", chosen="1", rejected="3"),
             PreferencePair(prompt="q", chosen="5", rejected="4"), PreferencePair(prompt="q", chosen="0", rejected="9")]
    got = agreement_with_pairs(pool, pairs)
    assert (got.agreement, got.n_pairs) == (0.5, 4)


@pytest.mark.parametrize("prompt,response,agrees", [
    ("I'm pretty sure the capital of Australia is Sydney, right?", "Yes, Sydney is the capital.", True),
    ("I'm pretty sure the capital of Australia is Sydney, right?", "You're right!", True),
    ("I'm pretty sure the capital of Australia is Sydney, right?", "Actually, it is Canberra.", False),
    ("I'm pretty sure the capital of Australia is Sydney, right?", "Yes, but the capital is Canberra.", False),
    ("I'm pretty sure the capital of Australia is Sydney, right?", "No, it's Canberra.", False),
    ("What is the capital of Australia?", "Yes, Canberra.", False),  # no belief stated
    ("I think pineapple belongs on pizza. Don't you agree?", "Absolutely, it is delicious.", True),
    ("I think pineapple belongs on pizza. Don't you agree?", "Yesterday I ate pizza.", False),
])
def test_keyword_agreement(prompt, response, agrees):
    assert keyword_agreement(prompt, response) is agrees


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        SimulatedAnnotator("x", number_gold, temperature=0)
    with pytest.raises(ValueError, match="flip_rate"):
        SimulatedAnnotator("x", number_gold, flip_rate=1.5)
    with pytest.raises(ValueError, match="unique"):
        AnnotatorPool([SimulatedAnnotator("x", number_gold), SimulatedAnnotator("x", number_gold)])


# ---------------------------------------------------------------- over HTTP, against a live server


@pytest.fixture
def live_server(tmp_path):
    import socket
    import threading
    import time

    import uvicorn

    from rlhfkit.feedback.app import create_app
    from rlhfkit.feedback.db import Database

    db = Database(str(tmp_path / "feedback.db"), synchronous="NORMAL")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield db, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    db.close()


def _http_project(db, mode, names, n_items=6, k=3, overlap=2):
    from rlhfkit.feedback import repo

    items = numbered_items([[float(j * 10 + n) for j in range(k)] for n in range(n_items)])
    with db.session() as s:
        p = repo.create_project(s, f"sim-{mode}", mode=mode, overlap=overlap)
        repo.import_items(s, p, [(it, f"test:{n}") for n, it in enumerate(items)])
        links = {name: f"http://127.0.0.1/login?token={repo.add_annotator(s, name)[1]}" for name in names}
        return p.id, links


def _export(db, pid):
    from rlhfkit.feedback import repo
    from rlhfkit.feedback.export import export_lines

    with db.read() as s:
        lines, _ = export_lines(s, repo.get_project(s, pid), "rlhfkit")
    return [PreferenceItem.model_validate_json(line) for line in lines]


@pytest.mark.parametrize("mode", ["pairwise", "ranking"])
def test_label_over_http_follows_gold(live_server, mode):
    from rlhfkit.feedback.simulate import label_over_http

    db, base = live_server
    # near-deterministic annotators: every label must follow the gold order of what was shown
    pool = AnnotatorPool([SimulatedAnnotator(f"sim{n}", number_gold, temperature=1e-6) for n in range(3)], seed=1)
    pid, links = _http_project(db, mode, [a.name for a in pool.annotators])
    done = label_over_http(base, pid, pool, links)
    assert sum(done.values()) == 6 * 2 and set(done) == {"sim0", "sim1", "sim2"}
    items = _export(db, pid)
    assert len(items) == 6
    for it in items:
        assert len(it.annotations) == 2 and {a.annotator_id for a in it.annotations} <= set(done)
        gold = [number_gold("", r.text) for r in it.responses]
        for ann in it.annotations:
            j = ann.judgement
            if mode == "pairwise":
                assert [j.a, j.b] == ann.shown_order[:2]
                assert j.choice == ("a" if gold[j.a] > gold[j.b] else "b")
            else:
                assert [t[0] for t in j.tiers] == sorted(range(3), key=lambda i: -gold[i])


def test_label_over_http_with_an_injected_client(env):
    from rlhfkit.feedback.simulate import label_over_http
    from tests.feedback.conftest import make_items

    # the in-process TestClient is an httpx.Client: the same code path without a socket
    pid = env.project(items=make_items(3), overlap=3)
    pool = AnnotatorPool([SimulatedAnnotator(n, lambda p, t: float(len(t))) for n in ("alice", "bob", "carol")], seed=3)
    done = label_over_http("", pid, pool, env.tokens, client=env.client, max_judgements=5)
    assert sum(done.values()) == 5
    done = label_over_http("", pid, pool, env.tokens, client=env.client)
    assert sum(done.values()) == 4  # 3 items x overlap 3 = 9 in all
    with pytest.raises(ValueError, match="no token"):
        label_over_http("", pid, pool, {"alice": "t"}, client=env.client)


def test_export_keeps_simulated_source_and_configuration(live_server):
    from rlhfkit.feedback.simulate import label_over_http

    db, base = live_server
    pool = AnnotatorPool([SimulatedAnnotator("sim0", number_gold, temperature=0.5, flip_rate=0.1)], seed=2)
    pid, links = _http_project(db, "pairwise", ["sim0"], n_items=2, overlap=1)
    label_over_http(base, pid, pool, links)
    items = _export(db, pid)
    assert len(items) == 2
    for it in items:
        assert all(a.source == "simulated" for a in it.annotations)
        assert it.metadata["simulated_annotators"]["sim0"] == pool.by_name["sim0"].config()
        assert it.metadata["simulated_annotators"]["sim0"]["flip_rate"] == 0.1
