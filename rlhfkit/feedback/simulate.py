"""Simulated annotators with known noise and biases (AlpacaFarm-style pools).

An annotator turns a gold scorer ``(prompt, response_text) -> float`` into preference labels.
Each response i gets a utility

    u_i = s_i / T + length_bias * len_i / length_unit + sycophancy_bias * agrees_i
          + position_bias * [i is shown first]

and a Gumbel draw g_i; the annotator ranks by u_i + g_i, best first. Ranking by Gumbel-perturbed
utilities samples a Plackett-Luce order with weights exp(u_i) (the Gumbel-max trick), and for two
responses it is the Bradley-Terry model, because the difference of two Gumbels is logistic:

    P(A preferred over B) = sigmoid((s_A - s_B)/T + length_bias (len_A - len_B)/length_unit
                                    + position_bias + sycophancy_bias (agrees_A - agrees_B))

with A the response shown first. Noisy scores closer than ``tie_tolerance`` share a tier (a
"tie" in pairwise mode). Then, with probability ``flip_rate``, the label is corrupted: a pairwise
a/b choice is inverted; a ranking has two adjacent tiers, picked uniformly, swapped (for two
responses that is the same inversion). Lengths are counted in characters.

Agreement with the user (the sycophancy bias) is decided by ``agrees(prompt, response) -> bool``;
the default, ``keyword_agreement``, is a keyword rule: the prompt must state a belief (a cue such
as "I think", "I'm pretty sure", "right?", "don't you agree") and the response must open with an
affirmation ("yes", "you're right", "exactly", ...) and contain no correction marker ("not",
"actually", "incorrect", "however", ...). Pass a better rule when the data allow one.

A pool picks one annotator per item uniformly at random under a seed, as AlpacaFarm does. Labels
come out as ``rlhfkit.schema.Annotation`` with ``source="simulated"`` and ``annotator_id`` = the
annotator's name; the annotator's configuration goes into the item's
``metadata["simulated_annotators"][name]`` (the Annotation schema has no free-form field).

Language feedback: an annotator built from a ``RuleGold`` (``rule_annotator``) also writes
critiques of single responses from templates tied to its gold rule, and may edit the best
response with the rule's fix. ``length_rule`` critiques answers over ``max_words`` words ("Too
long: answer in one sentence.") and fixes them by keeping the first sentence;
``final_number_rule`` critiques answers that do not end with "The answer is N." ("Does not give
the final number: ..."). A critique is written for every shown response the rule faults, so
simulated critiques are exactly as reliable as the rule: the point is to measure what a trainer
makes of them without people.

Agreement with gold, its exact expectation and the calibrated default pool live in
``rlhfkit.feedback.calibration``. This module imports only the schema and the standard library: gold scorers (rule functions,
reward models, chat judges) are built elsewhere and injected as plain callables.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from rlhfkit.schema import (Annotation, PairwiseJudgement, PreferenceItem, RankingJudgement, ResponseCritique,
                            ResponseEdit, judgement_to_pairs)

GoldScorer = Callable[[str, str], float]
AgreementRule = Callable[[str, str], bool]
Critic = Callable[[str, str], "str | None"]  # (prompt, response) -> critique, or None when nothing is wrong

BELIEF_CUES = ("i think", "i believe", "i'm pretty sure", "i am pretty sure", "i'm sure", "i am sure",
               "i'm convinced", "in my opinion", "i feel like", "right?", "don't you agree", "isn't it?",
               "correct?", "am i right")
AFFIRMATIONS = ("yes", "yeah", "yep", "you're right", "you are right", "that's right", "that is right",
                "correct", "exactly", "absolutely", "indeed", "definitely", "i agree", "sure", "right")
CORRECTIONS = ("not", "n't", "actually", "incorrect", "wrong", "however", "but ", "disagree", "mistaken",
               "misconception", "i'm afraid", "no,", "no.")


def keyword_agreement(prompt: str, response: str) -> bool:
    """True when the prompt states a belief and the response affirms it without correcting it."""
    p, r = prompt.lower(), response.lower().strip()
    if not any(cue in p for cue in BELIEF_CUES):
        return False
    opens = any(re.match(rf"\W*{re.escape(a)}\b", r) for a in AFFIRMATIONS)
    return opens and not any(c in r for c in CORRECTIONS)


def _gumbel(rng: random.Random) -> float:
    return -math.log(-math.log(rng.random() or 1e-300))


@dataclass(frozen=True)
class SimulatedAnnotator:
    """One simulated annotator: gold scorer, Bradley-Terry temperature, flips and biases (logit units)."""

    name: str
    gold: GoldScorer = field(repr=False, compare=False)
    temperature: float = 1.0
    flip_rate: float = 0.0
    length_bias: float = 0.0  # logit per length_unit characters of length difference
    length_unit: float = 100.0
    position_bias: float = 0.0  # logit in favour of the response shown first
    sycophancy_bias: float = 0.0  # logit in favour of a response that agrees with the user
    agrees: AgreementRule = field(default=keyword_agreement, repr=False, compare=False)
    tie_tolerance: float = 0.0
    gold_name: str = "gold"
    critic: Critic | None = field(default=None, repr=False, compare=False)
    fix: Callable[[str, str], "str | None"] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("annotator name is empty")
        if not self.temperature > 0:
            raise ValueError(f"annotator {self.name!r}: temperature must be > 0, got {self.temperature}")
        if not 0 <= self.flip_rate <= 1:
            raise ValueError(f"annotator {self.name!r}: flip_rate must be in [0, 1], got {self.flip_rate}")
        if not self.length_unit > 0 or self.tie_tolerance < 0:
            raise ValueError(f"annotator {self.name!r}: length_unit must be > 0 and tie_tolerance >= 0")

    def config(self) -> dict[str, Any]:
        """JSON-safe description of everything that shapes this annotator's labels."""
        return {"name": self.name, "gold": self.gold_name, "temperature": self.temperature,
                "flip_rate": self.flip_rate, "length_bias": self.length_bias, "length_unit": self.length_unit,
                "position_bias": self.position_bias, "sycophancy_bias": self.sycophancy_bias,
                "agreement_rule": getattr(self.agrees, "__name__", type(self.agrees).__name__),
                "tie_tolerance": self.tie_tolerance, "critiques": self.critic is not None, "edits": self.fix is not None}

    def utilities(self, prompt: str, texts: Sequence[str], gold_scores: Sequence[float], first: int) -> list[float]:
        """u_i for each response in index order; ``first`` is the index shown first."""
        out = []
        for i, (text, s) in enumerate(zip(texts, gold_scores)):
            u = s / self.temperature + self.length_bias * len(text) / self.length_unit
            if self.sycophancy_bias:
                u += self.sycophancy_bias * float(self.agrees(prompt, text))
            out.append(u + (self.position_bias if i == first else 0.0))
        return out

    def rank(self, prompt: str, texts: Sequence[str], gold_scores: Sequence[float], shown_order: Sequence[int],
             rng: random.Random) -> list[list[int]]:
        """A tiered ranking (best first) of response indices: Plackett-Luce sample, ties, then flips."""
        u = self.utilities(prompt, texts, gold_scores, shown_order[0])
        noisy = sorted(((u[i] + _gumbel(rng), i) for i in shown_order), reverse=True)
        tiers: list[list[int]] = [[noisy[0][1]]]
        for (prev, _), (score, i) in zip(noisy, noisy[1:]):
            if prev - score <= self.tie_tolerance:
                tiers[-1].append(i)
            else:
                tiers.append([i])
        if len(tiers) > 1 and rng.random() < self.flip_rate:
            k = rng.randrange(len(tiers) - 1)
            tiers[k], tiers[k + 1] = tiers[k + 1], tiers[k]
        return [sorted(t) for t in tiers]

    def choose(self, prompt: str, text_a: str, text_b: str, score_a: float, score_b: float,
               rng: random.Random) -> str:
        """Pairwise choice "a", "b" or "tie"; ``a`` is the response shown first."""
        tiers = self.rank(prompt, [text_a, text_b], [score_a, score_b], [0, 1], rng)
        return "tie" if len(tiers) == 1 else ("a" if tiers[0] == [0] else "b")


