"""Admin statistics of a project: progress, per-annotator work, agreement, gold, biases, weights.

Every judgement is reduced to *pair labels*: for each pair of responses i < j that it orders,
"lo" (i preferred), "hi" (j preferred), "tie", or "both_bad" (pairwise only). A unit is
(item, i, j). Raw agreement, Fleiss' and Cohen's kappa and Krippendorff's alpha (nominal on
the four labels; ordinal on "i better > no preference > j better") are computed over these
units for both modes, so a ranking project and a pairwise project report comparable numbers.
For rankings the units are the implied pairwise preferences: a response everyone ranks last
agrees with every annotator, however they tie the others (alpha on tier numbers called that
disagreement). Ranking projects also get Kendall's tau-b between annotators' rankings.

Reliability weight per annotator: acc is the posterior mean of agreeing (Beta(3, 1) prior,
i.e. 0.75 before any evidence) over their strict pair labels compared with the leave-one-out
majority of the other annotators on the same unit and with gold answers; weight = 2 acc - 1,
so a coin-flipper tends to 0, a perfect annotator to 1 and a newcomer starts at 0.5. It is the
Annotation.weight written by `rlhfkit feedback export`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rlhfkit.feedback import agreement
from rlhfkit.feedback.models import Annotator, Assignment, Item, Judgement, Project

PAIR_LABELS = ("lo", "hi", "tie", "both_bad")
PRIOR_AGREE, PRIOR_DISAGREE = 3.0, 1.0


def pair_labels(j: dict) -> dict[tuple[int, int], str]:
    """{(i, j): label} with i < j for every pair a judgement speaks about."""
    if j["kind"] == "ranking":
        tier_of = {r: t for t, tier in enumerate(j["tiers"]) for r in tier}
        out = {}
        for a, b in combinations(sorted(tier_of), 2):
            ta, tb = tier_of[a], tier_of[b]
            out[(a, b)] = "tie" if ta == tb else ("lo" if ta < tb else "hi")
        return out
    if j["kind"] == "pairwise":
        a, b, choice = j["a"], j["b"], j["choice"]
        if choice in ("tie", "both_bad"):
            label = choice
        else:
            winner = a if choice == "a" else b
            label = "lo" if winner == min(a, b) else "hi"
        return {(min(a, b), max(a, b)): label}
    return {}


def _first_position_credit(j: dict, shown: list[int]) -> tuple[float, float] | None:
    """(credit the first-shown response got for being best, chance level) or None."""
    if j["kind"] == "ranking":
        top = j["tiers"][0]
        return (1.0 / len(top) if shown[0] in top else 0.0), 1.0 / len(shown)
    if j["kind"] == "pairwise" and j["choice"] in ("a", "b"):
        return (1.0 if j["choice"] == "a" else 0.0), 0.5  # a is always the first shown
    return None


def _gold_score(j: dict, gold: dict) -> float | None:
    gl, jl = pair_labels(gold), pair_labels(j)
    keys = [k for k in gl if k in jl]
    return float(np.mean([gl[k] == jl[k] for k in keys])) if keys else None


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def _annotator_rows(rows, items, names, units, skips) -> list[dict[str, Any]]:
    per: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for j in rows:
        d = per[j.annotator_id]
        d["n"].append(1)
        d["server_time"].append(j.server_time_s)
        if j.time_spent_s is not None:
            d["client_time"].append(j.time_spent_s)
        item = items[j.item_id]
        if j.is_gold and item.gold_answer:
            score = _gold_score(j.judgement, item.gold_answer)
            if score is not None:
                d["gold"].append(score)
                d["agree"].extend([score])
        credit = _first_position_credit(j.judgement, j.shown_order)
        if credit:
            d["pos"].append(credit[0])
            d["pos_chance"].append(credit[1])
        lengths = [len(r["text"]) for r in item.responses]
        for (a, b), lab in pair_labels(j.judgement).items():
            if lab in ("lo", "hi") and lengths[a] != lengths[b]:
                winner = a if lab == "lo" else b
                d["longer"].append(1.0 if lengths[winner] == max(lengths[a], lengths[b]) else 0.0)
    # leave-one-out majority agreement on non-gold units with at least 3 labels
    for (_item, _pair), labels in units.items():
        if len(labels) < 3:
            continue
        for ann, lab in labels.items():
            others = Counter(v for a, v in labels.items() if a != ann).most_common()
            if lab in ("lo", "hi") and (len(others) == 1 or others[0][1] > others[1][1]):
                per[ann]["agree"].append(1.0 if others[0][0] == lab else 0.0)
    out = []
    for ann_id, name in sorted(names.items(), key=lambda kv: kv[1]):
        d = per.get(ann_id, {})
        if not d and not skips.get(ann_id):
            continue
        agree = d.get("agree", [])
        acc = (sum(agree) + PRIOR_AGREE) / (len(agree) + PRIOR_AGREE + PRIOR_DISAGREE)
        out.append({
            "annotator": name,
            "judgements": len(d.get("n", [])),
            "skips": skips.get(ann_id, 0),
            "median_seconds_per_judgement": statistics.median(d["server_time"]) if d.get("server_time") else None,
            "mean_reported_seconds": _mean(d.get("client_time", [])),
            "gold_judged": len(d.get("gold", [])),
            "gold_accuracy": _mean(d.get("gold", [])),
            "first_position_best_rate": _mean(d.get("pos", [])),
            "first_position_chance": _mean(d.get("pos_chance", [])),
            "longer_preferred_rate": _mean(d.get("longer", [])),
            "agreement_evidence": len(agree),
            "reliability_weight": round(max(0.0, 2 * acc - 1), 4),
        })
    return out


# Pair labels as values of a unit (item, i, j), i < j. Nominal: four categories. Ordinal: the
# preference scale "i better > no preference > j better"; both_bad states no preference
# between the two, so it sits with tie.
NOMINAL_CODE = {"lo": 0, "hi": 1, "tie": 2, "both_bad": 3}
ORDINAL_CODE = {"lo": 0, "tie": 1, "both_bad": 1, "hi": 2}


def _alpha(units, ann_ids, code: dict[str, int], metric: str) -> float | None:
    row = {a: n for n, a in enumerate(ann_ids)}
    keys = [k for k, v in units.items() if len(v) >= 2]  # single-valued units are not pairable
    if not keys:
        return None
    data = np.full((len(ann_ids), len(keys)), np.nan)  # (annotators, units)
    for u, k in enumerate(keys):
        for a, lab in units[k].items():
            data[row[a], u] = code[lab]
    return agreement.krippendorff_alpha(data, metric)


def _kendall(rows, names) -> tuple[float | None, list[dict[str, Any]]]:
    """Mean over annotator pairs of their mean tau-b over the items both ranked."""
    ranks: dict[int, dict[int, list[int]]] = defaultdict(dict)  # item -> annotator -> tier of each response
    for j in rows:
        if not j.is_gold and j.judgement["kind"] == "ranking":
            tier_of = {r: t for t, tier in enumerate(j.judgement["tiers"]) for r in tier}
            ranks[j.item_id][j.annotator_id] = [tier_of[r] for r in range(len(tier_of))]
    per_pair: dict[tuple[int, int], list[float]] = defaultdict(list)
    for by_ann in ranks.values():
        for a, b in combinations(sorted(by_ann), 2):
            tau = agreement.kendall_tau_b(by_ann[a], by_ann[b])
            if tau == tau:  # NaN when one of them tied everything: no order to correlate
                per_pair[(a, b)].append(tau)
    pairs = [{"a": names[a], "b": names[b], "items": len(taus), "tau_b": float(np.mean(taus))}
             for (a, b), taus in sorted(per_pair.items())]
    return (float(np.mean([p["tau_b"] for p in pairs])) if pairs else None), pairs


def _agreement(rows, project: Project, units, names) -> dict[str, Any]:
    """Agreement over (item, i, j) pair units, the same definitions for both project kinds
    (formulae in docs/feedback.md); rankings add Kendall's tau-b between annotators."""
    unit_keys = [k for k, v in units.items() if len(v) >= 2]
    counts = np.array([[Counter(units[k].values())[lab] for lab in PAIR_LABELS] for k in unit_keys]).reshape(-1, 4)
    ann_ids = sorted({a for k in unit_keys for a in units[k]})
    out: dict[str, Any] = {
        "units": len(unit_keys),
        "raw_agreement": agreement.raw_agreement(counts),
        "fleiss_kappa": agreement.fleiss_kappa(counts),
        "krippendorff_alpha_nominal": _alpha(units, ann_ids, NOMINAL_CODE, "nominal"),
        "krippendorff_alpha_ordinal": _alpha(units, ann_ids, ORDINAL_CODE, "ordinal"),
    }
    cohen = []
    for a, b in combinations(ann_ids, 2):
        common = [k for k in unit_keys if a in units[k] and b in units[k]]
        if len(common) >= 2:
            kappa = agreement.cohen_kappa([units[k][a] for k in common], [units[k][b] for k in common])
            cohen.append({"a": names[a], "b": names[b], "units": len(common), "kappa": kappa})
    out["cohen_kappa"] = cohen
    defined = [c["kappa"] for c in cohen if c["kappa"] == c["kappa"]]
    out["cohen_kappa_mean"] = float(np.mean(defined)) if defined else None
    if project.mode == "ranking":
        out["kendall_tau_b"], out["kendall_tau_b_pairs"] = _kendall(rows, names)
    if project.mode in ("rating", "binary"):
        out.update(_per_response_agreement(rows, project.mode))
    return out


