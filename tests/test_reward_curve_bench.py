"""benchmarks/reward_curve.py: run selection, nested subsets, the minutes estimate, the slope per
doubling and its reading (hand-worked numbers), and --tiny end to end with resume (no SmolLM2)."""

import json
import math
from pathlib import Path

import pytest

from tests.benchmark_modules import heavy_modules_after, load_benchmark



rc = load_benchmark("reward_curve")


def test_import_is_light():
    # --help and --dry-run planning must not wait for torch
    assert heavy_modules_after("reward_curve", "parse_args([])", ("torch", "trl", "transformers")) == []


def test_run_selection():
    args = rc.parse_args([])
    assert args.curve_sizes == [100, 200, 400, 800, None]
    assert args.run_names == ["curve-100", "curve-200", "curve-400", "curve-800", "curve-all",
                              "len256", "freeze12", "lora", "epochs2"]
    assert rc.parse_args(["--runs", "curve"]).run_names[-1] == "curve-all"
    assert len(rc.parse_args(["--runs", "curve"]).run_names) == 5
    assert rc.parse_args(["--runs", "ablations"]).run_names == ["len256", "freeze12", "lora", "epochs2"]
    # table order, whatever order they are asked in
    assert rc.parse_args(["--runs", "lora,curve-200"]).run_names == ["curve-200", "lora"]
    assert rc.parse_args(["--tiny"]).run_names[:3] == ["curve-8", "curve-16", "curve-all"]


@pytest.mark.parametrize("argv", [["--runs", "curve-300"], ["--runs", "bt-vs-pl"], ["--curve", "200,100"],
                                  ["--curve", "all,100"], ["--curve", "100,x"], ["--seeds", "0"]])
def test_bad_flags_exit_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as err:
        rc.parse_args(argv)
    assert err.value.code != 0 and "error:" in capsys.readouterr().err


def test_plan_seeds_repeat_the_curve_only_and_ablations_change_one_setting():
    args = rc.parse_args(["--seeds", "2", "--curve", "100,all", "--lora-lr", "5e-4"])
    runs = rc.plan(args, 1593)
    assert [(r.name, r.seed, r.n_pairs) for r in runs] == [
        ("curve-100", 0, 100), ("curve-all", 0, 1593), ("curve-100", 1, 100), ("curve-all", 1, 1593),
        ("len256", 0, 1593), ("freeze12", 0, 1593), ("lora", 0, 1593), ("epochs2", 0, 1593)]
    assert [r.overrides for r in runs[4:]] == [
        {"max_length": 256}, {"freeze_layers": 12},
        {"freeze_layers": 0, "lora_r": 16, "lora_alpha": 32.0, "lr": 5e-4}, {"epochs": 2.0}]
    assert all(r.overrides == {} for r in runs[:4])
    with pytest.raises(SystemExit, match="asks for 2000 pairs"):
        rc.plan(rc.parse_args(["--curve", "2000"]), 1593)


def test_subsets_are_seeded_and_nested():
    a100, a800, a_all = (rc.subset_indices(1593, n, seed=0) for n in (100, 800, 1593))
    assert a800[:100] == a100 and set(a800) < set(a_all) and sorted(a_all) == list(range(1593))
    assert len(set(a800)) == 800
    assert rc.subset_indices(1593, 100, seed=0) == a100  # reproducible
    assert rc.subset_indices(1593, 100, seed=1) != a100
    assert a100 != list(range(100))  # a random draw, not the file's first lines


def test_estimate_is_calibrated_on_the_recipe_run():
    # units of layer-passes per pair: forward 30, backward 2 x trainable layers (LoRA: 30)
    base = 1593 * (30 + 12) + 299 * 30  # = 75,876
    assert rc.estimate_minutes(1593, 1, 128, 24, False, 299) == pytest.approx(8.6, rel=1e-12)
    assert rc.estimate_minutes(800, 1, 128, 24, False, 599) == pytest.approx(8.6 * (800 * 42 + 599 * 30) / base, rel=1e-12)
    assert rc.estimate_minutes(1593, 1, 128, 12, False, 299) == pytest.approx(8.6 * (1593 * 66 + 299 * 30) / base, rel=1e-12)
    assert rc.estimate_minutes(1593, 1, 128, 0, True, 299) == pytest.approx(8.6 * (1593 * 60 + 299 * 30) / base, rel=1e-12)
    assert rc.estimate_minutes(1593, 2, 256, 24, False, 299) == pytest.approx(
        8.6 * 2 * (2 * 1593 * 42 + 299 * 30) / base, rel=1e-12)


