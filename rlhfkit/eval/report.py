"""The run report: one self-contained HTML page from a run folder.

``build_report(run_dir)`` reads the files a trainer or an evaluation wrote (the contract is
docs/run-format.md), renders every section those files support and writes a single HTML file:
plots are embedded PNGs (matplotlib, Agg canvas), the style sheet is inlined, nothing is fetched,
so the page works offline and can be mailed around. A missing file turns its section into one
"not available: FILE" line; a malformed file is an error naming the file, line and field.
Model text (prompts, completions) is untrusted and is always HTML-escaped.

A folder of rounds (``round-1/``, ``round-2/``, ...) is a loop: every run folder found beneath it
is reported, after an overview that puts the rounds side by side.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhfkit.data.atomic import atomic_write
from rlhfkit.data.errors import DataError

CONFIG_FILES = ("rlhfkit_reward.json", "rlhfkit_dpo_config.json", "rlhfkit_sft_config.json")
RUN_FILES = ("run.json", "metrics.jsonl", "train_log.jsonl", "eval.json") + CONFIG_FILES
EVAL_FILES = ("winrate.json", "overoptimization.json", "sycophancy.json", "annotators.json", "rm_diagnostics.json")
NOT_RUNS = {"checkpoints", "checkpoint", "samples", "eval"}  # parts of the run above them
SAMPLE_FILE = re.compile(r"step-(\d+)\.jsonl$")


class ReportError(DataError):
    """A run folder that cannot be reported: names the file, line and field."""


# ------------------------------------------------------------------------------------ reading
def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None


def read_jsonl(path: Path) -> tuple[list[dict], str | None]:
    """Records of a JSONL file. A run killed mid-write leaves a truncated last line: it is
    skipped and reported as a note; a bad line anywhere else is an error."""
    lines = path.read_text(encoding="utf-8").split("\n")
    records, note = [], None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            if n == len(lines):  # no newline after it: the writer was interrupted
                note = f"{path.name}: skipped the truncated last line {n}"
                continue
            raise ReportError(path, n, None, f"not valid JSON ({err.msg})") from None
        if not isinstance(rec, dict):
            raise ReportError(path, n, None, "expected a JSON object")
        records.append(rec)
    return records, note


def need(obj: Any, path: Path, *fields: str, where: str = "") -> None:
    """Raise naming the file and field when a required key is missing or not a number."""
    if not isinstance(obj, dict):
        raise ReportError(path, None, where or None, "expected a JSON object")
    for f in fields:
        if f not in obj:
            raise ReportError(path, None, where + f, "missing")
        if isinstance(obj[f], bool) or not isinstance(obj[f], (int, float, list, dict)):
            raise ReportError(path, None, where + f, f"expected a number, list or object, got {obj[f]!r}")


def _check_evals(evals: dict[str, tuple[Path, Any]]) -> None:
    if "winrate.json" in evals:
        path, w = evals["winrate.json"]
        for i, r in enumerate(w["results"] if isinstance(w, dict) and "results" in w else [w]):
            need(r, path, "win_rate", where=f"results[{i}]." if "results" in w else "")
    if "overoptimization.json" in evals:
        path, o = evals["overoptimization.json"]
        need(o, path, "points")
        if o.get("form") not in ("bon", "rl"):
            raise ReportError(path, None, "form", f"expected 'bon' or 'rl', got {o.get('form')!r}")
        for i, p in enumerate(o["points"]):
            need(p, path, "kl", "proxy", "gold", where=f"points[{i}].")
            for key in ("proxy_ci95", "gold_ci95"):
                c = p.get(key)
                if c is not None and not (isinstance(c, list) and len(c) == 2 and all(
                        isinstance(x, (int, float)) and not isinstance(x, bool) for x in c)):
                    raise ReportError(path, None, f"points[{i}].{key}", f"expected [lo, hi], got {c!r}")
        for name, coef in (o.get("fit") or {}).items():
            need(coef, path, "alpha", "beta", where=f"fit.{name}.")
    if "sycophancy.json" in evals:
        path, s = evals["sycophancy.json"]
        for when in ("before", "after"):
            need(s, path, when)
            need(s[when], path, "rate", where=f"{when}.")
    if "rm_diagnostics.json" in evals:
        path, r = evals["rm_diagnostics.json"]
        need(r, path, "accuracy")


def _natural(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def is_run(folder: Path) -> bool:
    if any((folder / f).is_file() for f in RUN_FILES):
        return True
    if any((folder / "eval" / f).is_file() for f in EVAL_FILES):
        return True
    return (folder / "samples").is_dir() and any(SAMPLE_FILE.search(p.name) for p in (folder / "samples").iterdir())


def find_runs(root: Path, depth: int = 3) -> list[Path]:
    """The run folders at and below ``root`` (rounds in numeric order: round-2 before round-10)."""
    found = [root] if is_run(root) else []
    if depth > 0:
        for child in sorted((c for c in root.iterdir() if c.is_dir() and c.name not in NOT_RUNS
                             and not c.name.startswith(".")), key=_natural):
            found += find_runs(child, depth - 1)
    return found


@dataclass
class Run:
    """Everything the report uses from one run folder."""

    path: Path
    name: str
    kind: str = "evaluation"
    config: dict = field(default_factory=dict)
    config_file: str | None = None
    provenance: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    metrics_file: str | None = None
    rm: dict | None = None            # reward-model summary (reward_eval.summarize)
    rm_file: str | None = None
    dpo_eval: dict | None = None      # eval.json of a DPO run
    evals: dict[str, Any] = field(default_factory=dict)  # eval/*.json by file name
    samples: dict[int, list[dict]] = field(default_factory=dict)  # step -> records
    checkpoints: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_name(self) -> str:
        return self.metrics_file or ("train_log.jsonl" if self.kind == "reward model" else "metrics.jsonl")


def load_run(path: Path, root: Path) -> Run:
    run = Run(path=path, name=str(path.relative_to(root)) if path != root else path.resolve().name)

    def add(rel: str) -> Path:
        run.files.append(rel)
        return path / rel

    meta = read_json(add("run.json")) if (path / "run.json").is_file() else {}
    run.config, run.provenance = dict(meta.get("config") or {}), dict(meta.get("provenance") or {})
    for name in ("metrics.jsonl", "train_log.jsonl"):
        if (path / name).is_file():
            run.metrics, note = read_jsonl(add(name))
            run.metrics_file = name
            run.notes += [note] if note else []
            break
    if (path / "rlhfkit_reward.json").is_file():
        rm_meta = read_json(add("rlhfkit_reward.json"))
        run.kind, run.config_file = "reward model", "rlhfkit_reward.json"
        run.config = run.config or dict(rm_meta.get("train_config") or {})
        run.provenance.setdefault("backbone", rm_meta.get("backbone"))
        if isinstance(rm_meta.get("eval"), dict):
            run.rm, run.rm_file = rm_meta["eval"], "rlhfkit_reward.json"
    elif run.metrics_file == "train_log.jsonl":
        run.kind = "reward model"
    for name, kind in (("rlhfkit_dpo_config.json", "dpo"), ("rlhfkit_sft_config.json", "SFT")):
        if (path / name).is_file():
            cfg = read_json(add(name))
            run.config, run.config_file = run.config or cfg, name
            run.kind = str(cfg.get("loss", "dpo")).upper() if kind == "dpo" else kind
    if (path / "eval.json").is_file():
        ev = read_json(add("eval.json"))
        if run.kind == "reward model" and run.rm is None:
            run.rm, run.rm_file = ev, "eval.json"
        elif isinstance(ev, dict) and ("eval" in ev or "kl" in ev):
            run.dpo_eval = ev
        elif isinstance(ev, dict) and "accuracy_ci95" in ev and run.rm is None:  # `reward eval --out`
            run.rm, run.rm_file = ev, "eval.json"
    if (path / "eval").is_dir():
        found = {}
        for name in EVAL_FILES:
            if (path / "eval" / name).is_file():
                found[name] = (path / "eval" / name, read_json(add(f"eval/{name}")))
        _check_evals(found)
        run.evals = {k: v for k, (_, v) in found.items()}
        if "rm_diagnostics.json" in run.evals:
            run.rm, run.rm_file = run.evals["rm_diagnostics.json"], "eval/rm_diagnostics.json"
    if (path / "samples").is_dir():
        for f in sorted((path / "samples").iterdir(), key=_natural):
            m = SAMPLE_FILE.search(f.name)
            if m:
                records, note = read_jsonl(add(f"samples/{f.name}"))
                for n, r in enumerate(records, start=1):
                    if not isinstance(r.get("completion"), str):
                        raise ReportError(f, n, "completion", "missing or not text")
                run.samples[int(m.group(1))] = records
                run.notes += [note] if note else []
    if (path / "checkpoints").is_dir():
        run.checkpoints = sorted(int(m.group(1)) for c in (path / "checkpoints").iterdir()
                                 if (m := re.fullmatch(r"step-(\d+)", c.name)))
    if meta.get("kind"):
        run.kind = str(meta["kind"])
    elif run.kind == "evaluation" and (run.samples or run.checkpoints or
                                       any("reward/mean" in r for r in run.metrics)):
        run.kind = "online RL"
    return run


def load_runs(run_dir: str | Path) -> list[Run]:
    root = Path(run_dir)
    if not root.is_dir():
        raise ReportError(root, None, None, "no such run folder" if not root.exists() else "not a folder")
    paths = find_runs(root)
    if not paths:
        known = ", ".join(RUN_FILES + tuple(f"eval/{f}" for f in EVAL_FILES) + ("samples/step-N.jsonl",))
        raise ReportError(root, None, None, f"holds none of the files a run writes ({known}); "
                          "see docs/run-format.md")
    return [load_run(p, root) for p in paths]


def is_loop(root: Path) -> bool:
    return any(c.is_dir() and re.fullmatch(r"round-\d+", c.name) for c in root.iterdir())


# ------------------------------------------------------------------------------------ the page
def headline(run: Run) -> list[tuple[str, str, str]]:
    """(label, value, note) cards: the few numbers a reader wants first."""
    from rlhfkit.eval.report_sections import _last, fmt

    cards = []
    if run.metrics:
        cards.append(("steps", fmt(_last(run.metrics, "step") or len(run.metrics)), run.metrics_name))
        for key, label in (("reward/mean", "final reward"), ("gold_reward/mean", "final gold reward"),
                           ("kl/mean", "final KL (nats)"), ("loss", "final loss")):
            if _last(run.metrics, key) is not None:
                cards.append((label, fmt(_last(run.metrics, key)), "last logged step"))
    if run.rm:
        lo, hi = (run.rm.get("accuracy_ci95") or [None, None])[:2]
        cards.append(("RM accuracy", f"{run.rm['accuracy']:.3f}", f"95% CI {fmt(lo)}–{fmt(hi)}, n={fmt(run.rm.get('n_pairs'))}"))
        if run.rm.get("ece") is not None:
            cards.append(("RM calibration (ECE)", f"{run.rm['ece']:.3f}", "0 is perfectly calibrated"))
    ev = (run.dpo_eval or {}).get("eval") or {}
    if ev.get("accuracy") is not None:
        cards.append(("implicit-reward accuracy", f"{ev['accuracy']:.3f}", f"held-out pairs, n={fmt(ev.get('pairs'))}"))
    kl = (run.dpo_eval or {}).get("kl") or {}
    if kl.get("kl_per_sequence") is not None:
        se = kl.get("kl_stderr")
        cards.append(("KL to reference", f"{kl['kl_per_sequence']:.3g}" + (f" ± {se:.2g}" if se is not None else ""),
                      f"nats/sequence, {fmt(kl.get('samples'))} samples"))
    if "winrate.json" in run.evals:
        from rlhfkit.eval.report_sections import winrate_entries

        w = winrate_entries(run.evals["winrate.json"])[-1]
        lo, hi = (w.get("ci95") or [None, None])[:2]
        cards.append(("win rate", f"{w['win_rate']:.3f}", f"95% CI {fmt(lo)}–{fmt(hi)}" + (f"; length-controlled {fmt(w['lc_win_rate'])}"
                                                        if w.get("lc_win_rate") is not None else "")))
    if "sycophancy.json" in run.evals:
        s = run.evals["sycophancy.json"]
        cards.append(("sycophancy", f"{s['after']['rate']:.3f}", f"before training {fmt(s['before']['rate'])}"))
    return cards


def _cards(cards: list[tuple[str, str, str]]) -> str:
    from rlhfkit.eval.report_sections import esc

    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
        f'<div class="note">{esc(note)}</div></div>' for label, value, note in cards) + "</div>"


def _about(run: Run) -> str:
    """Config and provenance: what was run, from which files."""
    from rlhfkit.eval.report_sections import esc, fmt, table

    prov = {"folder": str(run.path.resolve()), "kind": run.kind, **{k: v for k, v in run.provenance.items() if v is not None}}
    if run.checkpoints:
        prov["checkpoints"] = ", ".join(f"step {s}" for s in run.checkpoints)
    notes = "".join(f'<p class="na-line">note: {esc(n)}</p>' for n in run.notes)
    notes += (f"<details><summary>{len(run.files)} files read</summary>"
              f'<p class="caption">{esc(", ".join(run.files))}</p></details>')
    cfg = ""
    if run.config:
        rows = [[k, v if isinstance(v, (int, float, bool)) or v is None else fmt(v)] for k, v in run.config.items()]
        cfg = (f"<details><summary>configuration ({len(rows)} settings, from "
               f"{esc(run.config_file or 'run.json')})</summary>{table(['setting', 'value'], rows, cls='kv')}</details>")
    return (f'<div class="panel"><h3>Run</h3>{table(["", ""], [[k, v] for k, v in prov.items()], cls="kv")}'
            f"{cfg}{notes}</div>")


def _group(run: Run) -> str:
    """'round-2' for round-2/policy and round-2/reward; the run's own name outside a round."""
    head = run.name.split("/")[0]
    return head if re.fullmatch(r"round-\d+", head) else run.name