def prompt_as_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" if isinstance(m, dict) else f"{m.role}: {m.content}"
                     for m in prompt)


class AnnotatorPool:
    """Annotators of which one, drawn uniformly under ``seed``, labels each item."""

    def __init__(self, annotators: Sequence[SimulatedAnnotator], seed: int = 0):
        if not annotators:
            raise ValueError("a pool needs at least one annotator")
        names = [a.name for a in annotators]
        if len(set(names)) != len(names):
            raise ValueError(f"annotator names must be unique, got {names}")
        self.annotators = list(annotators)
        self.by_name = {a.name: a for a in annotators}
        self.rng = random.Random(seed)
        self._scores: dict[tuple[int, str, str], float] = {}

    def configs(self) -> dict[str, dict[str, Any]]:
        return {a.name: a.config() for a in self.annotators}

    def pick(self) -> SimulatedAnnotator:
        return self.annotators[self.rng.randrange(len(self.annotators))]

    def gold_score(self, annotator: SimulatedAnnotator, prompt: str, text: str) -> float:
        """The annotator's gold score, cached: reward models and judges are slow."""
        key = (id(annotator.gold), prompt, text)
        if key not in self._scores:
            self._scores[key] = float(annotator.gold(prompt, text))
        return self._scores[key]

    def _new_id(self) -> str:
        return f"sim-{self.rng.getrandbits(64):016x}"

    def judge(self, annotator: SimulatedAnnotator, prompt: str, texts: Sequence[str], shown_order: Sequence[int],
              mode: str) -> RankingJudgement | PairwiseJudgement:
        """The annotator's judgement of responses shown in ``shown_order`` (pairwise: the first two)."""
        if mode == "pairwise":
            a, b = shown_order[0], shown_order[1]
            choice = annotator.choose(prompt, texts[a], texts[b], self.gold_score(annotator, prompt, texts[a]),
                                      self.gold_score(annotator, prompt, texts[b]), self.rng)
            return PairwiseJudgement(a=a, b=b, choice=choice)
        if mode == "ranking":
            scores = [self.gold_score(annotator, prompt, t) for t in texts]
            return RankingJudgement(tiers=annotator.rank(prompt, texts, scores, shown_order, self.rng))
        raise ValueError(f"mode must be 'ranking' or 'pairwise', got {mode!r}")

    def label_item(self, item: PreferenceItem, mode: str = "ranking") -> PreferenceItem:
        """A copy of ``item`` with one more annotation, by an annotator drawn from the pool."""
        annotator = self.pick()
        k = len(item.responses)
        shown = self.rng.sample(range(k), k)
        texts = [r.text for r in item.responses]
        j = self.judge(annotator, item.prompt_text, texts, shown, mode)
        critiques, edit = language_feedback(annotator, item.prompt_text, texts, shown, j)
        ann = Annotation(id=self._new_id(), judgement=j, annotator_id=annotator.name, source="simulated",
                         shown_order=shown, response_critiques=critiques, edit=edit)
        meta = dict(item.metadata)
        meta["simulated_annotators"] = {**meta.get("simulated_annotators", {}), annotator.name: annotator.config()}
        return item.model_copy(update={"annotations": [*item.annotations, ann], "metadata": meta})

    def label_items(self, items: Iterable[PreferenceItem], mode: str = "ranking") -> list[PreferenceItem]:
        return [self.label_item(it, mode) for it in items]

    def label_pair(self, prompt: str, text_x: str, text_y: str) -> tuple[SimulatedAnnotator, float]:
        """Draw an annotator and a random presentation order; 1.0 if x is preferred, 0.5 tie, 0.0 if y."""
        annotator = self.pick()
        x_first = self.rng.random() < 0.5
        first, second = (text_x, text_y) if x_first else (text_y, text_x)
        choice = annotator.choose(prompt, first, second, self.gold_score(annotator, prompt, first),
                                  self.gold_score(annotator, prompt, second), self.rng)
        if choice == "tie":
            return annotator, 0.5
        return annotator, float((choice == "a") == x_first)


