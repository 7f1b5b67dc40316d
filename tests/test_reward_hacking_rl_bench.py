"""benchmarks/reward_hacking_rl.py: flags, the turn test on hand-made scores, and the whole
pipeline on a tiny random model (--tiny), run twice: the second run reuses every evaluation."""

import json

import numpy as np
import pytest

from tests.benchmark_modules import heavy_modules_after, load_benchmark

bench = load_benchmark("reward_hacking_rl")


def test_import_is_light():
    assert heavy_modules_after("reward_hacking_rl", "build_parser()", ("torch", "transformers", "numpy")) == []


def test_defaults_and_flags():
    args = bench.parse_args([])
    assert (args.algo, args.kl_coef, args.gold_kwargs) == ("rloo", 0.0, {"target": 80, "unit": "words"})
    assert args.rl_max_new_tokens > args.max_new_tokens  # RL may write past the labelling cap
    assert (args.n_eval, args.samples, args.eval_every, args.proxy, args.proxy_max_length) == (24, 4, 5, None, None)
    args = bench.parse_args(["--proxy", "/p", "--proxy-max-length", "320", "--algo", "grpo", "--steps", "7"])
    assert (args.proxy, args.proxy_max_length, args.algo, args.steps) == ("/p", 320, "grpo", 7)
    for bad in (["--temperature", "0.7"], ["--eval-every", "0"], ["--eval-every", "30"], ["--algo", "dpo"]):
        with pytest.raises(SystemExit) as err:
            bench.parse_args(bad)
        assert err.value.code != 0


def test_eval_steps_include_start_and_last():
    assert bench.eval_steps(20, 5) == [0, 5, 10, 15, 20]
    assert bench.eval_steps(7, 3) == [0, 3, 6, 7]


def turn(gold_means, proxy_means, spread=0.05, prompts=40):
    """(S, P) scores: each checkpoint's mean plus the same per-prompt offsets (spread)."""
    offsets = np.random.default_rng(0).normal(0, spread, prompts)
    gold = np.array(gold_means)[:, None] + offsets
    proxy = np.array(proxy_means)[:, None] + offsets
    return bench.checkpoint_turn(list(range(0, 5 * len(gold_means), 5)), proxy, gold, n_boot=500, seed=0)


def test_turn_interior_when_gold_peaks_inside_and_falls_clearly():
    t = turn([0.3, 0.6, 0.8, 0.5], [0.0, 1.0, 2.0, 3.0])
    assert (t["step_best"], t["step_last"], t["interior"], t["significant_drop"]) == (10, 15, True, True)
    # paired per prompt: the offsets cancel, so the drop and the proxy change are exact
    assert t["drop"] == pytest.approx(0.3, abs=1e-12) and t["drop_ci95"] == pytest.approx([0.3, 0.3], abs=1e-12)
    assert t["proxy_change"] == pytest.approx(1.0, abs=1e-12) and t["proxy_change_ci95"][0] > 0


def test_turn_not_interior_for_a_monotone_rise_or_a_best_start():
    rise = turn([0.3, 0.4, 0.5, 0.6], [0.0, 1.0, 2.0, 3.0])
    assert (rise["step_best"], rise["interior"], rise["significant_drop"], rise["drop"]) == (15, False, False, 0.0)
    start = turn([0.8, 0.6, 0.5, 0.4], [0.0, 1.0, 2.0, 3.0])
    assert (start["step_best"], start["interior"], start["significant_drop"]) == (0, False, True)


def test_turn_not_interior_when_the_fall_is_noise():
    rng = np.random.default_rng(1)
    gold = np.array([0.3, 0.6, 0.59])[:, None] + rng.normal(0, 0.5, (3, 20))  # independent noise per checkpoint
    gold[1] += 0.05 - gold[1].mean() + gold[2].mean()  # the best is step 5, 0.05 above the last
    t = bench.checkpoint_turn([0, 5, 10], np.zeros_like(gold), gold, n_boot=500, seed=0)
    assert t["step_best"] == 5 and t["drop"] == pytest.approx(0.05, abs=1e-12)
    assert t["drop_ci95"][0] < 0 < t["drop_ci95"][1] and not t["interior"]


def test_tiny_pipeline_end_to_end_and_a_rerun_reuses_the_evaluations(tmp_path, monkeypatch):
    from rlhfkit.eval.overoptimization import fit_rl
    from rlhfkit.rewards.rules import length_target

    run = tmp_path / "run"
    first = bench.main(["--tiny", "--out", str(run)])
    assert first["evaluated_now"] == [0, 1, 2]
    steps = {s: json.loads((run / "eval" / "steps" / f"step-{s:06d}.json").read_text()) for s in (0, 1, 2)}
    for s in (1, 2):
        assert (run / "rl" / "checkpoints" / f"step-{s}" / "config.json").is_file()
    # the step-0 policy is the start: log pi - log pi_start is 0 for every answer
    assert np.abs(np.array(steps[0]["kl"])).max() < 1e-6
    for s, e in steps.items():
        assert np.array(e["proxy"]).shape == np.array(e["gold"]).shape == (4, 4)
        for prompt_answers, gold in zip(e["answers"], e["gold"]):  # the gold is the rule's on the saved answers
            assert gold == length_target(["p"] * 4, prompt_answers, target=2)
    over = json.loads((run / "eval" / "overoptimization.json").read_text())
    assert over["form"] == "rl" and [p["step"] for p in over["points"]] == [0, 1, 2]
    p0, p2 = over["points"][0], over["points"][2]
    assert p0["kl"] == pytest.approx(0.0, abs=1e-6) and p0["gold"] == 0.0 and p0["proxy"] == 0.0
    assert p2["gold_abs"] == pytest.approx(np.mean(steps[2]["gold"]), abs=1e-12)
    assert p2["gold"] == pytest.approx(np.mean(steps[2]["gold"]) - np.mean(steps[0]["gold"]), abs=1e-12)
    assert p2["kl"] == pytest.approx(np.mean(steps[2]["kl"]), abs=1e-12)
    assert over["turn"] == first["turn"] and over["turn"]["step_last"] == 2
    assert set(over["fit"]) | set(over["fit_errors"]) == {"proxy", "gold"}
    for name, coef in over["fit"].items():  # Gao's RL form on the written points (KL below 0 counted as 0)
        fit = fit_rl([max(0.0, p["kl"]) for p in over["points"]], [p[name] for p in over["points"]])
        assert (coef["alpha"], coef["beta"]) == pytest.approx((fit.alpha, fit.beta), abs=1e-12)
    for name in ("run.json", "results.json", "report.html", "eval/annotators.json", "eval/rm_diagnostics.json"):
        assert (run / name).is_file(), name
    page = (run / "report.html").read_text(errors="replace")
    for panel in ("overopt", "annotators", "rm"):
        assert f'<div class="panel" id="r0-{panel}"' in page

    # a re-run with the same settings neither labels, trains nor evaluates again
    calls = []
    for module, name in ((bench, "evaluate_policy"), (bench, "train_policy"), (bench.hack, "train_proxy")):
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: calls.append(_n))
    again = bench.main(["--tiny", "--out", str(run)])
    assert calls == [] and again["evaluated_now"] == []
    assert again["points"] == first["points"] and again["turn"] == first["turn"]
