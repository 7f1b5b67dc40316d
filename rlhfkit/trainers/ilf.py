"""Imitation learning from language feedback (ILF): Scheurer et al. 2023, "Training Language
Models with Language Feedback at Scale", Algorithm 1.

Data: triples (x, y0, f) of a prompt, a response and a written critique of that response
(``rlhfkit feedback export --format ilf``), and optionally edits (x, y_edit) that annotators wrote
themselves (``--format sft``). One round:

1. refine: for each triple sample M refinements  y_1..y_M ~ pi(. | t(x, y0, f)),  t being
   ``REFINEMENT_TEMPLATE`` (one user turn; a chat prompt keeps its earlier turns);
2. select: y* = argmax_i  score(x, y_i)  (first of equal maxima; empty refinements never win),
   with the scorer the user names. The scorer sees the original prompt x and the refinement and,
   as metadata lists, ``critique`` and ``response`` (y0), so a rule or a model can check that the
   feedback was followed;
3. fine-tune: SFT on (x, y*) together with the edits (x, y_edit): the prompt *without* the
   critique, maximising log pi(y* | x), which the paper shows approximates the Bayesian posterior
   of the ideal policy given the feedback (its eq. 4-6). ``rlhfkit.trainers.sft.SFTTrainer`` on the
   shared loop does the training.

``rounds`` > 1 repeats this, refining with the fine-tuned policy of the previous round.

Departures from the paper:
- Selection: the paper scores refinements with an instruction-following LM ("does the
  refinement incorporate the feedback?") or embedding similarity; here any scorer: a reward-model
  folder, a ``module:function`` rule, or a chat judge (``judge:BASE_URL#MODEL``, asked to rate the
  answer with the feedback stated beside the question).
- Rounds: the paper fine-tunes the initial model on the refinements of all rounds so far; here
  round k continues from round k-1's model on round k's refinements (a fraction of the cost;
  earlier rounds' targets are in refinements.jsonl for anyone who wants the paper's variant).
- Edits skip the sampling (they are human-written refinements); their pairs (edited > original,
  ``--format edit-pairs``) can feed ``rlhfkit dpo`` instead.

Files under OUT: ``refinements.jsonl`` (every round's M samples, scores and choice; written after
each batch of critiques and reused on a re-run with the same settings), ``round-k/`` (the model of
round k < K), the final HF model, ``metrics.jsonl`` and ``checkpoint/`` of the last round, and
``lineage.json`` (the SHA-256 content hashes of the critiques and edits it trained on, see
``rlhfkit.data.language_feedback``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from rlhfkit.data.language_feedback import CritiqueTriple, content_sha256, edit_sha256
from rlhfkit.trainers.config import ILFConfig, SFTConfig

REFINEMENT_TEMPLATE = (
    "{prompt}\n\n"
    "Here is an earlier answer to this:\n{response}\n\n"
    "Feedback on that answer:\n{critique}\n\n"
    "Write an improved answer that follows the feedback. Reply with the improved answer only."
)
JUDGE_FEEDBACK_TEMPLATE = "{prompt}\n\n(A reviewer asked that the answer follow this feedback: {critique})"
ROUND_DONE = "ilf_round.json"


def refinement_messages(prompt: str | list[dict], response: str, critique: str) -> list[dict]:
    """The chat the policy refines in: earlier turns of a chat prompt, then one user turn holding
    ``REFINEMENT_TEMPLATE`` filled with the last user message, the response and the critique."""
    if isinstance(prompt, str):
        history, question = [], prompt
    else:
        history, question = list(prompt[:-1]), prompt[-1]["content"]
    content = REFINEMENT_TEMPLATE.format(prompt=question, response=response, critique=critique)
    return [*history, {"role": "user", "content": content}]


def select_refinement(scores: list[float], texts: list[str]) -> int | None:
    """Index of the best-scoring non-empty refinement (first of equal maxima), None if all are empty."""
    live = [i for i, t in enumerate(texts) if t.strip()]
    return max(live, key=lambda i: scores[i]) if live else None


# --------------------------------------------------------------------------- scorer
def judge_scorer(base_url: str, model: str, judge=None) -> Callable:
    """A reward function asking a chat judge (``rewards.judge.ChatJudge``) for a 1-10 score of
    each refinement, with the critique stated beside the question (``JUDGE_FEEDBACK_TEMPLATE``)."""
    from rlhfkit.rewards.judge import ChatJudge
    from rlhfkit.rollout.prompts import prompt_to_messages

    judge = judge or ChatJudge(base_url, model)

    def score(prompts: list, completions: list[str], critique: list[str] | None = None, **_) -> list[float]:
        critiques = critique or [""] * len(completions)
        out = []
        for p, c, f in zip(prompts, completions, critiques):
            text = "\n".join(m.content for m in prompt_to_messages(p) if m.role == "user") if not isinstance(p, str) else p
            out.append(judge.score(JUDGE_FEEDBACK_TEMPLATE.format(prompt=text, critique=f) if f else text, c))
        return out

    score.__name__ = f"judge:{model}"
    return score


def load_scorer(spec: str) -> Callable:
    """``judge:BASE_URL#MODEL``, or anything ``rewards.base.load_reward`` accepts."""
    from rlhfkit.rewards.base import load_reward

    if not spec:
        raise ValueError("--scorer is required: a reward-model folder, module:function, or judge:BASE_URL#MODEL")
    if spec.startswith("judge:"):
        url, sep, model = spec[len("judge:"):].rpartition("#")
        if not sep or not url or not model:
            raise ValueError(f"scorer {spec!r}: a judge is named judge:BASE_URL#MODEL, "
                             "e.g. judge:http://127.0.0.1:8080#smollm2")
        return load_reward(judge_scorer(url, model))
    return load_reward(spec)


