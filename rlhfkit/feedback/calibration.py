"""Calibrating simulated annotator pools: agreement with a gold scorer or with human labels.

- ``agreement_with_gold``: the pool labels every unordered response pair of the items once (an
  annotator drawn per pair, a random presentation order) and the labels are compared with the
  gold scorer's preference; a pool tie counts one half; gold ties are skipped and counted.
- ``agreement_with_pairs``: the same against labelled (chosen, rejected) pairs, e.g. the human
  labels of HH test data with a reward model as the pool's gold scorer.
- ``expected_agreement``: the exact expectation of ``agreement_with_gold`` under the label model
  of ``rlhfkit.feedback.simulate`` (no sampling).
- ``default_pool``: ``DEFAULT_POOL`` with one temperature scale solved so that the expected
  agreement with gold is 0.68, the middle of the 63-73% that human annotators reach with each
  other on pairwise labels. Gold scores have no common unit (rule scores, reward-model logits,
  1-10 judge scores), so the temperature has to come from the data; the biases and flip rates
  are fixed, in logit units and probabilities.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from rlhfkit.feedback.simulate import AnnotatorPool, GoldScorer, SimulatedAnnotator, prompt_as_text
from rlhfkit.schema import PreferenceItem, PreferencePair


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


@dataclass
class Agreement:
    """How often pool labels agree with a reference preference; a pool tie counts one half."""

    agreement: float
    n_pairs: int
    n_reference_ties: int  # pairs skipped because the reference has no preference
    per_annotator: dict[str, tuple[float, int]]  # name -> (agreement, pairs)
    ci_low: float = 0.0  # normal-approximation 95% interval over pairs
    ci_high: float = 1.0


def _all_pairs(items: Iterable[PreferenceItem]) -> Iterable[tuple[str, str, str]]:
    for item in items:
        texts = [r.text for r in item.responses]
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                yield item.prompt_text, texts[i], texts[j]


def _agreement(pool: AnnotatorPool, labelled: Iterable[tuple[str, str, str]], reference) -> Agreement:
    total, total_sq, n, ties, per = 0.0, 0.0, 0, 0, {}
    for prompt, x, y in labelled:
        ref = reference(prompt, x, y)  # 1 if x is better, 0 if y, None if no preference
        if ref is None:
            ties += 1
            continue
        annotator, label = pool.label_pair(prompt, x, y)
        agree = label if ref == 1 else 1.0 - label
        total, total_sq, n = total + agree, total_sq + agree * agree, n + 1
        s, c = per.get(annotator.name, (0.0, 0))
        per[annotator.name] = (s + agree, c + 1)
    if n == 0:
        raise ValueError("no pairs with a reference preference to measure agreement on")
    mean = total / n
    half = 1.959964 * math.sqrt(max(total_sq / n - mean * mean, 0.0) / n)
    return Agreement(mean, n, ties, {k: (s / c, c) for k, (s, c) in per.items()},
                     max(0.0, mean - half), min(1.0, mean + half))


def agreement_with_gold(pool: AnnotatorPool, items: Iterable[PreferenceItem], gold: GoldScorer | None = None,
                        tol: float = 1e-12) -> Agreement:
    """Label every unordered response pair of ``items`` once and compare with the gold preference.

    ``gold`` defaults to the first annotator's scorer; pairs whose gold scores differ by <= ``tol``
    are skipped (counted in ``n_reference_ties``).
    """
    gold = gold or pool.annotators[0].gold

    def reference(prompt, x, y):
        d = float(gold(prompt, x)) - float(gold(prompt, y))
        return None if abs(d) <= tol else int(d > 0)

    return _agreement(pool, _all_pairs(items), reference)


def agreement_with_pairs(pool: AnnotatorPool, pairs: Iterable[PreferencePair]) -> Agreement:
    """How often the pool prefers the ``chosen`` answer of labelled pairs (e.g. human HH labels)."""
    rows = ((prompt_as_text(p.prompt), p.chosen, p.rejected) for p in pairs)
    return _agreement(pool, rows, lambda prompt, x, y: 1)


def _pair_features(pool: AnnotatorPool, items: Sequence[PreferenceItem], tol: float) -> list[list[tuple]]:
    """Per gold-preferred pair, per annotator: (gold diff, length diff, agreement diff), best minus worst."""
    ref, rows = pool.annotators[0], []
    for prompt, x, y in _all_pairs(items):
        d = pool.gold_score(ref, prompt, x) - pool.gold_score(ref, prompt, y)
        if abs(d) <= tol:
            continue
        best, worst = (x, y) if d > 0 else (y, x)
        rows.append([(pool.gold_score(a, prompt, best) - pool.gold_score(a, prompt, worst), len(best) - len(worst),
                      float(a.agrees(prompt, best)) - float(a.agrees(prompt, worst)) if a.sycophancy_bias else 0.0)
                     for a in pool.annotators])
    if not rows:
        raise ValueError("no pairs with a gold preference")
    return rows


def _expected_from_features(annotators: Sequence[SimulatedAnnotator], rows: list[list[tuple]], scale: float = 1.0) -> float:
    total = 0.0
    for row in rows:
        acc = 0.0
        for a, (d, dlen, dagree) in zip(annotators, row):
            zb = d / (a.temperature * scale) + a.length_bias * dlen / a.length_unit + a.sycophancy_bias * dagree
            for best_first, z in ((True, zb + a.position_bias), (False, -zb + a.position_bias)):
                p_first, p_second = _sigmoid(z - a.tie_tolerance), _sigmoid(-z - a.tie_tolerance)
                p_first, p_second = ((1 - a.flip_rate) * p_first + a.flip_rate * p_second,
                                     (1 - a.flip_rate) * p_second + a.flip_rate * p_first)
                acc += 0.5 * ((p_first if best_first else p_second) + 0.5 * (1 - p_first - p_second))
        total += acc / len(annotators)
    return total / len(rows)


def expected_agreement(pool: AnnotatorPool, items: Sequence[PreferenceItem], tol: float = 1e-12) -> float:
    """Exact expectation of ``agreement_with_gold`` (first annotator's scorer as gold).

    For one pair, annotator and presentation order, the noisy utility difference is z + L with L
    standard logistic, so P(first wins) = sigmoid(z - tie_tolerance), P(second wins) =
    sigmoid(-z - tie_tolerance), the rest is a tie worth one half; a flip swaps the two win
    probabilities. Averaged over annotators (uniform) and both orders (each with probability 1/2).
    """
    return _expected_from_features(pool.annotators, _pair_features(pool, items, tol))


# The default pool: relative temperatures (multiples of one scale calibrated to the data), flip
# rates and biases in logit units. Two unbiased annotators of different care and three with one
# bias each, so the report's bias tables have something to find.
DEFAULT_POOL: tuple[dict[str, Any], ...] = (
    {"name": "sim-careful", "temperature": 1.0, "flip_rate": 0.05},
    {"name": "sim-hasty", "temperature": 2.0, "flip_rate": 0.15},
    {"name": "sim-verbose", "temperature": 1.0, "flip_rate": 0.05, "length_bias": 0.3},
    {"name": "sim-first", "temperature": 1.0, "flip_rate": 0.05, "position_bias": 0.5},
    {"name": "sim-agreeable", "temperature": 1.0, "flip_rate": 0.05, "sycophancy_bias": 1.0},
)
HUMAN_AGREEMENT = 0.68  # middle of the 63-73% human-human agreement on pairwise labels


def pool_from_specs(gold: GoldScorer, specs: Iterable[Mapping[str, Any]], scale: float = 1.0, seed: int = 0,
                    gold_name: str = "gold") -> AnnotatorPool:
    """A pool from spec dicts whose ``temperature`` is multiplied by ``scale``."""
    annotators = [SimulatedAnnotator(gold=gold, gold_name=gold_name,
                                     **{**spec, "temperature": spec.get("temperature", 1.0) * scale})
                  for spec in specs]
    return AnnotatorPool(annotators, seed)


def calibrate_scale(gold: GoldScorer, items: Sequence[PreferenceItem], specs: Iterable[Mapping[str, Any]] = DEFAULT_POOL,
                    target: float = HUMAN_AGREEMENT, gold_name: str = "gold") -> float:
    """The temperature scale at which the pool's expected agreement with its gold scorer is ``target``.

    Bisection on log(scale): expected agreement falls as the temperature grows. Searched within
    1e-4..1e4 times the median absolute gold-score difference of the items' pairs.
    """
    specs = list(specs)
    diffs = [abs(gold(p, x) - gold(p, y)) for p, x, y in _all_pairs(items)]
    spread = statistics.median([d for d in diffs if d > 0] or [0.0])
    if spread == 0:
        raise ValueError("the gold scorer gives every pair the same score: nothing to calibrate on")
    pool = pool_from_specs(gold, specs, gold_name=gold_name)
    rows = _pair_features(pool, items, 1e-12)  # gold and length features do not depend on the scale

    def agreement(log_scale: float) -> float:
        return _expected_from_features(pool.annotators, rows, math.exp(log_scale))

    lo, hi = math.log(spread * 1e-4), math.log(spread * 1e4)
    if not agreement(hi) <= target <= agreement(lo):
        raise ValueError(f"target agreement {target} is outside what this pool reaches on these items "
                         f"({agreement(hi):.3f}..{agreement(lo):.3f})")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if agreement(mid) > target else (lo, mid)
    return math.exp((lo + hi) / 2)


def default_pool(gold: GoldScorer, items: Sequence[PreferenceItem], target: float = HUMAN_AGREEMENT,
                 seed: int = 0, gold_name: str = "gold") -> AnnotatorPool:
    """``DEFAULT_POOL`` with its temperatures scaled so expected agreement with gold is ``target``."""
    scale = calibrate_scale(gold, items, DEFAULT_POOL, target, gold_name)
    return pool_from_specs(gold, DEFAULT_POOL, scale, seed, gold_name)