def test_slope_per_doubling_hand_worked():
    # one seed; 100 -> 200 pairs is one doubling; correct 1/4 -> 2/4: slope +0.25 per doubling.
    s = rc.slope_per_doubling([(100, {0: [1, 0, 0, 0]}), (200, {0: [1, 1, 0, 0]})], n_boot=500)
    assert s["slope"] == pytest.approx(0.25) and (s["acc1"], s["acc2"]) == (0.25, 0.5)
    assert s["ci95"][0] <= 0.25 <= s["ci95"][1] and s["ci95"][0] >= 0.0 and s["ci95"][1] <= 1.0
    assert s["seed_sd"] is None
    # d = (0, 1, 0, 0): a resample's slope is the share of draws of pair 1, so the bootstrap
    # distribution is Binomial(4, 1/4) / 4 and its 2.5% / 97.5% quantiles are 0 and 0.75
    assert s["ci95"] == [0.0, 0.75]
    # every pair flips to right: d_i = 1 for all i, so every resample gives 1 / log2(4) = 0.5;
    # the two largest points are used, in whatever order they come
    s = rc.slope_per_doubling([(400, {0: [1, 1, 1]}), (50, {0: [0, 0, 0]}), (100, {0: [0, 0, 0]})], n_boot=200)
    assert (s["n1"], s["n2"], s["doublings"]) == (100, 400, 2.0)
    assert s["slope"] == pytest.approx(0.5) and s["ci95"] == [pytest.approx(0.5)] * 2
    # two seeds: accuracies (0.25, 0) -> (0.5, 0.75); means 0.125 -> 0.625, slope 0.5;
    # per-seed slopes 0.25 and 0.75: sample sd sqrt(2 * 0.25^2 / 1) = 0.353553
    s = rc.slope_per_doubling([(100, {0: [1, 0, 0, 0], 1: [0, 0, 0, 0]}),
                               (200, {1: [1, 1, 1, 0], 0: [1, 1, 0, 0]})], n_boot=200)
    assert s["slope"] == pytest.approx(0.5) and s["seeds"] == 2
    assert s["seed_sd"] == pytest.approx(math.sqrt(2 * 0.25**2))
    # a seed run at one point only counts in that point's mean, not in the seed spread
    s = rc.slope_per_doubling([(100, {0: [1, 0, 0, 0], 1: [0, 0, 0, 0]}), (200, {1: [1, 1, 1, 0]})], n_boot=200)
    assert s["slope"] == pytest.approx(0.75 - 0.125) and s["seeds"] == 1 and s["seed_sd"] is None
    with pytest.raises(ValueError, match="same test pairs"):
        rc.slope_per_doubling([(100, {0: [1, 0]}), (200, {0: [1, 1, 0]})])


def test_curve_reading_follows_the_numbers():
    rising = {"n1": 800, "n2": 1600, "acc1": 0.58, "acc2": 0.60, "slope": 0.02, "ci95": [0.005, 0.05],
              "seeds": 1, "seed_sd": None, "doublings": 1.0}
    line = rc.curve_reading(rising, target=0.65)
    # (0.65 - 0.60) / 0.02 = 2.5 doublings -> 1600 * 2^2.5 = 9,051 pairs; at 0.05: 1 -> 3,200
    assert "+2.0 points per doubling" in line and "+0.5 to +5.0" in line and "still rising" in line
    assert "2.5 more doublings, about 9,051 pairs" in line and "1.0 doublings, 3,200 pairs" in line
    flat = {**rising, "slope": -0.01, "ci95": [-0.04, 0.02], "seeds": 3, "seed_sd": 0.015}
    line = rc.curve_reading(flat, target=0.65)
    assert "flat within the noise" in line and "do not reach 0.65" in line and "sd over 3 seeds 1.5" in line
    assert "already at or above 0.55" in rc.curve_reading(rising, target=0.55)


def test_paired_difference_hand_worked():
    # d = (0, 1, 0, 0): +0.25; the bootstrap CI is that of the slope test above (same draws)
    assert rc.paired_difference([1, 1, 0, 0], [1, 0, 0, 0], n_boot=500) == (0.25, 0.0, 0.75)
    # the same change on every pair: no spread
    assert rc.paired_difference([0, 0, 0], [1, 1, 1], n_boot=200) == (-1.0, -1.0, -1.0)
    with pytest.raises(ValueError, match="3 and 2"):
        rc.paired_difference([1, 0, 1], [1, 0])


