"""Export a project straight to a Hugging Face ``datasets`` folder with a dataset card.

One step: the project's judgements (as ``export.export_items`` gives them, adjudications
preferred unless told otherwise) become a ``DatasetDict`` with one named split in ``fmt``
(``rlhfkit.data.hf.items_to_dataset``), saved with ``save_to_disk`` (``datasets.load_from_disk(folder)``
reads it back, as for ``rlhfkit data convert --dataset``), and a README.md card listing the annotators, the agreement numbers and the
export's settings, so a data set found later says where it came from. Written atomically.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from rlhfkit.data.atomic import atomic_dir
from rlhfkit.data.hf import items_to_dataset
from rlhfkit.feedback.export import export_items
from rlhfkit.feedback.models import Project
from rlhfkit.feedback.stats import project_stats

HF_FORMATS = ("trl-pairs", "trl-implicit", "trl-unpaired", "rlhfkit")
AGREEMENT_ROWS = (
    ("raw_agreement", "mean pairwise raw agreement"), ("fleiss_kappa", "Fleiss' kappa"),
    ("cohen_kappa_mean", "mean Cohen's kappa"), ("krippendorff_alpha_nominal", "Krippendorff's alpha (nominal)"),
    ("krippendorff_alpha_ordinal", "Krippendorff's alpha (ordinal)"), ("kendall_tau_b", "Kendall's tau-b"),
    ("krippendorff_alpha_interval_ratings", "Krippendorff's alpha (interval, ratings)"),
    ("krippendorff_alpha_nominal_thumbs", "Krippendorff's alpha (nominal, thumbs)"),
)


def _num(x: Any) -> str:
    return "–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))


def dataset_card(project: Project, stats: dict[str, Any], settings: dict[str, Any], rows: int) -> str:
    """The README.md of an exported folder: YAML header, annotators, agreement, settings."""
    split = settings["split"]
    lines = [
        "---", "tags:", "- rlhf", "- human-feedback", "- rlhfkit", f"pretty_name: {project.name!r}",
        "dataset_info:", "  splits:", f"  - name: {split}", f"    num_examples: {rows}", "---", "",
        f"# {project.name}", "",
        f"Human preference data collected with the rlhfkit annotation app ({project.mode} project), "
        f"exported as `{settings['format']}`: {rows} rows in the `{split}` split.", "",
        "```python", "from datasets import load_from_disk", "",
        f"ds = load_from_disk(\"{settings['folder']}\")[\"{split}\"]", "```", "",
        "## Annotators", "",
        "| annotator | judgements | reliability weight | gold accuracy | median s / judgement |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for a in stats["annotators"]:
        lines.append(f"| {a['annotator']} | {a['judgements']} | {_num(a['reliability_weight'])} | "
                     f"{_num(a['gold_accuracy'])} | {_num(a['median_seconds_per_judgement'])} |")
    ag = stats["agreement"]
    lines += ["", "## Agreement", "", f"Over {ag.get('units', 0)} (item, response pair) units"
              + (f" and {ag['response_units']} (item, response) units" if "response_units" in ag else "")
              + "; definitions in rlhfkit's docs/feedback.md.", "", "| statistic | value |", "| --- | ---: |"]
    lines += [f"| {label} | {_num(ag.get(key))} |" for key, label in AGREEMENT_ROWS if key in ag]
    pr = stats["progress"]
    lines += ["", "## Export settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in settings.items() if k != "folder"]
    lines += [f"| items complete | {pr['complete']} / {pr['items']} (overlap {project.overlap}) |",
              f"| judgements | {pr['judgements']} |", ""]
    return "\n".join(lines)


def export_hf_dataset(s: Session, project: Project, out: str | Path, fmt: str = "trl-pairs", split: str = "train",
                      include_gold: bool = False, adjudicated: str = "prefer",
                      tool_version: str = "") -> dict[str, Any]:
    """Write ``out`` (a ``save_to_disk`` folder plus README.md); returns rows and the settings.
    ``tool_version`` (rlhfkit's, passed by the CLI) goes into the card."""
    import datasets

    if fmt not in HF_FORMATS:
        raise ValueError(f"a datasets folder holds one of {HF_FORMATS}, not {fmt!r}")
    if not split.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"split must be a simple name like train or test, not {split!r}")
    items = export_items(s, project, include_gold, adjudicated)
    ds = items_to_dataset(items, fmt=fmt, path=f"project {project.name}")
    settings = {"format": fmt, "split": split, "include_gold": include_gold, "adjudicated": adjudicated,
                "project": project.name, "mode": project.mode,
                "exported_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
                "rlhfkit": tool_version or "unknown", "folder": str(out)}
    card = dataset_card(project, project_stats(s, project), settings, len(ds))
    with atomic_dir(out) as tmp:
        datasets.DatasetDict({split: ds}).save_to_disk(str(tmp))
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return {"rows": len(ds), **settings}
