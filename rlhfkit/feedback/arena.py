"""Arena mode, as Chatbot Arena runs it: anonymous battles between policies, Bradley-Terry scores.

An arena project's items are prompts answered by several policies or checkpoints, one response
each, the policy named in ``Response.provenance.model``. Annotators see two of them, drawn at
random per assignment (the shown order) and without names, and judge them like any pairwise
item (A, B, tie, both bad). Every judgement is a battle (model_a, model_b, y) with y = 1 when
A wins, 0 when B wins and 1/2 for a tie or "both bad" (Chatbot Arena counts both as ties).

Bradley-Terry (Bradley and Terry 1952): P(a beats b) = sigmoid(s_a - s_b). The scores s (M,)
maximise the log-likelihood of the battles with a tie counted as half a win for each side,

    L(s) = sum_n y_n log sigmoid(s_a - s_b) + (1 - y_n) log sigmoid(s_b - s_a) - (lambda/2) |s|^2,

fitted by Newton's method (numpy). The small ridge (lambda = 1e-4 by default) keeps the maximum finite
when a model won every battle and fixes the shift that the likelihood leaves free; scores are
then centred. Reported on the Elo-like scale Chatbot Arena uses: 1000 + 400 s / ln 10, so 400
points mean 10:1 odds. 95% intervals: percentiles of the scores refitted on ``rounds`` bootstrap
resamples of the battles (the arena's "bootstrap CI"). Only numpy, never torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhfkit.feedback.models import Item, Judgement, Project
from rlhfkit.schema import PreferenceItem, Provenance, Response

SCALE, BASE_SCORE = 400.0 / math.log(10.0), 1000.0


@dataclass
class Battles:
    models: list[str]
    a: np.ndarray  # (N,) index of the model shown as A
    b: np.ndarray  # (N,) index of the model shown as B
    y: np.ndarray  # (N,) 1 A won, 0 B won, 0.5 tie / both bad


def policy_name(provenance: dict | None) -> str | None:
    """A policy's name: ``model``, or ``model@model_version`` when a version (a checkpoint step,
    a hash) tells checkpoints of one model apart."""
    if not provenance or not provenance.get("model"):
        return None
    version = provenance.get("model_version")
    return provenance["model"] if version in (None, "") else f"{provenance['model']}@{version}"


def battles_of(s: Session, project: Project) -> Battles:
    """The project's judgements as battles between the models that wrote the two responses."""
    models_of = {i.id: [policy_name(r.get("provenance")) for r in i.responses]
                 for i in s.scalars(select(Item).where(Item.project_id == project.id, ~Item.is_gold))}
    rows = []
    for j in s.scalars(select(Judgement).where(Judgement.project_id == project.id, ~Judgement.is_gold)):
        d = j.judgement
        if d["kind"] != "pairwise" or j.item_id not in models_of:
            continue
        ma, mb = models_of[j.item_id][d["a"]], models_of[j.item_id][d["b"]]
        if ma is None or mb is None or ma == mb:
            continue
        rows.append((ma, mb, {"a": 1.0, "b": 0.0}.get(d["choice"], 0.5)))
    models = sorted({m for r in rows for m in r[:2]})
    index = {m: n for n, m in enumerate(models)}
    return Battles(models, np.array([index[r[0]] for r in rows], dtype=int),
                   np.array([index[r[1]] for r in rows], dtype=int), np.array([r[2] for r in rows], dtype=float))


def fit_bradley_terry(a: np.ndarray, b: np.ndarray, y: np.ndarray, n_models: int, ridge: float = 1e-4,
                      weights: np.ndarray | None = None, init: np.ndarray | None = None) -> np.ndarray:
    """Bradley-Terry scores s (n_models,), centred, in logits; see the module docstring.

    Newton's method with a backtracking line search: the objective is strictly convex (the
    ridge makes the Hessian positive definite), M is small, so a few M x M solves converge to
    machine precision where a first-order method needs hundreds of steps per bootstrap round.
    """
    w = np.ones_like(y) if weights is None else weights  # (N,)
    m = n_models

    def nll(s: np.ndarray) -> float:
        z = s[a] - s[b]  # (N,)
        # -[y log sigmoid(z) + (1-y) log sigmoid(-z)] = logaddexp(0, z) - y z
        return float(np.sum(w * (np.logaddexp(0.0, z) - y * z))) + 0.5 * ridge * float(s @ s)

    s = np.zeros(m) if init is None else init.astype(float).copy()
    f = nll(s)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(s[a] - s[b])))  # (N,) P(A wins)
        g_z = w * (p - y)  # (N,) d nll / d z
        grad = np.bincount(a, g_z, m) - np.bincount(b, g_z, m) + ridge * s  # (M,)
        h = w * p * (1.0 - p)  # (N,) d2 nll / d z2
        hess = (np.bincount(a * m + a, h, m * m) + np.bincount(b * m + b, h, m * m)
                - np.bincount(a * m + b, h, m * m) - np.bincount(b * m + a, h, m * m)).reshape(m, m)
        step = np.linalg.solve(hess + ridge * np.eye(m), grad)
        t = 1.0
        while t > 1e-10 and nll(s - t * step) > f - 1e-4 * t * float(grad @ step):
            t *= 0.5
        s, f = s - t * step, nll(s - t * step)
        if np.max(np.abs(t * step)) < 1e-12:
            break
    return s - s.mean()


