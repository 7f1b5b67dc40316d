"""`rlhfkit ilf` on the tiny model with a rule scorer: the documented refinement prompt, selection
of the highest-scoring refinement, SFT on the selected ones (and the edits), resume that reuses
OUT/refinements.jsonl, and lineage hashes recomputed here from the critiques file."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.data.language_feedback import read_ilf_triples
from rlhfkit.rollout.sampler import TorchSampler
from rlhfkit.trainers.config import ILFConfig
from rlhfkit.trainers.ilf import (REFINEMENT_TEMPLATE, judge_scorer, read_refinements, refinement_messages, run_ilf,
                                  select_refinement)
from rlhfkit.trainers.sft import SFTExample

torch.set_num_threads(1)
SCORER = "tests.toy_data:lowercase_share"
CRITIQUES = [("Name a colour.", "Blue, or maybe green, or red, I cannot decide.", "Too long: answer in one sentence."),
             ("What is 2+2?", "It is a number.", "Does not give the final number."),
             ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
               {"role": "user", "content": "Say bye."}], "Goodbye, farewell, see you.", "One word is enough."),
             ("Spell cat.", "K-A-T", "Wrong letters: C-A-T."),
             ("Capital of Italy?", "Milan.", "Wrong city: Rome — not Milan.")]


def _sha(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _lowercase_share(text: str) -> float:  # the scorer, written again: sum of a-z over length
    return sum(ch in "abcdefghijklmnopqrstuvwxyz" for ch in text) / max(1, len(text))


@pytest.fixture
def critiques_file(tmp_path):
    path = tmp_path / "critiques.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "response": r, "critique": c}) + "\n" for p, r, c in CRITIQUES))
    return path


def _cfg(model_dir, critiques, out, **kw) -> ILFConfig:
    settings = dict(model=str(model_dir), data=str(critiques), out=str(out), scorer=SCORER, refinements=3,
                    max_new_tokens=8, temperature=1.0, refine_batch_size=2, max_steps=2, batch_size=4, lr=1e-3,
                    lr_schedule="constant", max_length=256, progress=False, seed=0)
    settings.update(kw)
    return ILFConfig(**settings)


def _run(cfg, edits=()):
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.ilf import load_scorer

    model, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
    return run_ilf(model, tokenizer, cfg, load_scorer(cfg.scorer), read_ilf_triples(cfg.data), list(edits))


def test_refinement_prompt_is_the_documented_template():
    msgs = refinement_messages("What is 2+2?", "It is a number.", "Does not give the final number.")
    assert msgs == [{"role": "user", "content": "What is 2+2?\n\nHere is an earlier answer to this:\nIt is a number."
                     "\n\nFeedback on that answer:\nDoes not give the final number.\n\nWrite an improved answer that "
                     "follows the feedback. Reply with the improved answer only."}]
    chat = refinement_messages(CRITIQUES[2][0], "Goodbye.", "Shorter.")
    assert chat[:2] == CRITIQUES[2][0][:2]  # earlier turns kept
    assert chat[2]["content"] == REFINEMENT_TEMPLATE.format(prompt="Say bye.", response="Goodbye.", critique="Shorter.")


def test_select_refinement_takes_the_best_non_empty():
    assert select_refinement([0.1, 0.9, 0.9, 2.0], ["a", "b", "c", "  "]) == 1  # first of equal maxima; empty never wins
    assert select_refinement([1.0, 2.0], ["", ""]) is None


def test_ilf_selects_best_trains_and_writes_lineage(tiny_model_dir, critiques_file, tmp_path):
    from transformers import AutoModelForCausalLM

    edits = tmp_path / "edits.jsonl"
    edits.write_text(json.dumps({"prompt": "What is 2+2?", "completion": "The answer is 4."}) + "\n")
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["ilf", "--critiques", str(critiques_file), "--edits", str(edits), "--model",
                                   str(tiny_model_dir), "--scorer", SCORER, "--refinements", "3",
                                   "--max-new-tokens", "8", "--temperature", "1.0", "--refine-batch-size", "2",
                                   "--max-steps", "2", "--lr", "1e-3", "--max-length", "256", "--no-progress",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    records = read_refinements(out / "refinements.jsonl")
    assert [r["index"] for r in records] == list(range(len(CRITIQUES)))
    trained = []
    for r, (p, resp, crit) in zip(records, CRITIQUES):
        assert len(r["refinements"]) == 3
        assert r["scores"] == pytest.approx([_lowercase_share(t) for t in r["refinements"]], abs=1e-12)
        live = [i for i, t in enumerate(r["refinements"]) if t.strip()]
        if live:
            best = max(r["scores"][i] for i in live)
            assert r["scores"][r["selected"]] == best and r["selected"] == min(i for i in live if r["scores"][i] == best)
            trained.append(_sha({"prompt": p, "response": resp, "critique": crit}))
        else:
            assert r["selected"] is None
    assert trained  # something was selected
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["critique_hashes"] == trained and lineage["critiques_sha256"] == _sha(trained)
    assert lineage["edit_hashes"] == [_sha({"prompt": "What is 2+2?", "completion": "The answer is 4."})]
    shown = CliRunner().invoke(app, ["lineage", str(out)])
    assert shown.exit_code == 0 and f"ilf on {len(trained)} critiques (sha256 {_sha(trained)[:16]}" in shown.output
    assert f"{tiny_model_dir}: base model" in shown.output  # the parent: the starting policy
    assert lineage["critiques_file_sha256"] == hashlib.sha256(critiques_file.read_bytes()).hexdigest()
    assert lineage["rounds"][0]["targets"] == len(trained) and lineage["rounds"][0]["edits"] == 1
    # SFT ran on the shared loop: 2 steps logged, weights moved, a plain HF folder
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = AutoModelForCausalLM.from_pretrained(out)
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), tuned.parameters()))


def test_resume_reuses_refinements_and_refuses_changed_settings(tiny_model_dir, critiques_file, tmp_path, monkeypatch):
    full = tmp_path / "full"
    _run(_cfg(tiny_model_dir, critiques_file, full))
    lines = (full / "refinements.jsonl").read_text().splitlines()

    calls = []
    real = TorchSampler.sample

    def counting(self, prompt_ids, n, params, seed):
        calls.append(len(prompt_ids))
        return real(self, prompt_ids, n, params, seed)

    monkeypatch.setattr(TorchSampler, "sample", counting)
    part = tmp_path / "part"  # killed after the first batch of 2 critiques was written
    part.mkdir()
    (part / "refinements.jsonl").write_text("\n".join(lines[:2]) + "\n")
    _run(_cfg(tiny_model_dir, critiques_file, part))
    assert calls == [2, 1]  # only the two missing batches were sampled
    assert (part / "refinements.jsonl").read_text().splitlines() == lines  # as if never interrupted

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run must not sample again")

    monkeypatch.setattr(TorchSampler, "sample", refuse)
    _model, lineage = _run(_cfg(tiny_model_dir, critiques_file, full))  # finished: reused and reloaded
    assert lineage["rounds"][0]["sampled_now"] == 0
    with pytest.raises(ValueError, match="temperature"):
        _run(_cfg(tiny_model_dir, critiques_file, full, temperature=0.5))
    with pytest.raises(ValueError, match="holds round 1 of 1, not round 2 of 2"):
        _run(_cfg(tiny_model_dir, critiques_file, full, rounds=2))  # OUT holds a finished 1-round run


def test_two_rounds_refine_with_the_tuned_policy(tiny_model_dir, critiques_file, tmp_path):
    out = tmp_path / "two"
    cfg = _cfg(tiny_model_dir, critiques_file, out, rounds=2, max_steps=1)
    _model, lineage = _run(cfg, [SFTExample("Spell dog.", "D-O-G")])
    records = read_refinements(out / "refinements.jsonl")
    assert [r["settings"]["round"] for r in records] == [1] * 5 + [2] * 5
    assert (out / "round-1" / "config.json").exists() and (out / "config.json").exists()
    assert [r["round"] for r in lineage["rounds"]] == [1, 2]
    # round 2 sampled from the round-1 model: the same seeds give other refinements
    assert [r["refinements"] for r in records[:5]] != [r["refinements"] for r in records[5:]]
    shutil.rmtree(out / "round-1")  # a lost round folder is retrained, the refinements are reused
    _model, again = _run(cfg, [SFTExample("Spell dog.", "D-O-G")])
    assert again["critique_hashes"] == lineage["critique_hashes"] and again["rounds"][0]["sampled_now"] == 0


def test_judge_scorer_states_the_critique():
    asked = []

    class FakeJudge:
        def score(self, prompt, response):
            asked.append((prompt, response))
            return float(len(response))

    score = judge_scorer("http://unused", "m", judge=FakeJudge())
    assert score(["Q?"], ["abc"], critique=["Be brief."]) == [3.0]
    assert asked == [("Q?\n\n(A reviewer asked that the answer follow this feedback: Be brief.)", "abc")]


def test_critique_rules_agree_with_the_simulated_gold():
    from rlhfkit.feedback.simulate import final_number_rule, length_rule
    from rlhfkit.rewards.critique_rules import at_most_words, final_answer

    texts = ["", "Paris.", "one two three four five six", "It is 4. The answer is 4.", "The answer is 1,200",
             "the answer is x.", "a " * 40]
    assert at_most_words([""] * len(texts), texts, max_words=5) == [length_rule(5).score("", t) for t in texts]
    assert final_answer([""] * len(texts), texts) == [final_number_rule().score("", t) for t in texts]
    assert at_most_words([""], ["a " * 40], max_words=5) == [5 / 40]