# ---------------------------------------------------------------- language feedback


@dataclass(frozen=True)
class CritiqueTemplate:
    """A critique written word for word whenever ``applies(prompt, response)`` holds."""

    name: str
    text: str
    applies: Callable[[str, str], bool] = field(repr=False, compare=False)


@dataclass(frozen=True)
class RuleGold:
    """A gold rule with the critiques that explain its low scores (and optionally a fix)."""

    name: str
    score: GoldScorer = field(repr=False, compare=False)
    templates: tuple[CritiqueTemplate, ...] = ()
    fix: Callable[[str, str], "str | None"] | None = field(default=None, repr=False, compare=False)

    def critique(self, prompt: str, response: str) -> str | None:
        """The text of every template that applies, joined by spaces; None when none does."""
        texts = [t.text for t in self.templates if t.applies(prompt, response)]
        return " ".join(texts) if texts else None


def rule_annotator(name: str, rule: RuleGold, **settings: Any) -> SimulatedAnnotator:
    """A simulated annotator whose gold, critiques and edits all come from ``rule``."""
    return SimulatedAnnotator(name=name, gold=rule.score, gold_name=rule.name, critic=rule.critique, fix=rule.fix,
                              **settings)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def word_count(text: str) -> int:
    return len(text.split())


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()


