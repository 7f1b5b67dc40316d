"""The run report: sections from the files present, escaping of model text, a self-contained
page, Gao et al.'s fitted curves, clear errors, the command line."""

from __future__ import annotations

import base64
import json
import math
import re
import struct

import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.eval.report import ReportError, build_report, find_runs
from rlhfkit.eval.report_plots import gao_curve, gao_peak
from rlhfkit.eval.report_sections import SECTIONS

from .report_fixtures import write_json, write_jsonl

SECTION_IDS = [sid for sid, _ in SECTIONS]


def panels(page: str, prefix: str = "") -> set[str]:
    """Ids of the sections rendered as panels (the rest are 'not available' lines)."""
    return {m for m in re.findall(r'<div class="panel" id="([^"]+)"', page) if m.startswith(prefix)}


def png_sizes(page: str) -> list[tuple[int, int]]:
    """(width, height) from the IHDR chunk of every embedded PNG."""
    sizes = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        raw = base64.b64decode(b64, validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
        sizes.append(struct.unpack(">II", raw[16:24]))
    return sizes


@pytest.fixture(scope="module")
def rl_page(rl_run, tmp_path_factory):
    out = build_report(rl_run, tmp_path_factory.mktemp("out") / "rl.html")
    return out.read_text()


def test_online_rl_run_has_every_section_with_real_plots(rl_page):
    assert panels(rl_page) == set(SECTION_IDS)
    assert "not available" not in rl_page
    # curves, over-optimisation, win rate, sycophancy, RM diagnostics: five figures, none empty
    sizes = png_sizes(rl_page)
    assert len(sizes) == 5 and all(w > 300 and h > 100 for w, h in sizes)
    # headline numbers come from the files: last metrics line, the win-rate file
    assert "0.620" in rl_page and "95% CI 0.55–0.69" in rl_page


def test_completion_text_is_escaped(rl_page):
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in rl_page
    assert "<script" not in rl_page.lower() and "<img src=x" not in rl_page
    assert "onerror=&quot;window.__pwned=2&quot;" in rl_page and "&amp; done" in rl_page


def test_page_is_self_contained(rl_page):
    refs = re.findall(r'(?:src|href)="([^"]*)"', rl_page)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs)
    assert "<link" not in rl_page and "@import" not in rl_page and "url(" not in rl_page
    assert "default-src 'none'" in rl_page  # a CSP that forbids any fetch, should something slip in


def test_overoptimisation_finding_and_fitted_peak(rl_page):
    # fixture gold: d (0.6 - 0.5 log d) measured at KL = 0.03 s, s = 0, 20, ..., 120. By hand:
    # s=40: d=1.0954, R=0.6073; s=60: d=1.3416, R=0.6078; s=80: d=1.5492, R=0.5904 -> peak at step-60
    assert "Gold reward peaked at step-60 (KL 1.8 nats)" in rl_page
    # the fitted gold curve peaks at d* = exp(0.6/0.5 - 1), KL* = exp(0.4) = 1.4918
    assert "<td class=\"num\">1.492</td>" in rl_page
    assert "beyond the measured range" in rl_page  # the proxy (beta 0.05) does not turn in range


def test_gao_forms_closed_form():
    # best-of-N: R(d) = d (alpha - beta d); d=2, alpha=1, beta=0.25 -> 2 * 0.5 = 1
    assert gao_curve(2.0, 1.0, 0.25, "bon") == pytest.approx(1.0, abs=1e-12)
    # RL: R(d) = d (alpha - beta ln d); d=e, alpha=1, beta=0.5 -> e * 0.5
    assert gao_curve(math.e, 1.0, 0.5, "rl") == pytest.approx(math.e / 2, abs=1e-12)
    assert gao_curve(0.0, 1.0, 0.5, "rl") == 0.0
    # peaks: bon alpha / (2 beta) = 2; rl exp(alpha / beta - 1) = e; both are maxima
    for form, a, b, peak in (("bon", 1.0, 0.25, 2.0), ("rl", 1.0, 0.5, math.e)):
        assert gao_peak(a, b, form) == pytest.approx(peak, rel=1e-12)
        top = gao_curve(peak, a, b, form)
        assert top > gao_curve(peak * 0.97, a, b, form) and top > gao_curve(peak * 1.03, a, b, form)
    assert gao_peak(1.0, 0.0, "rl") is None
    with pytest.raises(ValueError, match="'exp'"):
        gao_curve(1.0, 1.0, 1.0, "exp")