def _row(name, seed, n, correct, overrides=None):
    acc = correct.count("1") / len(correct)
    return {"name": name, "seed": seed, "n_pairs": n, "overrides": overrides or {}, "steps": -(-n // 8),
            "trainable_params": 21_235_776, "setup_minutes": 0.2, "train_minutes": 8.0, "eval_minutes": 1.04,
            "test": {"accuracy": acc, "accuracy_ci95": [acc - 0.05, acc + 0.05]},
            "train_slice": {"accuracy": 0.7, "n_pairs": min(300, n)}, "test_correct": correct}


def test_markdown_table_rows_and_paired_column():
    rows = [_row("curve-100", 0, 100, "1000"), _row("curve-100", 1, 100, "1100"), _row("curve-all", 0, 1593, "1000"),
            _row("lora", 0, 1593, "1100", {"freeze_layers": 0, "lora_r": 16, "lora_alpha": 32.0})]
    lines = rc.markdown_table(rows, n_boot=500).splitlines()
    assert len(lines) == 2 + 4 + 1 and len({line.count("|") for line in lines}) == 1
    assert lines[2] == ("| curve-100 | 0 | 100 | recipe | 13 | 21.2M | 0.2 | 8.0 | 1.0 | 0.250 (0.200-0.300) |  "
                        "| 0.700 (100) |")
    # lora vs curve-all seed 0 on the same 4 pairs: d = (0, 1, 0, 0)
    assert lines[5] == ("| lora | 0 | 1,593 | freeze_layers 0, lora_r 16, lora_alpha 32 | 200 | 21.2M | 0.2 | 8.0 | "
                        "1.0 | 0.500 (0.450-0.550) | +25.0 points (+0.0 to +75.0) | 0.700 (300) |")
    # seeds 0 and 1 at 100 pairs: 0.25 and 0.5, mean 0.375, sample sd 0.25 / sqrt(2) = 0.177
    assert lines[6] == "| curve, mean of 2 seeds | | 100 | | | | | | | 0.375 (sd 0.177) | | |"


def test_results_file_errors_name_the_line(tmp_path):
    path = tmp_path / "results.jsonl"
    rc.append_result(path, {"name": "curve-100", "seed": 0, "settings": {}})
    path.write_text(path.read_text() + '{"name": "curve-200", "se\n')
    with pytest.raises(SystemExit, match=r"results.jsonl:2: not a JSON line"):
        rc.read_results(path)


def _hh_file(path: Path, n: int, offset: int = 0) -> str:
    rows = []
    for i in range(offset, offset + n):
        prompt = f"\n\nHuman: How do I do thing {i}?\n\nAssistant:"
        rows.append({"chosen": prompt + f" I cannot help with thing {i}.",
                     "rejected": prompt + " Sure, " + "here is how " * (1 + i % 3)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_tiny_end_to_end_then_resume_skips(tmp_path, capsys):
    train, test = _hh_file(tmp_path / "train.jsonl", 16), _hh_file(tmp_path / "test.jsonl", 8, offset=100)
    out = tmp_path / "out"
    argv = ["--tiny", "--out", str(out), "--train", train, "--test", test, "--curve", "8,all",
            "--runs", "lora,curve-8", "--n-boot", "200"]
    rc.main(argv)
    results = out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["name"], r["seed"], r["n_pairs"], r["steps"]) for r in rows] == [("curve-8", 0, 8, 1), ("lora", 0, 16, 2)]
    curve, lora = rows
    assert (curve["settings"]["freeze_layers"], curve["settings"]["lora_r"], curve["settings"]["max_length"]) == (24, 0, 128)
    assert (lora["settings"]["freeze_layers"], lora["settings"]["lora_r"], lora["settings"]["lora_alpha"]) == (0, 16, 32.0)
    assert curve["settings"]["lr"] == lora["settings"]["lr"] == 5e-5 and curve["settings"]["tiny"] is True
    for r in rows:
        correct = [c == "1" for c in r["test_correct"]]
        assert len(correct) == r["test"]["n_pairs"] == 8
        assert r["test"]["accuracy"] == pytest.approx(sum(correct) / 8)
        lo, hi = r["test"]["accuracy_ci95"]
        assert lo <= r["test"]["accuracy"] <= hi
        assert r["train_slice"]["n_pairs"] == r["n_pairs"]  # min(300, pairs trained on)
        assert r["train_minutes"] > 0 and r["eval_minutes"] > 0 and r["pairs_used"] == r["n_pairs"]
    # LoRA: adapters + the score head; recipe: the last (only) layers are frozen, head + final norm train
    assert lora["trainable_params"] > curve["trainable_params"] > 0
    first = capsys.readouterr().out
    table = [line for line in first.splitlines() if line.startswith("|")]
    assert len(table) == 4 and len({line.count("|") for line in table}) == 1
    assert "PL vs BT: not applicable" in first

    before = results.read_bytes()
    rc.main(argv)  # resume: both recorded, nothing trains, the file is unchanged
    again = capsys.readouterr().out
    assert results.read_bytes() == before
    assert again.count("done, skipped") == 2 and "training on" not in again
    assert [line for line in again.splitlines() if line.startswith("|")] == table

    with pytest.raises(SystemExit, match=r"lora seed 0 was recorded with other settings \(lora_r: 16 -> 8\)"):
        rc.main(argv + ["--lora-r", "8"])


def test_dry_run_prints_the_estimates_and_trains_nothing(tmp_path, capsys):
    train, test = _hh_file(tmp_path / "train.jsonl", 16), _hh_file(tmp_path / "test.jsonl", 8, offset=100)
    out = tmp_path / "out"
    rc.main(["--dry-run", "--out", str(out), "--train", train, "--test", test, "--curve", "8,all",
             "--runs", "curve-8,lora"])
    printed = capsys.readouterr().out
    # the recipe's settings (freeze 24, max_length 128, 1 epoch); eval = 8 test + min(300, n) train pairs
    curve, lora = rc.estimate_minutes(8, 1, 128, 24, False, 16), rc.estimate_minutes(16, 1, 128, 0, True, 24)
    assert f"curve-8         0      8      1{curve:>10.1f}  to run" in printed
    assert f"lora            0     16      2{lora:>10.1f}  to run" in printed
    assert f"expected: {curve + lora:.1f} min for 2 runs" in printed
    assert "Plackett-Luce vs Bradley-Terry: not run, HH holds pairs only" in printed
    assert not out.exists()


def test_log_linear_fit_hand_worked():
    # accuracies 0.25, 0.5, 0.75 at 100, 200, 400 pairs: exactly +0.25 per doubling, no residual
    s = rc.log_linear_fit([(400, {0: [1, 1, 1, 0]}), (100, {0: [1, 0, 0, 0]}), (200, {0: [1, 1, 0, 0]})],
                          n_boot=2000)
    assert s["pairs"] == [100, 200, 400] and s["accuracy"] == [0.25, 0.5, 0.75]
    assert s["slope"] == pytest.approx(0.25) and s["residual_sd"] == pytest.approx(0.0, abs=1e-12)
    assert s["intercept"] == pytest.approx(0.25 - 0.25 * math.log2(100))
    # with x centred at -1, 0, 1 the slope is (acc_400 - acc_100) / 2 = mean(d) / 2, d = (0, 1, 1, 0):
    # Binomial(4, 1/2) / 8, whose 2.5% / 97.5% quantiles are 0 and 0.5 (each end has mass 1/16)
    assert s["ci95"] == [pytest.approx(0.0, abs=1e-12), pytest.approx(0.5)]
    # the line reaches 1.0 three doublings past 100 pairs: 800 pairs
    line = rc.fit_reading(s, target=1.0)
    assert "+25.0 points per doubling" in line and "reaches 1.00 at about 800 pairs" in line
    assert "flat within the noise" in line  # the CI's lower end is 0
    # the CI's upper slope (0.5) pivots at the centroid (200 pairs, 0.5): 1.0 is one doubling on
    assert "(400 at the CI's upper slope)" in line
    assert "at or above 0.70" in rc.fit_reading(s, target=0.70)
    # seeds are averaged per point; a flat curve never claims a number of pairs
    flat = rc.log_linear_fit([(100, {0: [1, 0], 1: [0, 1]}), (200, {0: [1, 0]}), (400, {0: [0, 1]})], n_boot=200)
    assert flat["slope"] == pytest.approx(0.0, abs=1e-12) and "reaches" not in rc.fit_reading(flat, target=0.9)
    with pytest.raises(ValueError, match="same test pairs"):
        rc.log_linear_fit([(100, {0: [1, 0]}), (200, {0: [1, 1, 0]})])
