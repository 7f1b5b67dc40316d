"""Property-based fuzzing of the API: arbitrary bodies and ids never produce a 5xx, and every
error response is valid JSON. Bodies may hold NaN, Infinity and 1e999, which Python's json
module writes and reads although JSON has no such numbers."""

import json
import string
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.feedback.conftest import make_items

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), c, max_size=4)),
                           max_leaves=12)
judgements = st.one_of(
    json_values,
    st.fixed_dictionaries({"kind": st.sampled_from(["ranking", "pairwise", "all_bad", "binary", "rating", "x"]),
                           "tiers": st.lists(st.lists(st.one_of(st.integers(-3, 5), json_scalars), max_size=3), max_size=4)}),
    st.fixed_dictionaries({"kind": st.just("rating"), "response": st.integers(-1, 3), "score": json_scalars}),
    st.fixed_dictionaries({"kind": st.just("pairwise"), "a": st.integers(-2, 4), "b": st.integers(-2, 4),
                           "choice": st.sampled_from(["a", "b", "tie", "both_bad", "c"])}),
)
ids = st.one_of(st.text(max_size=70), st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=64))
submit_bodies = st.one_of(json_values, st.fixed_dictionaries(
    {"id": ids, "judgement": judgements},
    optional={"critique": st.one_of(st.none(), st.text(max_size=50)), "time_spent_s": json_scalars, "extra": json_scalars}))
path_ids = st.one_of(st.integers(-5, 10**20).map(str), st.text(min_size=1, max_size=20)).map(lambda x: quote(x, safe=""))

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


NAN, INF = float("nan"), float("inf")
RANK3 = {"kind": "ranking", "tiers": [[0], [1], [2]]}


@FUZZ
@given(body=submit_bodies, aid=path_ids)
@example(body={"id": "n1", "judgement": RANK3, "time_spent_s": NAN}, aid="0")  # always tried
@example(body={"id": "n2", "judgement": RANK3, "time_spent_s": INF}, aid="0")
@example(body={"id": "n3", "judgement": {"kind": "ranking", "tiers": [[NAN], [1], [2]]}}, aid="0")
def test_submit_never_5xx(env, body, aid):
    pid = _project(env)
    real = env.next("alice", pid)
    target = str(real["assignment"]["assignment_id"]) if not real["done"] and aid == "0" else aid
    r = _send(env, "POST", f"/api/assignments/{target}/judgement", body, "alice")
    assert r.status_code < 500, (body, r.text)


@settings(FUZZ, max_examples=15)  # eight requests per example
@given(body=json_values, aid=path_ids, jid=path_ids)
def test_other_endpoints_never_5xx(env, body, aid, jid):
    pid = _project(env)
    calls = [
        ("POST", f"/api/assignments/{aid}/skip", "alice"), ("GET", f"/api/judgements/{jid}", "alice"),
        ("DELETE", f"/api/judgements/{jid}", "alice"), ("POST", "/api/admin/projects", "admin"),
        ("POST", f"/api/admin/projects/{pid}/items", "admin"), ("POST", "/api/admin/annotators", "admin"),
        ("GET", f"/api/projects/{aid}/next", "alice"), ("GET", f"/api/admin/projects/{aid}/stats", "admin"),
    ]
    for method, url, who in calls:
        r = _send(env, method, url, body, who)
        assert r.status_code < 500, (method, url, body, r.text)


@FUZZ
@given(items=st.lists(st.fixed_dictionaries(
    {"prompt": st.one_of(st.text(max_size=20), st.lists(st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "bot"]), "content": st.text(max_size=10)}), max_size=2))},
    optional={"id": st.text(max_size=10), "responses": st.lists(st.fixed_dictionaries({"text": st.text(max_size=10)}), max_size=3),
              "annotations": st.lists(st.fixed_dictionaries({"judgement": judgements}), max_size=2)}), max_size=3),
    gold=st.booleans())
@example(items=[{"prompt": "p", "responses": [{"text": "a"}, {"text": "b"}],
                 "annotations": [{"judgement": {"kind": "rating", "response": 0, "score": NAN}}]}], gold=False)
def test_import_never_5xx(env, items, gold):
    pid = _project(env)
    r = _send(env, "POST", f"/api/admin/projects/{pid}/items", {"items": items, "gold": gold}, "admin")
    assert r.status_code < 500, (items, r.text)


def _send(env, method, url, body, who):
    """Send ``body`` as Python's json writes it (NaN/Infinity literals included); the answer
    must be valid JSON."""
    r = env.client.request(method, url, content=json.dumps(body).encode(),
                           headers={**env.hdr(who), "Content-Type": "application/json"})
    if r.status_code >= 400:
        json.loads(r.text, parse_constant=_no_constant)
    return r


def _no_constant(name):
    raise AssertionError(f"the error response holds {name}, which is not JSON")


def _project(env) -> int:
    r = env.client.get("/api/admin/projects", headers=env.hdr("admin")).json()
    if r:
        return r[0]["project"]["id"]
    return env.project(items=make_items(50), overlap=3)