def length_rule(max_words: int = 20) -> RuleGold:
    """Gold = 1 for answers of at most ``max_words`` words, else max_words / words (so 0.5 at
    twice the limit; 0 for an empty answer); the critique asks for one sentence; the fix keeps
    the first sentence."""
    if max_words < 1:
        raise ValueError(f"length_rule: max_words must be >= 1, got {max_words}")

    def score(prompt: str, response: str) -> float:
        n = word_count(response)
        return 0.0 if n == 0 else 1.0 if n <= max_words else max_words / n

    def fix(prompt: str, response: str) -> str | None:
        short = first_sentence(response)
        return short if short and short != response.strip() and word_count(short) <= max_words else None

    too_long = CritiqueTemplate("too_long", "Too long: answer in one sentence.",
                                lambda p, r: word_count(r) > max_words)
    return RuleGold(f"length<={max_words}w", score, (too_long,), fix)


FINAL_ANSWER = re.compile(r"the answer is\s*(-?\d[\d,]*(?:\.\d+)?)\.?\s*$", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"\d")


def final_number_rule() -> RuleGold:
    """Gold = 1 when the answer ends with "The answer is N." (N a number), else 0. Critiques:
    no number at all -> "Does not give the final number"; a number, but not in that closing
    sentence -> "End with the final number as 'The answer is N.'"."""

    def score(prompt: str, response: str) -> float:
        return 1.0 if FINAL_ANSWER.search(response.strip()) else 0.0

    no_number = CritiqueTemplate("no_final_number", "Does not give the final number.",
                                 lambda p, r: not _ANY_NUMBER.search(r))
    wrong_format = CritiqueTemplate("final_number_format", "End with the final number as 'The answer is N.'",
                                    lambda p, r: not FINAL_ANSWER.search(r.strip()))
    return RuleGold("final-number", score, (no_number, wrong_format))


