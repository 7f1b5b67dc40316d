"""HTML of the run report, section by section (the data comes from ``report.load_runs``).

Every string that came from a file goes through ``esc`` (model text is untrusted: a completion
holding ``<script>`` must show as text); numbers go through ``fmt``. Each section returns its
HTML, or a "not available: FILE" line naming the file it would need.
"""

from __future__ import annotations

import html
import math
from typing import Any

from rlhfkit.eval import report_plots as plots

SECTIONS = [("curves", "Training curves"), ("overopt", "Over-optimisation"), ("winrate", "Win rate"),
            ("sycophancy", "Sycophancy"), ("samples", "Samples by checkpoint"), ("annotators", "Annotators"),
            ("rm", "Reward-model diagnostics")]


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return f"[{fmt(v[0])}, {fmt(v[1])}]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={fmt(x)}" for k, x in v.items())
    return str(v)


def img(png: str, alt: str) -> str:
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{png}">'


def table(headers: list[str], rows: list[list[Any]], warn: set[tuple[int, int]] = frozenset(), cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            classes = " ".join(c for c in ("num" if isinstance(v, (int, float)) else "",
                                           "warn" if (i, j) in warn else "") if c)
            cells.append(f'<td class="{classes}">{esc(fmt(v))}</td>' if classes else f"<td>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def side_by_side(left: str, right: str) -> str:
    return f'<div class="row"><div>{left}</div><div>{right}</div></div>'


def panel(anchor: str, title: str, caption: str, body: str) -> str:
    return (f'<div class="panel" id="{esc(anchor)}"><h3>{esc(title)}</h3>'
            f'<p class="caption">{caption}</p>{body}</div>')


def not_available(anchor: str, title: str, missing: str) -> str:
    return f'<p class="na-line" id="{esc(anchor)}"><b>{esc(title)}</b> — not available: {esc(missing)}</p>'


def _ci(c: Any) -> tuple[float | None, float | None]:
    return (c[0], c[1]) if isinstance(c, (list, tuple)) and len(c) == 2 else (None, None)


def _last(records: list[dict], key: str) -> float | None:
    vals = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return vals[-1] if vals else None


# ------------------------------------------------------------------------------------ sections
def curves(run, a: str) -> str:
    if not run.metrics or not plots.available_panels(run.metrics):
        return not_available(a, "Training curves", run.metrics_name)
    keys = {k for r in run.metrics for k in r}
    cap = "One panel per logged metric, against the optimiser step (long runs: faint raw values, bold moving average). "
    if "reward/mean" in keys or "kl/mean" in keys:
        cap += ("Look for <b>reward rising while KL stays moderate</b>, entropy that does not collapse to 0, and "
                "response length that does not grow without bound (a sign the reward pays for length).")
    elif "rewards/margins" in keys:
        cap += ("Look for <b>the margin growing because the chosen answers gain</b>, not only because the rejected "
                "ones lose probability, and for accuracy that leaves 0.5 early.")
    elif "eval_accuracy" in keys or "accuracy" in keys:
        cap += ("Look for <b>held-out accuracy rising with the training accuracy</b>; a widening gap between them "
                "is overfitting.")
    else:
        cap += "Look for a loss that falls smoothly; spikes usually follow learning-rate warm-up or bad batches."
    return panel(a, "Training curves", cap + f" Source: {esc(run.metrics_name)}, {len(run.metrics)} records.",
                 img(plots.training_curves(run.metrics), "training curves"))


def overopt(run, a: str) -> str:
    o = run.evals.get("overoptimization.json")
    if o is None:
        return not_available(a, "Over-optimisation", "eval/overoptimization.json")
    pts, fit = o["points"], o.get("fit") or {}
    cap = ("Proxy reward (the reward model being optimised) and gold reward (the judge we trust) against "
           "d = √KL from the reference, with Gao et al. (2022)'s fitted forms. <b>Gold reward peaking while "
           "the proxy keeps rising is over-optimisation</b>: beyond the peak the policy exploits the proxy.")
    finding = ""
    label = lambda p: p.get("checkpoint", p.get("n", "?"))  # noqa: E731
    turn = o.get("turn")
    if isinstance(turn, dict) and "interior" in turn:  # the writer tested the fall against its CI
        lo, hi = _ci(turn.get("drop_ci95"))
        ci = f", 95% CI {fmt(lo)}–{fmt(hi)}" if lo is not None else ""
        # best-of-N sweeps name the peak by N; RL runs by checkpoint step
        key, best_key, last_key, unit = (("n", "n_peak", "n_max", "N = {}") if "n_peak" in turn
                                         else ("step", "step_best", "step_last", "step {}"))
        peak, last = (unit.format(esc(turn.get(k))) for k in (best_key, last_key))
        if turn["interior"]:
            by_key = {p.get(key): p for p in pts}
            rising = (turn.get(best_key) in by_key and turn.get(last_key) in by_key
                      and by_key[turn[last_key]]["proxy"] > by_key[turn[best_key]]["proxy"])
            finding = (f'<p class="finding">Gold reward peaked at {peak} and fell to {last} by '
                       f'{fmt(turn.get("drop"))} ({esc(ci[2:])}), beyond its sampling error'
                       + (", while the proxy kept rising" if rising else "") + ": over-optimisation.</p>")
        elif turn.get("significant_drop"):
            start = "the smallest N" if key == "n" else "the start"
            finding = (f'<p class="finding">Gold reward is highest at {start} ({peak}) and falls to {last} '
                       f'({fmt(turn.get("drop"))}{esc(ci)}): the proxy misleads from the first step.</p>')
        elif turn.get(best_key) != turn.get(last_key):
            finding = (f'<p class="finding ok">Gold reward is highest at {peak}, but its fall to {last} '
                       f'({fmt(turn.get("drop"))}{esc(ci)}) is within the sampling error: no clear turn.</p>')
        else:
            finding = '<p class="finding ok">Gold reward is still at its highest at the largest KL: no turn yet.</p>'
    elif len(pts) >= 3:
        by_kl = sorted(pts, key=lambda p: p["kl"])
        best = max(range(len(by_kl)), key=lambda i: by_kl[i]["gold"])
        if best < len(by_kl) - 1 and by_kl[-1]["proxy"] >= by_kl[best]["proxy"]:
            p = by_kl[best]
            finding = (f'<p class="finding">Gold reward peaked at {esc(label(p))} (KL {fmt(p["kl"])} nats) '
                       f'and fell to {fmt(by_kl[-1]["gold"])} while the proxy rose to {fmt(by_kl[-1]["proxy"])}: '
                       "over-optimisation.</p>")
        else:
            finding = '<p class="finding ok">Gold reward is still at its highest at the largest KL: no turn yet.</p>'
    with_ci = any("gold_ci95" in p or "proxy_ci95" in p for p in pts)
    rows = [[label(p), p["kl"], math.sqrt(max(0.0, p["kl"])), p["proxy"], p["gold"]]
            + ([fmt(list(_ci(p.get("proxy_ci95")))), fmt(list(_ci(p.get("gold_ci95"))))] if with_ci else [])
            for p in pts]
    kl_max = max(p["kl"] for p in pts) if pts else 0.0
    coef = []
    for k, v in fit.items():
        d = plots.gao_peak(v["alpha"], v["beta"], o["form"])
        peak = ("never turns" if d is None else d * d if d * d <= 2 * kl_max
                else f"beyond the measured range (> {fmt(2 * kl_max)})")
        coef.append([k, v["alpha"], v["beta"], v.get("r2"), peak])
    body = (finding + img(plots.overoptimization(pts, o["form"], fit), "over-optimisation plot")
            + (table(["fit", "alpha", "beta", "R²", "KL at the peak"], coef) if coef else "")
            + f"<details><summary>{len(pts)} measured points</summary>"
            + table(["checkpoint / N", "KL (nats)", "√KL", "proxy", "gold"]
                    + (["proxy 95% CI", "gold 95% CI"] if with_ci else []), rows) + "</details>")
    return panel(a, "Over-optimisation", cap, body)


def _winrate_rows(w: dict, prefix: str = "") -> list[tuple]:
    lo, hi = _ci(w.get("ci95"))
    rows = [(f"{prefix}win rate", w["win_rate"], lo, hi, "main")]
    if w.get("lc_win_rate") is not None:
        llo, lhi = _ci(w.get("lc_ci95"))
        rows.append((f"{prefix}length-controlled", w["lc_win_rate"], llo, lhi, "gold"))
    return rows


def winrate_entries(w: dict) -> list[dict]:
    return [dict(r, label=r.get("label", f"#{i + 1}")) for i, r in enumerate(w["results"])] if "results" in w else [w]


def winrate(run, a: str) -> str:
    w = run.evals.get("winrate.json")
    if w is None:
        return not_available(a, "Win rate", "eval/winrate.json")
    entries = winrate_entries(w)
    rows = [r for e in entries for r in _winrate_rows(e, f"{e['label']}: " if "label" in e else "")]
    judge = {e.get("judge") for e in entries if e.get("judge")}
    cap = ("How often the judge prefers the policy's answer over the reference's, with 95% bootstrap CIs; "
           "the dashed line is a tie. The <b>length-controlled</b> rate (AlpacaEval 2) removes the part of the "
           "win explained by answering longer: a large gap between the two means the policy wins by length.")
    info = table(["", "win rate", "95% CI", "length-controlled", "n", "judge"],
                 [[e.get("label", "policy"), e["win_rate"], fmt(e.get("ci95")), e.get("lc_win_rate"), e.get("n"),
                   e.get("judge")] for e in entries])
    return panel(a, "Win rate against the reference", cap + (f" Judge: {esc(', '.join(map(str, judge)))}." if judge else ""),
                 img(plots.forest(rows, 0.5, "win rate"), "win rate forest plot") + info)  # wide table: below


def sycophancy(run, a: str) -> str:
    s = run.evals.get("sycophancy.json")
    if s is None:
        return not_available(a, "Sycophancy", "eval/sycophancy.json")
    rows = [(when, s[when]["rate"], *_ci(s[when].get("ci95")), c) for when, c in (("before", "muted"), ("after", "proxy"))]
    delta = s["after"]["rate"] - s["before"]["rate"]
    cap = ("Share of probe questions on which the policy agrees with a wrong answer or opinion the user "
           "asserted, before and after training. <b>A rise means training taught the policy to flatter</b> "
           "(annotators tend to reward agreement).")
    finding = f'<p class="finding{" ok" if delta <= 0 else ""}">Agreement with the user changed by {delta:+.3f} ' \
              f'({fmt(s["before"]["rate"])} → {fmt(s["after"]["rate"])}).</p>'
    info = table(["", "rate", "95% CI", "n"], [[w, s[w]["rate"], fmt(s[w].get("ci95")), s[w].get("n")] for w in ("before", "after")])
    return panel(a, "Sycophancy probe", cap, finding + side_by_side(img(plots.forest(rows, None, "agreement rate"), "sycophancy"), info))


def _sample_card(step: int, rec: dict | None, show_prompt: bool = False) -> str:
    if rec is None:
        return f'<div class="sample"><div class="head">step {step}</div><div class="missing">not sampled</div></div>'
    pills = "".join(f'<span class="pill {c}">{esc(k)} {esc(fmt(rec[key]))}</span> '
                    for key, k, c in (("reward", "reward", "proxy"), ("gold_reward", "gold", "gold")) if key in rec)
    text = rec["completion"]
    body = esc(text) if len(text) <= 700 else (esc(text[:700]) + "…<details><summary>show all "
                                                f"{len(text)} characters</summary>{esc(text)}</details>")
    prompt = f'<div class="missing">{esc(str(rec.get("prompt", ""))[:200])}</div>' if show_prompt else ""
    return (f'<div class="sample"><div class="head"><span>step {step}</span><span>{pills}</span></div>'
            f'{prompt}<div class="text">{body}</div></div>')


def samples(run, a: str, max_steps: int = 5, max_prompts: int = 3) -> str:
    if not run.samples:
        return not_available(a, "Samples by checkpoint", "samples/step-N.jsonl")
    steps = sorted(run.samples)
    if len(steps) > max_steps:  # first, last and evenly spaced between
        steps = sorted({steps[round(i * (len(steps) - 1) / (max_steps - 1))] for i in range(max_steps)})
    by_prompt = {s: {str(r.get("prompt", "")): r for r in run.samples[s]} for s in steps}
    order = list(dict.fromkeys(str(r.get("prompt", "")) for s in steps for r in run.samples[s]))
    shared = [p for p in order if sum(p in by_prompt[s] for s in steps) >= min(2, len(steps))]
    grid = f'<div class="samples" style="grid-template-columns: repeat({len(steps)}, minmax(0, 1fr))">'
    parts = []
    if shared:
        for p in shared[:max_prompts]:
            parts.append(f'<div class="prompt"><span class="tag">PROMPT</span>{esc(p)}</div>' + grid
                         + "".join(_sample_card(s, by_prompt[s].get(p)) for s in steps) + "</div>")
    else:  # different prompts at every step: show the first few of each, with their prompts
        for i in range(max_prompts):
            parts.append(grid + "".join(_sample_card(s, run.samples[s][i] if i < len(run.samples[s]) else None, True)
                                        for s in steps) + "</div>")
    cap = (f"Completions for the same prompt at steps {', '.join(map(str, steps))} (of {len(run.samples)} sampled), "
           "with the reward the policy was trained on and, where measured, the gold reward. "
           "<b>Read them</b>: a rising reward with longer, repetitive or flattering text is reward hacking.")
    return panel(a, "Samples by checkpoint", cap, "".join(parts))


def annotators(run, a: str) -> str:
    s = run.evals.get("annotators.json")
    if s is None:
        return not_available(a, "Annotators", "eval/annotators.json")
    body = []
    agree, pool = s.get("agreement") or {}, s.get("pool") or {}
    summary = {k: v for k, v in {**agree, **pool}.items() if not isinstance(v, (list, dict))}
    if summary:
        body.append(table(["measure", "value"], [[k.replace("_", " "), v] for k, v in summary.items()], cls="kv"))
    rows = s.get("annotators") or []
    if rows:
        cols = [c for c in ("annotator", "source", "judgements", "gold_accuracy", "first_position_best_rate",
                            "first_position_chance", "longer_preferred_rate", "reliability_weight", "config")
                if any(c in r for r in rows)]
        cols += [c for c in dict.fromkeys(k for r in rows for k in r) if c not in cols and c not in
                 ("median_seconds_per_judgement", "mean_reported_seconds", "agreement_evidence", "skips")][:3]
        warn = {(i, cols.index("longer_preferred_rate")) for i, r in enumerate(rows)
                if "longer_preferred_rate" in cols and (r.get("longer_preferred_rate") or 0.5) > 0.6}
        warn |= {(i, cols.index("first_position_best_rate")) for i, r in enumerate(rows)
                 if "first_position_best_rate" in cols and r.get("first_position_best_rate") is not None
                 and r["first_position_best_rate"] > (r.get("first_position_chance") or 0.5) + 0.1}
        body.append(table([c.replace("_", " ") for c in cols], [[r.get(c) for c in cols] for r in rows], warn))
    pairs = agree.get("cohen_kappa") or []
    if pairs:
        body.append(f"<details><summary>Cohen's kappa per annotator pair ({len(pairs)})</summary>"
                    + table(["a", "b", "units", "kappa"], [[p.get("a"), p.get("b"), p.get("units"), p.get("kappa")]
                                                          for p in pairs]) + "</details>")
    cap = ("Agreement between annotators (kappa: 0 is chance, 1 is perfect; human pairwise preference labels "
           "agree about 63-73% of the time) and each annotator's biases. <b>Highlighted</b>: preferring the "
           "longer answer more than 60% of the time, or the first-shown one 10 points above chance — biases a "
           "reward model trained on these labels will learn.")
    return panel(a, "Annotators", cap, "".join(body) or '<p class="na-line">the file holds no tables</p>')


def rm(run, a: str) -> str:
    r = run.rm
    if r is None:
        return not_available(a, "Reward-model diagnostics", "eval/rm_diagnostics.json or rlhfkit_reward.json with eval")
    lo, hi = _ci(r.get("accuracy_ci95"))
    rows = [("accuracy (all pairs)", r["accuracy"], lo, hi, "main")]
    lb = r.get("length_bias") or {}
    for key, label in (("chosen_longer", "chosen is longer"), ("chosen_not_longer", "chosen is not longer")):
        if (lb.get(key) or {}).get("accuracy") is not None:
            rows.append((f"{label} (n={lb[key]['n']})", lb[key]["accuracy"], None, None, "second"))
    if (r.get("longer_rejected") or {}).get("accuracy") is not None:
        rows.append((f"longer is rejected (n={r['longer_rejected'].get('n')})", r["longer_rejected"]["accuracy"],
                     None, None, "proxy"))
    if r.get("longer_answer_baseline") is not None:
        rows.append(("baseline: pick the longer", r["longer_answer_baseline"], None, None, "muted"))
    extra = [[k.replace("_", " "), r[k]] for k in ("n_pairs", "ece", "mean_margin", "ties", "score_length_correlation",
                                                    "mean_disagreement", "n_heads") if k in r]
    ens = r.get("ensemble") or {}
    if ens:
        extra.append([f"ensemble ECE ({ens.get('ece_bins')} bins)", ens.get("ece")])
        for key in ("least_disputed", "most_disputed"):
            if ens.get(key):
                extra.append([f"accuracy, {key.replace('_', '-')} quartile (n={ens[key]['n']})", ens[key]["accuracy"]])
        rel = ens.get("by_relative_disagreement") or {}
        for key in ("least_disputed", "most_disputed"):
            if rel.get(key):
                extra.append([f"accuracy, {key.replace('_', '-')} quartile by std/|margin|", rel[key]["accuracy"]])
    cap = ("Held-out pair accuracy (ties count as wrong) with its bootstrap 95% CI, split by whether the chosen "
           "answer is the longer one. <b>Much higher accuracy when the chosen answer is longer, or a score that "
           "correlates with length, means the model partly scores length</b>; ECE near 0 means sigmoid(margin) "
           "is a calibrated probability. For an ensemble, lower accuracy on the most-disputed quartile of pairs "
           f"(by the std of member margins) means its disagreement flags likely errors. Source: {esc(run.rm_file)}.")
    return panel(a, "Reward-model diagnostics", cap,
                 side_by_side(img(plots.forest(rows, 0.5, "pair accuracy"), "reward-model accuracy"),
                              table(["measure", "value"], extra, cls="kv")))


RENDER = {"curves": curves, "overopt": overopt, "winrate": winrate, "sycophancy": sycophancy,
          "samples": samples, "annotators": annotators, "rm": rm}
