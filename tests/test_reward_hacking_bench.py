"""benchmarks/reward_hacking.py: flags, its small helpers on hand-made scores, and the whole
pipeline end to end on a tiny random model (--tiny), checked against its own saved scores."""

import json

import numpy as np
import pytest

from tests.benchmark_modules import heavy_modules_after, load_benchmark



bench = load_benchmark("reward_hacking")


def test_import_is_light():
    assert heavy_modules_after("reward_hacking", "build_parser()", ("torch", "transformers", "numpy")) == []


def test_defaults_and_flags():
    args = bench.parse_args([])
    assert (args.model, args.gold, args.gold_kwargs) == ("smollm2-135m", "rlhfkit.rewards.rules:length_target",
                                                         {"target": 40, "unit": "words"})
    assert (args.n_train, args.n_eval, args.label_answers, args.samples, args.max_new_tokens) == (48, 32, 4, 32, 64)
    assert (args.rm_max_length, args.rm_freeze_layers, args.train_prompts) == (96, 24, "builtin:loop-train")
    args = bench.parse_args(["--gold-kwargs", '{"target": 45}', "--samples", "16", "--length-bias", "0.5"])
    assert (args.gold_kwargs, args.samples, args.length_bias) == ({"target": 45}, 16, 0.5)
    with pytest.raises(SystemExit) as err:
        bench.parse_args(["--samples", "1"])
    assert err.value.code != 0


def test_powers_of_two_end_at_the_pool_size():
    assert bench.powers_of_two(32) == [1, 2, 4, 8, 16, 32]
    assert bench.powers_of_two(24) == [1, 2, 4, 8, 16, 24]
    assert bench.powers_of_two(2) == [1, 2]


def test_empty_answers_score_below_everything_else():
    records = [type("R", (), {"prompt": "p"})()] * 2
    answers = [["a b", ""], ["a", "a b c"]]
    scores, empty = bench.score_matrix(lambda ps, xs: [float(len(x.split())) for x in xs], records, answers)
    # non-empty scores 2, 1, 3 -> the empty answer gets min 1 minus 1 = 0
    np.testing.assert_array_equal(scores, [[2.0, 0.0], [1.0, 3.0]])
    assert empty == 1


def test_held_out_agreement_counts_disjoint_pairs_and_skips_gold_ties():
    args = bench.parse_args(["--boot", "200"])
    gold = np.array([[1.0, 0.0, 2.0, 2.0], [0.0, 1.0, 3.0, 1.0]])  # pair (2, 3) of prompt 0 is a gold tie
    answers = [["long answer", "s", "x", "y"], ["s", "long answer", "long answer", "s"]]
    # proxy = gold ranks every pair right; proxy = -gold ranks every pair wrong
    right, _ = bench.held_out_agreement(gold.copy(), gold, answers, args)
    wrong, diag = bench.held_out_agreement(-gold, gold, answers, args)
    assert right["pairs"] == 3 and right["prompts"] == 2 and right["agreement"] == 1.0
    assert wrong["agreement"] == 0.0 and diag["accuracy"] == 0.0 and diag["n_pairs"] == 3
    assert right["longer_answer_agreement"] == 1.0  # the gold-preferred answer is the longer one in all 3


def test_tiny_pipeline_end_to_end(tmp_path):
    from rlhfkit.eval.bon_sweep import bon_sweep, gold_turn
    from rlhfkit.rewards.rules import length_target

    result = bench.main(["--tiny", "--out", str(tmp_path / "run")])
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    proxy = np.array([h["proxy"] for h in saved["held_out"]])
    gold = np.array([h["gold"] for h in saved["held_out"]])
    assert proxy.shape == gold.shape == (4, 8)
    # the gold scores are the rule's on the saved answers
    for h in saved["held_out"]:
        assert h["gold"] == length_target([h["prompt"]] * 8, h["answers"], target=2)
    # the written sweep is the estimator's on the saved scores; N=8=M is the proxy-best of every prompt
    over = json.loads((run / "eval" / "overoptimization.json").read_text())
    assert over["form"] == "bon" and [p["n"] for p in over["points"]] == [1, 2, 4, 8]
    assert over["points"] == json.loads(json.dumps(bon_sweep(proxy, gold, [1, 2, 4, 8], n_boot=200, seed=0)))
    best = gold[np.arange(4), proxy.argmax(axis=1)].mean()
    assert over["points"][-1]["gold_abs"] == pytest.approx(best, abs=1e-12)
    assert over["turn"] == gold_turn(proxy, gold, [1, 2, 4, 8], n_boot=200, seed=0) == result["turn"]
    assert set(over["fit"]) == {"proxy", "gold"} and all("r2" in f for f in over["fit"].values())
    # the report shows the sweep, the annotators and the proxy's diagnostics
    page = (run / "report.html").read_text()
    for panel in ("overopt", "annotators", "rm"):
        assert f'<div class="panel" id="r0-{panel}"' in page
    annotators = json.loads((run / "eval" / "annotators.json").read_text())
    assert {r["annotator"] for r in annotators["annotators"]} >= {"(all)"}
    assert annotators["pool"]["length_bias_per_100_chars"] == 2.0