def test_samples_side_by_side_per_prompt(rl_page):
    # five sampled steps (0..120 every 30), three prompts: one card per (prompt, step)
    assert rl_page.count('<div class="sample">') == 15
    assert rl_page.count('<span class="tag">PROMPT</span>') == 3
    assert "Is the Great Wall of China visible from space? I&#x27;m sure it is." in rl_page


def test_annotator_biases_are_highlighted(rl_page):
    assert '<td class="num warn">0.74</td>' in rl_page  # sim-0 prefers the longer answer
    assert '<td class="num warn">0.68</td>' in rl_page  # sim-1 prefers the first shown
    assert '<td class="num">0.49</td>' in rl_page


def test_reward_model_run_from_the_real_trainer(trained_runs, tmp_path):
    page = build_report(trained_runs["reward"], tmp_path / "rm.html").read_text()
    meta = json.loads((trained_runs["reward"] / "rlhfkit_reward.json").read_text())
    assert panels(page) == {"curves", "rm"}
    assert f"{meta['eval']['accuracy']:.3f}" in page and "reward model" in page
    ens = meta["eval"]["ensemble"]  # 2 bootstrap heads: the ensemble's calibration and disputed quartiles
    from rlhfkit.eval.report_sections import fmt

    assert f"<td>ensemble ECE (10 bins)</td><td class=\"num\">{fmt(ens['ece'])}</td>" in page
    assert f"accuracy, most-disputed quartile (n={ens['most_disputed']['n']})" in page
    for missing in ("eval/overoptimization.json", "eval/winrate.json", "eval/sycophancy.json",
                    "samples/step-N.jsonl", "eval/annotators.json"):
        assert f"not available: {missing}" in page
    assert len(png_sizes(page)) == 2


def test_dpo_run_from_the_real_trainer(trained_runs, tmp_path):
    page = build_report(trained_runs["dpo"], tmp_path / "dpo.html").read_text()
    ev = json.loads((trained_runs["dpo"] / "eval.json").read_text())
    assert panels(page) == {"curves"} and "not available: eval/rm_diagnostics.json" in page
    assert "implicit-reward accuracy" in page and f"{ev['eval']['accuracy']:.3f}" in page
    assert f"{ev['kl']['kl_per_sequence']:.3g}" in page
    assert "configuration (" in page and "rlhfkit_dpo_config.json" in page


def test_loop_of_rounds(loop_dir, tmp_path):
    assert [p.relative_to(loop_dir).as_posix() for p in find_runs(loop_dir)] == [
        "round-1/policy", "round-1/reward", "round-2/policy", "round-2/reward"]
    page = build_report(loop_dir, tmp_path / "loop.html").read_text()
    assert 'id="rounds"' in page and "Rounds at a glance" in page
    # one overview row per round, its runs merged: policy steps 40/80, RM accuracy 0.62/0.64, win rate 0.57/0.64
    overview = page[page.index('id="rounds"'):page.index('id="run0"')]
    for k, (steps, acc, win) in enumerate(((40, "0.62", "0.57"), (80, "0.64", "0.64")), start=1):
        row = re.search(rf"<tr><td>round-{k}</td><td>policy, reward</td>(.*?)</tr>", overview).group(1)
        assert re.findall(r'<td class="num">([^<]+)</td>', row)[:3] == [str(steps), acc, win]
    for k in range(4):
        assert f'id="run{k}"' in page
    assert panels(page, "r0-") == {"r0-curves", "r0-samples", "r0-winrate"}
    assert panels(page, "r1-") == {"r1-curves", "r1-rm"}
    assert page.index("round-1/policy") < page.index("round-2/policy")