def _per_response_agreement(rows, mode: str) -> dict[str, Any]:
    """Ratings and thumbs: a unit is (item, response); Krippendorff's alpha over the values
    (interval and ordinal on the 1-7 scale, nominal on thumbs) and, for thumbs, raw agreement."""
    units: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    for j in rows:
        if not j.is_gold and j.judgement["kind"] == "per_response":
            for x in j.judgement["judgements"]:
                units[(j.item_id, x["response"])][j.annotator_id] = (
                    float(x["score"]) if x["kind"] == "rating" else float(x["thumbs_up"]))
    keys = [k for k, v in units.items() if len(v) >= 2]
    ann_ids = sorted({a for k in keys for a in units[k]})
    row = {a: n for n, a in enumerate(ann_ids)}
    data = np.full((len(ann_ids), len(keys)), np.nan)  # (annotators, units)
    for u, k in enumerate(keys):
        for a, v in units[k].items():
            data[row[a], u] = v
    alpha = (lambda metric: agreement.krippendorff_alpha(data, metric) if keys else None)
    if mode == "rating":
        return {"response_units": len(keys), "krippendorff_alpha_interval_ratings": alpha("interval"),
                "krippendorff_alpha_ordinal_ratings": alpha("ordinal")}
    counts = np.array([[sum(v == 1.0 for v in units[k].values()), sum(v == 0.0 for v in units[k].values())]
                       for k in keys]).reshape(-1, 2)
    return {"response_units": len(keys), "krippendorff_alpha_nominal_thumbs": alpha("nominal"),
            "raw_agreement_thumbs": agreement.raw_agreement(counts) if keys else None}


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def project_stats(s: Session, project: Project) -> dict[str, Any]:
    rows = list(s.scalars(select(Judgement).where(Judgement.project_id == project.id)))
    items = {i.id: i for i in s.scalars(select(Item).where(Item.project_id == project.id))}
    names = dict(s.execute(select(Annotator.id, Annotator.name)).all())
    skips = dict(s.execute(
        select(Assignment.annotator_id, func.count(Assignment.id))
        .where(Assignment.project_id == project.id, Assignment.status == "skipped")
        .group_by(Assignment.annotator_id)
    ).all())
    open_leases = s.scalar(select(func.count(Assignment.id)).where(
        Assignment.project_id == project.id, Assignment.status == "open")) or 0
    per_item = Counter(j.item_id for j in rows if not j.is_gold)
    regular = [i for i in items.values() if not i.is_gold]
    units: dict[tuple[int, tuple[int, int]], dict[int, str]] = defaultdict(dict)
    for j in rows:
        if not j.is_gold:
            for pair, lab in pair_labels(j.judgement).items():
                units[(j.item_id, pair)][j.annotator_id] = lab
    progress = {
        "items": len(regular),
        "gold_items": len(items) - len(regular),
        "complete": sum(1 for i in regular if per_item[i.id] >= project.overlap),
        "started": sum(1 for i in regular if 0 < per_item[i.id] < project.overlap),
        "judgements": len(rows),
        "needed": len(regular) * project.overlap,
        "open_leases": open_leases,
        "skips": sum(skips.values()),
    }
    return _nan_to_none({
        "project": {"id": project.id, "name": project.name, "mode": project.mode, "overlap": project.overlap,
                    "gold_rate": project.gold_rate, "daily_cap": project.daily_cap, "order_by": project.order_by,
                    "archived": project.archived, "members_only": project.members_only},
        "progress": progress,
        "annotators": _annotator_rows(rows, items, names, units, skips),
        "agreement": _agreement(rows, project, units, names),
    })


def reliability_weights(s: Session, project: Project) -> dict[str, float]:
    return {r["annotator"]: r["reliability_weight"] for r in project_stats(s, project)["annotators"]}
