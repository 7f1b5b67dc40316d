"""Exporting judgements for training, with provenance.

Formats:
  rlhfkit    one PreferenceItem per line, annotations carrying annotator, time, shown order,
             critique and the annotator's reliability weight; item metadata gains ``feedback``
             (project, source file:line, gold flag).
  trl-pairs  one {"prompt", "chosen", "rejected"} line per implied pair (TRL's explicit-prompt
             preference format) plus provenance columns: weight, item_id, annotator, created_at,
             shown_order, source (file:line), label_source (human / simulated / model_judge).
  trl-unpaired  one {"prompt", "completion", "label"} line per thumbs judgement (TRL's unpaired
             preference format, for KTO) plus the same provenance columns.
  hh         Anthropic HH lines {"chosen", "rejected"} ("\\n\\nHuman: ...\\n\\nAssistant: ...")
             kept to exactly those keys, with provenance in a line-aligned sidecar
             ``<out>.provenance.jsonl``.
  labelstudio  Label Studio tasks (the RLHF template: prompt, answer1, answer2, a pairwise
             control), one per pair of responses; written as a JSON array to a .json file.
  argilla    Argilla feedback records with a "preference" ranking question.
  (both via ``rlhfkit.data.formats``, which reads them too)
  sft        language feedback: one {"prompt", "completion"} line per edit (the edited response).
  edit-pairs one {"prompt", "chosen", "rejected", "pair_kind": "edit"} line per edit: the edit
             over the response it rewrote.
  ilf        one {"prompt", "response", "critique", "critique_sha256"} line per response critique.
  The last three are ``rlhfkit.data.language_feedback``'s records (with item, annotation,
  annotator, source and response index), the input of ``rlhfkit sft`` / ``dpo`` / ``ilf``.
Pairs come from ``rlhfkit.schema.judgement_to_pairs`` (ties give no pair).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from rlhfkit.data import language_feedback
from rlhfkit.data.atomic import atomic_write
from rlhfkit.data.formats import item_to_records
from rlhfkit.feedback.kinds import expand
from rlhfkit.feedback.models import Adjudication, Annotator, Item, Judgement, Project
from rlhfkit.feedback.stats import reliability_weights
from rlhfkit.schema import Annotation, PreferenceItem, Response, judgement_to_pairs
from rlhfkit.schema import Judgement as JudgementSchema

FORMATS = ("rlhfkit", "trl-pairs", "hh", "trl-unpaired", "labelstudio", "argilla", "sft", "edit-pairs", "ilf")
LANGUAGE_FEEDBACK = {"sft": language_feedback.edit_examples, "edit-pairs": language_feedback.edit_pairs,
                     "ilf": language_feedback.ilf_triples}
_adapter: TypeAdapter = TypeAdapter(JudgementSchema)


ADJUDICATED = ("prefer", "ignore")


def export_items(s: Session, project: Project, include_gold: bool = False,
                 adjudicated: str = "prefer") -> list[PreferenceItem]:
    """Items with their judgements as annotations. With ``adjudicated="prefer"`` an item a
    reviewer adjudicated carries the adjudicated label as its only annotation (so pairs and
    training use it) and keeps the annotators' originals in ``metadata.feedback.original_annotations``;
    ``"ignore"`` exports the originals as if there were no review."""
    if adjudicated not in ADJUDICATED:
        raise ValueError(f"adjudicated must be one of {ADJUDICATED}, got {adjudicated!r}")
    weights = reliability_weights(s, project)
    names = dict(s.execute(select(Annotator.id, Annotator.name)).all())
    by_item: dict[int, list[Judgement]] = defaultdict(list)
    for j in s.scalars(select(Judgement).where(Judgement.project_id == project.id).order_by(Judgement.created_at)):
        by_item[j.item_id].append(j)
    adjudications = {} if adjudicated == "ignore" else {
        a.item_id: a for a in s.scalars(select(Adjudication).where(Adjudication.project_id == project.id))}
    out = []
    for item in s.scalars(select(Item).where(Item.project_id == project.id).order_by(Item.id)):
        if (item.id not in by_item and item.id not in adjudications) or (item.is_gold and not include_gold):
            continue
        anns = [
            Annotation(
                # a rating/thumbs submission is one annotation per response: ids <id>.r<index>
                id=j.id if len(parts) == 1 else f"{j.id}.r{one['response']}",
                judgement=_adapter.validate_python(one), critique=j.critique,
                annotator_id=names[j.annotator_id], source=j.source,
                # measured here for judgements made here; as reported by the other tool for imports
                time_spent_s=j.server_time_s if j.origin is None else j.time_spent_s,
                shown_order=j.shown_order, weight=weights.get(names[j.annotator_id], 1.0),
                created_at=j.created_at,
                # language feedback belongs to the submission, not to each of its rating parts:
                # on the first part only, so an export holds every critique and edit once
                response_critiques=j.response_critiques if k == 0 else None, edit=j.edit if k == 0 else None,
            )
            for j in by_item[item.id] for parts in [expand(j.judgement)] for k, one in enumerate(parts)
        ]
        meta = dict(item.item_metadata or {})
        _add_annotator_configs(meta, by_item[item.id], names)
        meta["feedback"] = {"project": project.name, "source": item.source, "gold": item.is_gold}
        adj = adjudications.get(item.id)
        if adj is not None:
            meta["feedback"]["adjudicated"] = {"reviewer": names[adj.reviewer_id], "note": adj.note,
                                               "at": adj.created_at.isoformat()}
            meta["feedback"]["original_annotations"] = [a.model_dump(mode="json") for a in anns]
            parts = expand(adj.judgement)
            anns = [Annotation(id=f"adjudication-{adj.id}" + (f".r{one['response']}" if len(parts) > 1 else ""),
                               judgement=_adapter.validate_python(one), critique=adj.note,
                               annotator_id=names[adj.reviewer_id], source="human", weight=1.0,
                               created_at=adj.created_at) for one in parts]
        # Flagged empty responses are kept as they came (model_construct: the schema refuses ""),
        # so training readers report and skip them like any empty answer in real data.
        out.append(PreferenceItem(
            id=item.external_id, prompt=item.prompt, responses=[response_of(r) for r in item.responses],
            annotations=anns, metadata=meta,
        ))
    return out


# The Annotation schema has no free-form field, so the configuration of whoever made a label goes
# into the item's metadata under its name, where simulate.AnnotatorPool.label_item puts it too.
CONFIG_KEYS = {"simulated": "simulated_annotators", "model_judge": "model_judges", "human": "annotator_configs"}


def _add_annotator_configs(meta: dict, judgements: list[Judgement], names: dict[int, str]) -> None:
    for j in judgements:
        if j.annotator_config is not None:
            key = CONFIG_KEYS[j.source]
            meta[key] = {**meta.get(key, {}), names[j.annotator_id]: j.annotator_config}


def response_of(stored: dict) -> Response:
    if stored["text"].strip():
        return Response(**stored)
    return Response.model_construct(**Response(**{**stored, "text": "-"}).model_dump(exclude={"text"}),
                                    text=stored["text"])


def _hh_dialogue(prompt, answer: str) -> str:
    if isinstance(prompt, str):
        turns = [("Human", prompt)]
    else:
        turns = [("Human" if m.role in ("user", "system") else "Assistant", m.content) for m in prompt]
    return "".join(f"\n\n{who}: {text}" for who, text in turns) + f"\n\nAssistant: {answer}"


def _pair_lines(items: list[PreferenceItem], fmt: str) -> Iterator[tuple[dict, dict]]:
    for item in items:
        for ann in item.annotations:
            for c, r in judgement_to_pairs(ann.judgement):
                prov = {
                    "item_id": item.id, "annotator": ann.annotator_id, "weight": ann.weight,
                    "created_at": ann.created_at.isoformat() if ann.created_at else None,
                    "shown_order": ann.shown_order, "source": item.metadata["feedback"]["source"],
                    "label_source": ann.source,
                    "project": item.metadata["feedback"]["project"], "chosen_index": c, "rejected_index": r,
                }
                if fmt == "trl-pairs":
                    prompt = item.prompt if isinstance(item.prompt, str) else [m.model_dump() for m in item.prompt]
                    yield {"prompt": prompt, "chosen": item.responses[c].text,
                           "rejected": item.responses[r].text, **prov}, prov
                else:
                    yield {"chosen": _hh_dialogue(item.prompt, item.responses[c].text),
                           "rejected": _hh_dialogue(item.prompt, item.responses[r].text)}, prov


def _prompt_json(item: PreferenceItem):
    return item.prompt if isinstance(item.prompt, str) else [m.model_dump() for m in item.prompt]


def _unpaired_lines(items: list[PreferenceItem]) -> Iterator[dict]:
    for item in items:
        for ann in item.annotations:
            if ann.judgement.kind == "binary":
                n = ann.judgement.response
                yield {"prompt": _prompt_json(item), "completion": item.responses[n].text,
                       "label": ann.judgement.thumbs_up, "item_id": item.id, "response_index": n,
                       "annotator": ann.annotator_id, "weight": ann.weight, "label_source": ann.source,
                       "created_at": ann.created_at.isoformat() if ann.created_at else None,
                       "source": item.metadata["feedback"]["source"], "project": item.metadata["feedback"]["project"]}


def _atomic_lines(path: Path, lines: list[str]) -> None:
    with atomic_write(path) as fh:
        fh.writelines(line + "\n" for line in lines)


def export_lines(s: Session, project: Project, fmt: str, include_gold: bool = False,
                 adjudicated: str = "prefer") -> tuple[list[str], list[str]]:
    """(lines, sidecar provenance lines) of an export; sidecar is empty except for hh."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    # An adjudication settles the preference label only: the language-feedback formats read every
    # annotator's critiques and edits, reviewed or not.
    items = export_items(s, project, include_gold, "ignore" if fmt in LANGUAGE_FEEDBACK else adjudicated)
    if fmt == "rlhfkit":
        return [it.model_dump_json() for it in items], []
    if fmt == "trl-unpaired":
        return [json.dumps(r, ensure_ascii=False) for r in _unpaired_lines(items)], []
    if fmt in ("labelstudio", "argilla"):
        return [json.dumps(r, ensure_ascii=False) for it in items for r in item_to_records(it, fmt)], []
    if fmt in LANGUAGE_FEEDBACK:
        return [json.dumps(r, ensure_ascii=False) for r in LANGUAGE_FEEDBACK[fmt](items)], []
    rows = list(_pair_lines(items, fmt))
    lines = [json.dumps(r, ensure_ascii=False) for r, _ in rows]
    side = [json.dumps(p, ensure_ascii=False) for _, p in rows] if fmt == "hh" else []
    return lines, side


def export_file(s: Session, project: Project, fmt: str, out: str | Path, include_gold: bool = False,
                adjudicated: str = "prefer") -> int:
    """Write an export atomically; returns the number of lines written."""
    out = Path(out)
    lines, side = export_lines(s, project, fmt, include_gold, adjudicated)
    if out.suffix == ".json":  # one JSON array (what Label Studio's importer and rlhfkit.data read)
        with atomic_write(out) as fh:
            fh.write("[\n" + ",\n".join(lines) + "\n]\n" if lines else "[]\n")
        return len(lines)
    _atomic_lines(out, lines)
    if fmt == "hh":
        _atomic_lines(out.with_name(out.name + ".provenance.jsonl"), side)
    return len(lines)