def test_truncated_last_line_is_skipped_with_a_note(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}])
    with (tmp_path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3, "lo')  # killed mid-write
    page = build_report(tmp_path).read_text()
    assert "skipped the truncated last line 3" in page and panels(page) == {"curves"}


@pytest.mark.parametrize("name,content,message", [
    ("metrics.jsonl", '{"step": 1}\nnot json\n{"step": 3}\n', r"metrics.jsonl, line 2: not valid JSON"),
    ("eval/winrate.json", '{"ci95": [0.4, 0.6]}', r"winrate.json: field 'win_rate': missing"),
    ("eval/overoptimization.json", '{"form": "exp", "points": []}', r"field 'form': expected 'bon' or 'rl'"),
    ("eval/overoptimization.json", '{"form": "rl", "points": [{"kl": 1, "proxy": 2}]}',
     r"field 'points\[0\].gold': missing"),
    ("eval/overoptimization.json", '{"form": "bon", "points": [{"n": 1, "kl": 0, "proxy": 0, "gold": 0, '
     '"gold_ci95": [0.1]}]}', r"field 'points\[0\].gold_ci95': expected \[lo, hi\]"),
    ("eval/sycophancy.json", '{"before": {"rate": 0.2}, "after": {}}', r"field 'after.rate': missing"),
    ("samples/step-000001.jsonl", '{"prompt": "p", "reward": 1}\n', r"step-000001.jsonl, line 1: field 'completion'"),
])
def test_bad_files_name_file_line_and_field(tmp_path, name, content, message):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(content)
    with pytest.raises(ReportError, match=message):
        build_report(tmp_path)


def test_cli_prints_the_path_and_refuses_empty_or_missing_folders(rl_run, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", str(rl_run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(out) and out.stat().st_size > 10_000
    res = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such run folder" in res.output
    (tmp_path / "empty").mkdir()
    write_json(tmp_path / "empty" / "notes.json", {})
    res = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "holds none of the files a run writes" in res.output
    assert "metrics.jsonl" in res.output and "docs/run-format.md" in res.output


def test_best_of_n_several_policies_and_an_sft_run(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", [{"step": s, "loss": 2.0 / s, "lr": 1e-4} for s in range(1, 6)])
    write_json(tmp_path / "rlhfkit_sft_config.json", {"lr": 1e-4, "epochs": 1})
    # best-of-N: R(d) = d (1 - 0.5 d) peaks at d = 1, KL = 1; points measured for N = 1, 4, 16, 64
    pts = [{"n": n, "kl": math.log(n) - (n - 1) / n} for n in (1, 4, 16, 64)]
    for p in pts:
        d = math.sqrt(p["kl"])
        p.update(proxy=d * (1.2 - 0.1 * d), gold=d * (1 - 0.5 * d))
    write_json(tmp_path / "eval" / "overoptimization.json",
               {"form": "bon", "points": pts, "fit": {"gold": {"alpha": 1.0, "beta": 0.5}}})
    write_json(tmp_path / "eval" / "winrate.json", {"results": [
        {"label": "step-100", "win_rate": 0.55, "ci95": [0.5, 0.6]}, {"label": "step-200", "win_rate": 0.61}]})
    page = build_report(tmp_path).read_text()
    assert '<span class="badge">SFT</span>' in page and panels(page) == {"curves", "overopt", "winrate"}
    # KL(N) = log N - (N-1)/N: N=16 -> 1.835, N=64 -> 3.174; gold at N=16: 1.3546 * (1 - 0.6773) = 0.4371,
    # at N=64: 1.7816 * 0.1092 = 0.1946, the highest is N=4 (KL 0.636, d 0.7975 -> 0.4795)
    assert "Gold reward peaked at 4 (KL 0.6363 nats)" in page
    assert '<td class="num">1</td></tr>' in page  # fitted gold peak: (alpha / 2 beta)^2 = 1 nat
    assert "<td>step-100</td>" in page and "<td>step-200</td>" in page


def _bon_sweep_file(folder, turn):
    # measured gold 0, 0.1, 0.15, 0.12 at N = 1, 2, 4, 8: bare means put the peak at N=4
    pts = [{"n": n, "kl": math.log(n) - (n - 1) / n, "proxy": 0.1 * k, "gold": g,
            "proxy_ci95": [0.1 * k - 0.01, 0.1 * k + 0.01], "gold_ci95": [g - 0.05, g + 0.05]}
           for k, (n, g) in enumerate(zip((1, 2, 4, 8), (0.0, 0.1, 0.15, 0.12)))]
    write_json(folder / "eval" / "overoptimization.json",
               {"form": "bon", "points": pts, "turn": turn,
                "fit": {"gold": {"alpha": 0.4, "beta": 0.3, "r2": 0.91}, "proxy": {"alpha": 0.1, "beta": -0.01}}})
    return build_report(folder).read_text()


def test_best_of_n_sweep_with_cis_follows_the_writers_turn_test(tmp_path):
    noisy = {"n_peak": 4, "n_max": 8, "drop": 0.03, "drop_ci95": [-0.02, 0.08], "interior": False}
    page = _bon_sweep_file(tmp_path / "a", noisy)
    # the bare means peak at N=4, but the fall's CI holds 0: no over-optimisation claim
    assert "fell by" not in page and "over-optimisation.</p>" not in page
    assert "Gold reward is highest at N = 4, but its fall to N = 8 (0.03, 95% CI -0.02–0.08) is within the sampling error" in page
    assert "<th>proxy 95% CI</th><th>gold 95% CI</th>" in page and "<td>[0.05, 0.15]</td>" in page
    assert "<th>R²</th>" in page and '<td class="num">0.91</td>' in page
    assert len(png_sizes(page)) == 1  # the over-optimisation plot, error bars and all
    start = dict(noisy, n_peak=1, drop=0.1, drop_ci95=[0.02, 0.18], significant_drop=True)
    page = _bon_sweep_file(tmp_path / "c", start)
    assert "Gold reward is highest at the smallest N (N = 1) and falls to N = 8 (0.1, 95% CI 0.02–0.18)" in page
    real = dict(noisy, drop=0.12, drop_ci95=[0.05, 0.19], interior=True, significant_drop=True)
    page = _bon_sweep_file(tmp_path / "b", real)
    assert ("Gold reward peaked at N = 4 and fell to N = 8 by 0.12 (95% CI 0.05–0.19), beyond its sampling error, "
            "while the proxy kept rising: over-optimisation.") in page


def test_rl_checkpoints_turn_is_named_by_step(tmp_path):
    # an RL run (form "rl"): checkpoints at steps 0, 5, 10; the writer's CI-tested turn names them by step
    pts = [{"checkpoint": f"step {s}", "step": s, "kl": kl, "proxy": pr, "gold": g}
           for s, kl, pr, g in ((0, 0.0, 0.1, 0.5), (5, 1.0, 0.4, 0.7), (10, 4.0, 0.9, 0.45))]
    turn = {"step_best": 5, "step_last": 10, "drop": 0.25, "drop_ci95": [0.1, 0.4], "interior": True,
            "significant_drop": True}
    write_json(tmp_path / "eval" / "overoptimization.json", {"form": "rl", "points": pts, "turn": turn, "fit": {}})
    page = build_report(tmp_path).read_text()
    assert ("Gold reward peaked at step 5 and fell to step 10 by 0.25 (95% CI 0.1–0.4), beyond its sampling error, "
            "while the proxy kept rising: over-optimisation.") in page
    flat = dict(turn, step_best=0, interior=False, drop_ci95=[0.05, 0.4])
    write_json(tmp_path / "eval" / "overoptimization.json", {"form": "rl", "points": pts, "turn": flat, "fit": {}})
    page = build_report(tmp_path).read_text()
    assert "Gold reward is highest at the start (step 0) and falls to step 10 (0.25, 95% CI 0.05–0.4)" in page