def leaderboard(battles: Battles, rounds: int = 200, seed: int = 0, ridge: float = 1e-4) -> list[dict[str, Any]]:
    """Models best first: BT score (Elo scale), 95% bootstrap interval, battles, wins/ties/losses."""
    m = len(battles.models)
    if m == 0:
        return []
    s = fit_bradley_terry(battles.a, battles.b, battles.y, m, ridge)
    rng = np.random.default_rng(seed)
    n = len(battles.y)
    boot = np.empty((rounds, m))
    for r in range(rounds):
        # resampling with replacement = integer weights per battle (multinomial counts)
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        boot[r] = fit_bradley_terry(battles.a, battles.b, battles.y, m, ridge, weights=counts, init=s)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0) if rounds else (s, s)
    out = []
    for k, name in enumerate(battles.models):
        as_a, as_b = battles.a == k, battles.b == k
        wins = float(np.sum(battles.y[as_a] == 1) + np.sum(battles.y[as_b] == 0))
        ties = float(np.sum(battles.y[as_a | as_b] == 0.5))
        games = int(np.sum(as_a | as_b))
        out.append({"model": name, "score": BASE_SCORE + SCALE * s[k], "ci_low": BASE_SCORE + SCALE * lo[k],
                    "ci_high": BASE_SCORE + SCALE * hi[k], "battles": games, "wins": int(wins), "ties": int(ties),
                    "losses": int(games - wins - ties), "bt_logit": float(s[k])})
    out.sort(key=lambda r: -r["score"])
    for rank, row in enumerate(out, start=1):
        row["rank"] = rank
    return out


def check_arena_items(items) -> None:
    """Arena items need every response's provenance.model, one response per policy."""
    for item, where in items:
        models = [policy_name(r.provenance.model_dump() if r.provenance else None) for r in item.responses]
        if None in models:
            raise ValueError(f"{where}: item {item.id!r}: arena responses must name their policy in "
                             f"provenance.model (response {models.index(None)} does not)")
        if len(set(models)) != len(models):
            raise ValueError(f"{where}: item {item.id!r}: two responses by the same policy {models}")


def merge_policy_items(runs: list[tuple[str, list]], min_policies: int = 2) -> tuple[list, int]:
    """Arena items from one generation file per policy: responses to the same prompt (equal
    prompt, text or messages) are put side by side, the first response of each file, its
    provenance kept (a file's label names the policy when a response has no provenance).
    Prompts answered by fewer than ``min_policies`` files are left out; returns (items, left out).
    """
    by_prompt: dict[str, dict[str, Any]] = {}
    for label, items in runs:
        for item in items:
            key = item.model_dump_json(include={"prompt"})
            slot = by_prompt.setdefault(key, {"prompt": item.prompt, "responses": {}, "id": item.id})
            r = item.responses[0]
            prov = r.provenance or Provenance(model=label)
            name = policy_name(prov.model_dump())
            if name in slot["responses"]:
                raise ValueError(f"{label}: two files (or items) answer prompt {item.id!r} as policy {name!r}; "
                                 "give each checkpoint its own model name or model_version")
            slot["responses"][name] = Response(text=r.text, provenance=prov)
    out = [PreferenceItem(id=f"arena-{slot['id']}", prompt=slot["prompt"], responses=list(slot["responses"].values()))
           for slot in by_prompt.values() if len(slot["responses"]) >= min_policies]
    return out, len(by_prompt) - len(out)