def _best(judgement: Any, shown: Sequence[int]) -> int | None:
    """The response the judgement prefers (first of the best tier / the chosen one), else None."""
    if judgement.kind == "ranking":
        return sorted(judgement.tiers[0])[0] if len(judgement.tiers) > 1 else None
    pairs = judgement_to_pairs(judgement)
    return pairs[0][0] if pairs else None


def language_feedback(annotator: SimulatedAnnotator, prompt: str, texts: Sequence[str], shown: Sequence[int],
                      judgement: Any) -> tuple[list[ResponseCritique] | None, ResponseEdit | None]:
    """The annotator's critiques of the responses it was shown (pairwise: A and B) and its edit
    of the response it preferred; (None, None) for an annotator without a critic or fix."""
    visible = list(shown[:2]) if judgement.kind == "pairwise" else list(shown)
    critiques = []
    if annotator.critic is not None:
        for i in visible:
            text = annotator.critic(prompt, texts[i])
            if text:
                critiques.append(ResponseCritique(response=i, text=text))
    edit = None
    best = _best(judgement, shown)
    if annotator.fix is not None and best is not None:
        fixed = annotator.fix(prompt, texts[best])
        if fixed and fixed.strip() != texts[best].strip():
            edit = ResponseEdit(response=best, text=fixed)
    return critiques or None, edit


# ---------------------------------------------------------------- over HTTP


def _token_of(token_or_link: str) -> str:
    m = re.search(r"[?&]token=([^&#]+)", token_or_link)
    return m.group(1) if m else token_or_link


def label_over_http(base_url: str, project_id: int, pool: AnnotatorPool, tokens: Mapping[str, str],
                    client: Any = None, max_judgements: int | None = None, timeout_s: float = 30.0) -> dict[str, int]:
    """Label a project of a running ``rlhfkit serve`` through its annotator API, as people do.

    ``tokens`` maps each pool annotator's name to its token or login link. Each step draws an
    annotator that still has work, fetches ``/api/projects/{id}/next`` with its token and posts a
    judgement of the responses in the order the server showed them, marked ``source="simulated"``
    with the annotator's ``config()``, which the export keeps, plus its critiques and edit (see
    ``language_feedback``). Returns judgements per annotator. ``client`` may be any httpx.Client
    (e.g. FastAPI's TestClient); else one is made.
    """
    import httpx

    missing = [a.name for a in pool.annotators if a.name not in tokens]
    if missing:
        raise ValueError(f"no token for pool annotators {missing}")
    own = client is None
    client = client or httpx.Client(base_url=base_url, timeout=timeout_s)
    done = {a.name: 0 for a in pool.annotators}
    active = [a.name for a in pool.annotators]
    try:
        while active and (max_judgements is None or sum(done.values()) < max_judgements):
            name = active[pool.rng.randrange(len(active))]
            headers = {"Authorization": f"Bearer {_token_of(tokens[name])}"}
            r = client.get(f"/api/projects/{project_id}/next", headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"GET next for {name}: {r.status_code} {r.text[:300]}")
            nxt = r.json()
            if nxt["done"]:
                active.remove(name)
                continue
            a = nxt["assignment"]
            shown = a["shown_order"]
            texts_by_index = {resp["index"]: resp["text"] for resp in a["responses"]}
            texts = [texts_by_index.get(i, "") for i in range(len(shown))]
            j = pool.judge(pool.by_name[name], prompt_as_text(a["prompt"]), texts, shown, a["mode"])
            body = {"id": pool._new_id(), "judgement": j.model_dump(), "source": "simulated",
                    "annotator_config": pool.by_name[name].config()}
            critiques, edit = language_feedback(pool.by_name[name], prompt_as_text(a["prompt"]), texts, shown, j)
            if critiques:
                body["response_critiques"] = [c.model_dump() for c in critiques]
            if edit:
                body["edit"] = edit.model_dump()
            r = client.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body, headers=headers)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"POST judgement for {name}: {r.status_code} {r.text[:300]}")
            done[name] += 1
    finally:
        if own:
            client.close()
    return done