# --------------------------------------------------------------------------- refinements file
def _settings(cfg: ILFConfig, round_: int) -> dict[str, Any]:
    """What a refinement record depends on: a re-run reuses it only when all of this is equal."""
    return {"round": round_, "model": cfg.model, "refinements": cfg.refinements, "temperature": cfg.temperature,
            "top_p": cfg.top_p, "max_new_tokens": cfg.max_new_tokens, "max_length": cfg.max_length,
            "seed": cfg.seed, "scorer": cfg.scorer, "refine_batch_size": cfg.refine_batch_size,
            "template_sha256": hashlib.sha256(REFINEMENT_TEMPLATE.encode()).hexdigest()}


def read_refinements(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{path}, line {n}: not JSON; delete the file to sample again") from None
    return out


def _write_refinements(path: Path, records: list[dict]) -> None:
    from rlhfkit.data.atomic import atomic_write

    with atomic_write(path) as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _reusable(records: list[dict], triples: list[CritiqueTriple], settings: dict, path: Path) -> dict[int, dict]:
    """This round's records by critique position, checked against the data and the settings."""
    mine = {}
    for r in records:
        if r["settings"]["round"] != settings["round"]:
            continue
        i = r["index"]
        if i >= len(triples) or r["critique_sha256"] != triples[i].sha256:
            raise ValueError(f"{path}: record for critique {i} of round {settings['round']} was made from other "
                             "data; use another --out or delete the file")
        changed = sorted(k for k in settings if r["settings"].get(k) != settings[k])
        if changed:
            raise ValueError(f"{path}: refinements of round {settings['round']} were sampled with other settings "
                             f"({', '.join(changed)}); use another --out, restore them, or delete the file")
        mine[i] = r
    return mine


# --------------------------------------------------------------------------- phases
@dataclass
class RoundResult:
    round: int
    targets: list[tuple[Any, str, str]]  # (prompt, selected refinement, critique sha256)
    sampled: int  # critiques refined in this call (not reused)
    empty: int  # critiques whose M refinements were all empty


def refine_round(model, tokenizer, scorer: Callable, triples: list[CritiqueTriple], cfg: ILFConfig, round_: int,
                 out: Path) -> RoundResult:
    """Phase 1-2 of a round: sample M refinements per critique, score, select; appended to
    ``out/refinements.jsonl`` after each batch, reused from it when already there."""
    from rlhfkit.progress import progress
    from rlhfkit.rollout.sampler import SamplingParams, TorchSampler
    from rlhfkit.trainers.online import prompt_set

    path = out / "refinements.jsonl"
    records = read_refinements(path)
    settings = _settings(cfg, round_)
    done = _reusable(records, triples, settings, path)
    params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    sampler = TorchSampler(model, tokenizer)
    bs, m, sampled = cfg.refine_batch_size, cfg.refinements, 0
    with progress(len(triples), f"refine round {round_}", cfg.progress, start=len(done)) as advance:
        for b in range(0, len(triples), bs):
            batch = [i for i in range(b, min(b + bs, len(triples))) if i not in done]
            if not batch:
                continue
            # rollout: M samples per critique, the seed fixed by (seed, round, batch) so a resumed
            # run draws exactly what the uninterrupted one would have
            chats = [refinement_messages(triples[i].prompt, triples[i].response, triples[i].critique) for i in batch]
            ids = prompt_set(chats, tokenizer, cfg.max_length).prompt_ids
            rollout = sampler.sample(ids, m, params, seed=cfg.seed * 1_000_003 + round_ * 10_007 + b)
            # score: the original prompt and the refinement, critique and response as metadata
            prompts = [triples[i].prompt for i in batch for _ in range(m)]
            scores = scorer(prompts, rollout.texts, critique=[triples[i].critique for i in batch for _ in range(m)],
                            response=[triples[i].response for i in batch for _ in range(m)])
            for k, i in enumerate(batch):
                texts, group = rollout.texts[k * m:(k + 1) * m], [float(s) for s in scores[k * m:(k + 1) * m]]
                best = select_refinement(group, texts)
                done[i] = {"index": i, "critique_sha256": triples[i].sha256, "refinements": texts, "scores": group,
                           "selected": best, "settings": settings}
            records = [r for r in records if not (r["settings"]["round"] == round_ and r["index"] in done)]
            records += [done[i] for i in sorted(done)]
            _write_refinements(path, records)
            sampled += len(batch)
            advance(n=len(batch))
    targets, empty = [], 0
    for i, t in enumerate(triples):
        r = done[i]
        if r["selected"] is None:
            empty += 1
        else:
            targets.append((t.prompt, r["refinements"][r["selected"]], t.sha256))
    return RoundResult(round_, targets, sampled, empty)


def sft_config(cfg: ILFConfig, out: Path) -> SFTConfig:
    """The fine-tuning phase's settings: the ILF config's SFT fields, writing to ``out``."""
    values = {f.name: getattr(cfg, f.name) for f in fields(SFTConfig)}
    return SFTConfig(**{**values, "out": str(out)})


def round_dir(out: Path, round_: int, rounds: int) -> Path:
    return out if round_ == rounds else out / f"round-{round_}"


def fine_tune_round(model, tokenizer, examples: list, cfg: ILFConfig, folder: Path):
    """Phase 3: the SFT trainer on the selected refinements and the edits; saves a HF folder."""
    from rlhfkit.trainers.sft import SFTTrainer

    trainer = SFTTrainer(model, tokenizer, sft_config(cfg, folder), out_dir=folder).setup(examples)
    trainer.train()
    trainer.save()
    return trainer


def write_lineage(out: Path, cfg: ILFConfig, triples: list[CritiqueTriple], edits: list, rounds: list[dict],
                  trained_on: list[str]) -> Path:
    from rlhfkit.data.atomic import atomic_write

    def file_sha(p: str) -> str | None:
        return hashlib.sha256(Path(p).read_bytes()).hexdigest() if p else None

    # the critiques whose selected refinement was a training target, in data order, once each
    critiques = list(dict.fromkeys(trained_on))
    edit_hashes = list(dict.fromkeys(edit_sha256(e.prompt, e.completion) for e in edits))
    lineage = {  # "kind"/"algo"/"parent" as the loop's policy lineage, so `rlhfkit lineage OUT` reads it
        "kind": "policy", "algo": "ilf", "parent": cfg.model, "scorer": cfg.scorer,
        "critiques_file": cfg.data, "critiques_file_sha256": file_sha(cfg.data),
        "edits_file": cfg.edits or None, "edits_file_sha256": file_sha(cfg.edits),
        "critique_hashes": critiques, "critiques_sha256": content_sha256(critiques),
        "edit_hashes": edit_hashes, "edits_sha256": content_sha256(edit_hashes),
        "rounds": rounds,
    }
    path = out / "lineage.json"
    with atomic_write(path) as fh:
        fh.write(json.dumps(lineage, indent=2) + "\n")
    return path


def run_ilf(model, tokenizer, cfg: ILFConfig, scorer: Callable, triples: list[CritiqueTriple],
            edits: list | None = None, load_model: Callable[[Path], Any] | None = None):
    """All rounds; returns (model, lineage dict). A round whose folder holds ``ilf_round.json`` is
    done: its model is loaded with ``load_model(folder)`` and it is skipped. ``edits`` are
    ``SFTExample``s."""
    from rlhfkit.data.atomic import atomic_write
    from rlhfkit.trainers.sft import SFTExample

    if load_model is None:
        from rlhfkit.models import load_causal_lm

        def load_model(folder: Path):
            return load_causal_lm(folder, dtype="fp32")
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    edits = list(edits or [])
    final = out / ROUND_DONE  # a finished run here must have had as many rounds
    done = json.loads(final.read_text()) if final.exists() else {"rounds": cfg.rounds}
    if done.get("rounds") != cfg.rounds:
        raise ValueError(f"{final}: {out} holds round {done.get('round')} of {done.get('rounds')}, "
                         f"not round {cfg.rounds} of {cfg.rounds}; use another --out")
    rounds, trained_on = [], []
    for r in range(1, cfg.rounds + 1):
        folder = round_dir(out, r, cfg.rounds)
        result = refine_round(model, tokenizer, scorer, triples, cfg, r, out)
        examples = [SFTExample(p, y) for p, y, _ in result.targets] + edits
        if not examples:
            raise ValueError(f"round {r}: every refinement was empty and there are no edits: nothing to train on")
        marker = folder / ROUND_DONE
        if marker.exists():
            done = json.loads(marker.read_text())
            if (done.get("round"), done.get("rounds")) != (r, cfg.rounds):
                raise ValueError(f"{marker}: {folder} holds round {done.get('round')} of {done.get('rounds')}, "
                                 f"not round {r} of {cfg.rounds}; use another --out")
            model, tokenizer = load_model(folder)
            steps = done["steps"]
        else:
            steps = fine_tune_round(model, tokenizer, examples, cfg, folder).step
            with atomic_write(marker) as fh:  # written last: the round's model is complete
                fh.write(json.dumps({"round": r, "rounds": cfg.rounds, "steps": steps, "examples": len(examples)}) + "\n")
        trained_on += [sha for _, _, sha in result.targets]
        rounds.append({"round": r, "model": str(folder), "targets": len(result.targets), "edits": len(edits),
                       "all_empty": result.empty, "sampled_now": result.sampled, "steps": steps})
    write_lineage(out, cfg, triples, edits, rounds, trained_on)
    return model, json.loads((out / "lineage.json").read_text())
