"""Language feedback (issue 13 section 1): critiques of single responses and edits are stored with
provenance, validated against what the annotator was shown, and exported as SFT examples,
edited > original pairs and ILF triples whose hashes are the SHA-256 of the canonical JSON;
simulated annotators write critiques from their gold rule's templates."""

import hashlib
import json

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.data.language_feedback import read_ilf_triples
from rlhfkit.feedback import repo
from rlhfkit.feedback.export import export_lines
from rlhfkit.feedback.models import Item
from rlhfkit.feedback.simulate import (AnnotatorPool, final_number_rule, label_over_http, length_rule,
                                       rule_annotator)
from rlhfkit.schema import (Annotation, PreferenceItem, Provenance, RankingJudgement, Response, ResponseCritique,
                            ResponseEdit)
from tests.feedback.conftest import make_items


def _sha(record: dict) -> str:
    """Independent canonical-JSON hash: sorted keys, no whitespace, json's default ASCII escapes."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _submit(env, who, pid, body_extra, jid="j1"):
    a = env.next(who, pid)["assignment"]
    k = len(a["responses"])
    body = {"id": jid, "judgement": {"kind": "ranking", "tiers": [[i] for i in range(k)]}, **body_extra}
    return a, env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr(who))


def _export(env, pid, fmt):
    with env.db.read() as s:
        lines, _ = export_lines(s, repo.get_project(s, pid), fmt)
    return [json.loads(line) for line in lines]


def test_submit_stores_critiques_and_edit_and_exports_three_shapes(env):
    pid = env.project(items=make_items(1), overlap=1)
    _a, r = _submit(env, "alice", pid, {
        "critique": "overall fine",
        "response_critiques": [{"response": 2, "text": "  rambles; answer in one sentence  "},
                               {"response": 1, "text": "   "}],  # whitespace only: no critique
        "edit": {"response": 0, "text": "answer 0, shorter."}})
    assert r.status_code == 201, r.text
    assert r.json()["response_critiques"] == [{"response": 2, "text": "rambles; answer in one sentence"}]
    assert r.json()["edit"] == {"response": 0, "text": "answer 0, shorter."}

    item = PreferenceItem.model_validate_json(_export_raw(env, pid))
    ann = item.annotations[0]
    assert ann.response_critiques == [ResponseCritique(response=2, text="rambles; answer in one sentence")]
    assert ann.edit == ResponseEdit(response=0, text="answer 0, shorter.") and ann.critique == "overall fine"

    (sft,) = _export(env, pid, "sft")
    assert (sft["prompt"], sft["completion"]) == ("question 0?", "answer 0, shorter.")
    assert sft["annotator"] == "alice" and sft["source"] == "human" and sft["response_index"] == 0
    assert sft["edit_sha256"] == _sha({"prompt": "question 0?", "completion": "answer 0, shorter."})
    (pair,) = _export(env, pid, "edit-pairs")
    assert (pair["chosen"], pair["rejected"], pair["pair_kind"]) == ("answer 0, shorter.", "answer 0 to question 0",
                                                                     "edit")
    (triple,) = _export(env, pid, "ilf")
    assert triple["response"] == "answer 2 to question 0 more more"
    assert triple["critique"] == "rambles; answer in one sentence" and triple["item_id"] == "it0"
    assert triple["critique_sha256"] == _sha({"prompt": "question 0?", "response": triple["response"],
                                              "critique": triple["critique"]})
    # the ranking export is unchanged by language feedback: 3 ranked responses give 3 pairs, no edit pair
    assert len(_export(env, pid, "trl-pairs")) == 3


def _export_raw(env, pid) -> str:
    with env.db.read() as s:
        (line,), _ = export_lines(s, repo.get_project(s, pid), "rlhfkit")
    return line


def test_language_feedback_is_checked_against_what_was_shown(env):
    pid = env.project("pw", items=make_items(1, k=3), overlap=3, mode="pairwise")
    a = env.next("alice", pid)["assignment"]
    shown, hidden = a["shown_order"][:2], a["shown_order"][2]
    url = f"/api/assignments/{a['assignment_id']}/judgement"
    base = {"id": "x", "judgement": {"kind": "pairwise", "a": shown[0], "b": shown[1], "choice": "a"}}
    cases = [({"response_critiques": [{"response": hidden, "text": "bad"}]}, "was not shown"),
             ({"response_critiques": [{"response": shown[0], "text": "a"}, {"response": shown[0], "text": "b"}]},
              "second critique"),
             ({"edit": {"response": shown[0], "text": f"answer {shown[0]} to question 0" + " more" * shown[0]}},
              "identical"),
             ({"edit": {"response": hidden, "text": "new"}}, "was not shown")]
    for extra, message in cases:
        r = env.client.post(url, json={**base, **extra}, headers=env.hdr("alice"))
        assert r.status_code == 422 and message in r.json()["detail"], (extra, r.text)
    r = env.client.post(url, json={**base, "edit": {"response": shown[0], "text": ""}}, headers=env.hdr("alice"))
    assert r.status_code == 422  # empty edit: refused by the body's min_length
    assert env.client.post(url, json={**base, "edit": {"response": 0, "text": "x"}}).status_code == 401
    r = env.client.post(url, json={**base, "edit": {"response": shown[1], "text": "B, fixed."}}, headers=env.hdr("alice"))
    assert r.status_code == 201 and r.json()["edit"]["response"] == shown[1]


def test_schema_refuses_feedback_on_a_missing_response():
    with pytest.raises(ValidationError, match="critique or edit of response 5"):
        PreferenceItem(prompt="q", responses=[Response(text="a"), Response(text="b")],
                       annotations=[Annotation(judgement=RankingJudgement(tiers=[[0], [1]]),
                                               edit=ResponseEdit(response=5, text="c"))])
    with pytest.raises(ValidationError, match="critique text is empty"):
        ResponseCritique(response=0, text="  ")


def test_imported_feedback_round_trips_and_cli_exports_ilf(tmp_path):
    item = PreferenceItem(id="i", prompt=[{"role": "user", "content": "What is 6*7?"}],
                          responses=[Response(text="Forty-something."), Response(text="42")],
                          annotations=[Annotation(id="a1", annotator_id="ext", judgement=RankingJudgement(tiers=[[1], [0]]),
                                                  response_critiques=[ResponseCritique(response=0, text="No number.")],
                                                  edit=ResponseEdit(response=1, text="The answer is 42."))])
    items = tmp_path / "items.jsonl"
    items.write_text(item.model_dump_json() + "\n")
    db = str(tmp_path / "f.db")
    runner = CliRunner()
    assert runner.invoke(app, ["feedback", "import", str(items), "-p", "p", "--db", db]).exit_code == 0
    out = {}
    for fmt in ("ilf", "sft", "edit-pairs"):
        out[fmt] = tmp_path / f"{fmt}.jsonl"
        r = runner.invoke(app, ["feedback", "export", "-p", "p", "-f", fmt, "-o", str(out[fmt]), "--db", db])
        assert r.exit_code == 0 and "wrote 1 lines" in r.output, r.output
    (triple,) = read_ilf_triples(out["ilf"])
    assert triple.prompt == [{"role": "user", "content": "What is 6*7?"}]
    assert (triple.response, triple.critique) == ("Forty-something.", "No number.")
    assert triple.sha256 == _sha({"prompt": triple.prompt, "response": "Forty-something.", "critique": "No number."})
    record = json.loads(out["ilf"].read_text())
    assert record["source"] == "human" and record["annotator"] == "ext" and record["response_index"] == 0
    record["critique"] = "changed"
    out["ilf"].write_text(json.dumps(record) + "\n")
    with pytest.raises(ValueError, match="ilf.jsonl, line 1: field 'critique_sha256'"):
        read_ilf_triples(out["ilf"])
    from rlhfkit.data import load_pairs
    from rlhfkit.trainers.sft import read_sft_examples

    assert [(p.chosen, p.rejected) for p in load_pairs(out["edit-pairs"])] == [("The answer is 42.", "42")]
    assert [ex.completion for ex in read_sft_examples(out["sft"])] == ["The answer is 42."]


def test_rule_annotators_write_template_critiques_and_edits():
    rule = length_rule(max_words=4)
    pool = AnnotatorPool([rule_annotator("terse", rule, temperature=0.05)], seed=3)
    item = PreferenceItem(id="q", prompt="Capital of France?",
                          responses=[Response(text="Paris."),
                                     Response(text="It is Paris. The city has been the capital for centuries.")])
    labelled = pool.label_item(item, "ranking")
    ann = labelled.annotations[0]
    assert ann.judgement.tiers == [[0], [1]]  # gold 1.0 vs 4/11: the short one wins at T=0.05
    assert ann.response_critiques == [ResponseCritique(response=1, text="Too long: answer in one sentence.")]
    assert ann.edit is None  # the best response is already within the rule
    assert labelled.metadata["simulated_annotators"]["terse"]["critiques"] is True

    fn = final_number_rule()
    assert fn.critique("q", "I do not know.") == ("Does not give the final number. "
                                                  "End with the final number as 'The answer is N.'")
    assert fn.critique("q", "It is 12") == "End with the final number as 'The answer is N.'"
    assert fn.critique("q", "6*7. The answer is 42.") is None and fn.score("q", "The answer is 42.") == 1.0
    both_long = item.model_copy(update={"responses": [  # 9 words (gold 4/9) vs 10 (gold 4/10)
        Response(text="Paris is the capital. It has been for ages."),
        Response(text="Rome is, I think, the capital of France for sure.")]})
    sharp = AnnotatorPool([rule_annotator("terse", rule, temperature=0.001)], seed=0)
    (ann,) = sharp.label_item(both_long).annotations
    assert ann.judgement.tiers == [[0], [1]]
    assert ann.edit == ResponseEdit(response=0, text="Paris is the capital.")  # the best, cut to one sentence
    assert [c.response for c in ann.response_critiques] == [0, 1] or [c.response for c in ann.response_critiques] == [1, 0]

def test_simulated_critiques_over_http_reach_the_ilf_export(env):
    texts = ["Short answer.", "A long answer that goes on and on about many things. Then more."]
    items = [PreferenceItem(id=f"s{i}", prompt=f"q{i}?", responses=[Response(text=t) for t in texts]) for i in range(3)]
    pid = env.project("sim", items=items, overlap=1)
    pool = AnnotatorPool([rule_annotator("alice", length_rule(max_words=5))], seed=0)
    done = label_over_http("http://testserver", pid, pool, {"alice": env.tokens["alice"]}, client=env.client)
    assert done == {"alice": 3}
    triples = _export(env, pid, "ilf")
    assert [(t["item_id"], t["response"], t["critique"]) for t in triples] == [
        (f"s{i}", texts[1], "Too long: answer in one sentence.") for i in range(3)]
    assert {t["annotator"] for t in triples} == {"alice"}
    # label provenance rides along: source "simulated" and the annotator's configuration
    assert {t["source"] for t in triples} == {"simulated"}
    with env.db.read() as s:
        lines, _ = export_lines(s, repo.get_project(s, pid), "rlhfkit")
    first = PreferenceItem.model_validate_json(lines[0])
    assert first.metadata["simulated_annotators"]["alice"]["critiques"] is True


def test_rating_submission_carries_feedback_once_and_review_keeps_it(env):
    """Rating/thumbs projects (one annotation per response) take critiques and an edit too; the
    export puts them on the first part only, so each is exported once; an adjudication of the
    item replaces its preference label but not the annotators' critiques and edits."""
    pid = env.project("rate", items=make_items(1), overlap=1, mode="rating")
    a = env.next("alice", pid)["assignment"]
    body = {"id": "r1", "judgement": {"kind": "per_response", "judgements": [
        {"kind": "rating", "response": i, "score": s, "scale_min": 1, "scale_max": 7} for i, s in [(0, 6), (1, 2), (2, 4)]]},
        "response_critiques": [{"response": 1, "text": "wrong"}, {"response": 2, "text": "too long"}],
        "edit": {"response": 0, "text": "answer 0."}}
    r = env.client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=env.hdr("alice"))
    assert r.status_code == 201, r.text
    item = PreferenceItem.model_validate_json(_export_raw(env, pid))
    assert [ann.id.rsplit(".", 1)[1] for ann in item.annotations] == ["r0", "r1", "r2"]  # one per response
    assert [len(ann.response_critiques or []) for ann in item.annotations] == [2, 0, 0]
    assert [ann.edit is not None for ann in item.annotations] == [True, False, False]
    assert [(t["response_index"], t["critique"]) for t in _export(env, pid, "ilf")] == [(1, "wrong"), (2, "too long")]
    assert [e["completion"] for e in _export(env, pid, "sft")] == ["answer 0."]

    with env.db.session() as s:
        _r, token = repo.add_annotator(s, "rita", role="reviewer")
    env.tokens["rita"] = token
    with env.db.read() as s:
        item_id = s.scalar(select(Item.id).where(Item.project_id == pid))
    adj = {"kind": "per_response", "judgements": [
        {"kind": "rating", "response": i, "score": 5, "scale_min": 1, "scale_max": 7} for i in range(3)]}
    r = env.client.post(f"/api/review/items/{item_id}/adjudication", headers=env.hdr("rita"), json={"judgement": adj})
    assert r.status_code == 200, r.text
    item = PreferenceItem.model_validate_json(_export_raw(env, pid))
    assert {ann.annotator_id for ann in item.annotations} == {"rita"}  # the label is the reviewer's
    assert [(t["response_index"], t["annotator"]) for t in _export(env, pid, "ilf")] == [(1, "alice"), (2, "alice")]
    assert [e["completion"] for e in _export(env, pid, "sft")] == ["answer 0."]


def test_arena_feedback_is_limited_to_the_two_responses_shown(env):
    """An arena battle shows two of the item's responses, as pairwise does: a critique of the third is refused."""
    items = [PreferenceItem(id="q0", prompt="question?", responses=[
        Response(text=f"{m} says hi", provenance=Provenance(model=m)) for m in ("m1", "m2", "m3")])]
    pid = env.project("arena", items=items, overlap=1, mode="arena")
    a = env.next("alice", pid)["assignment"]
    (x, y), hidden = a["shown_order"][:2], a["shown_order"][2]
    body = {"id": "v", "judgement": {"kind": "pairwise", "a": x, "b": y, "choice": "a"}}
    url = f"/api/assignments/{a['assignment_id']}/judgement"
    r = env.client.post(url, json={**body, "response_critiques": [{"response": hidden, "text": "bad"}]},
                        headers=env.hdr("alice"))
    assert r.status_code == 422 and "was not shown" in r.json()["detail"], r.text
    r = env.client.post(url, json={**body, "response_critiques": [{"response": y, "text": "rude"}]}, headers=env.hdr("alice"))
    assert r.status_code == 201 and r.json()["response_critiques"] == [{"response": y, "text": "rude"}]