def _loop_overview(runs: list[Run]) -> str:
    """One row per round (its runs merged: the reward model's accuracy, the policy's win rate...)."""
    from rlhfkit.eval import report_plots as plots
    from rlhfkit.eval.report_sections import _last, img, panel, table, winrate_entries

    heads = ["round", "runs", "policy steps", "RM accuracy", "win rate", "win-rate 95% CI", "final reward",
             "final gold", "final KL", "sycophancy"]
    groups: dict[str, list] = {}
    for r in runs:
        w = winrate_entries(r.evals["winrate.json"])[-1] if "winrate.json" in r.evals else {}
        s = r.evals.get("sycophancy.json") or {}
        row = groups.setdefault(_group(r), [_group(r), []] + [None] * (len(heads) - 2))
        row[1].append(r.name.split("/", 1)[-1] if "/" in r.name else r.kind)
        values = [_last(r.metrics, "step") if r.kind != "reward model" else None, (r.rm or {}).get("accuracy"),
                  w.get("win_rate"), w.get("ci95"), _last(r.metrics, "reward/mean"),
                  _last(r.metrics, "gold_reward/mean"), _last(r.metrics, "kl/mean"), (s.get("after") or {}).get("rate")]
        row[2:] = [old if old is not None else new for old, new in zip(row[2:], values)]
    rows = [[g[0], ", ".join(g[1])] + g[2:] for g in groups.values()]
    keep = [j for j in range(len(heads)) if j < 2 or any(row[j] is not None for row in rows)]
    body = table([heads[j] for j in keep], [[row[j] for j in keep] for row in rows])
    forest = [(row[0], row[4], *(row[5] or [None, None])[:2], "main") for row in rows if row[4] is not None]
    if forest:
        body += img(plots.forest(forest, 0.5, "win rate against the reference"), "win rate by round")
    cap = ("Each round's headline numbers side by side; <b>the win rate should climb round over round</b> while "
           "KL stays bounded, and the reward model's accuracy should not fall as the policy drifts.")
    return panel("rounds", "Rounds at a glance", cap, body)


def render_page(root: Path, runs: list[Run], loop: bool = False) -> str:
    from importlib import resources

    import rlhfkit
    from rlhfkit.eval.report_sections import RENDER, SECTIONS, esc

    single = len(runs) == 1
    toc, blocks = [], []
    if loop or not single:
        blocks.append(_loop_overview(runs))
        toc.append('<a href="#rounds">Rounds at a glance</a>')
    for k, run in enumerate(runs):
        prefix = "" if single else f"r{k}-"
        parts = [] if single else [f'<h2 id="run{k}">{esc(run.name)} <span class="badge">{esc(run.kind)}</span></h2>']
        parts += [_cards(headline(run)), _about(run)]
        for sid, title in SECTIONS:
            html_part = RENDER[sid](run, prefix + sid)
            parts.append(html_part)
            if single:
                css = "" if 'class="panel"' in html_part else ' class="na"'
                toc.append(f'<a href="#{sid}"{css}>{esc(title)}</a>')
        if not single:
            toc.append(f'<a href="#run{k}">{esc(run.name)}</a>')
        blocks.append(f'<section class="run">{"".join(parts)}</section>')
    css = resources.files("rlhfkit.eval").joinpath("templates/report.css").read_text(encoding="utf-8")
    kind = "loop" if loop else runs[0].kind if single else f"{len(runs)} runs"
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    title = f"rlhfkit report: {root.resolve().name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{esc(title)}</title><style>{css}</style></head>
<body><header class="page"><div class="inner"><h1>{esc(root.resolve().name)} <span class="badge">{esc(kind)}</span></h1>
<div class="sub">rlhfkit {esc(rlhfkit.__version__)} run report · {esc(str(root.resolve()))} · generated {when}</div>
</div></header><main><nav class="toc">{"".join(toc)}</nav>{"".join(blocks)}
<footer>Written by <code>rlhfkit report</code>. Self-contained: plots are embedded images, nothing is loaded
from the network. File formats: docs/run-format.md.</footer></main></body></html>
"""


# ------------------------------------------------------------------------------------ writing
def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of ``run_dir`` to ``out`` (default RUN_DIR/report.html); return its path."""
    root = Path(run_dir)
    runs = load_runs(root)
    page = render_page(root, runs, loop=is_loop(root))
    out = Path(out) if out else root / "report.html"
    with atomic_write(out) as fh:  # a browser never sees half a page
        fh.write(page)
    return out
