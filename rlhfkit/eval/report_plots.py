"""Figures for the run report, as base64 PNG strings ready for ``<img src="data:image/png;base64,...">``.

Built on matplotlib's object API with the Agg canvas (``Figure`` + ``FigureCanvasAgg``), never
pyplot, so no global backend is switched and nothing needs a display. One palette everywhere:
gold reward is always green, the proxy (the reward being optimised) amber, KL purple.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

COLOURS = {
    "main": "#2563eb",    # the run's own quantity (loss, reward, accuracy)
    "gold": "#059669",    # the gold scorer: what we really want
    "proxy": "#d97706",   # the reward model being optimised
    "kl": "#7c3aed",
    "second": "#db2777",  # a second series in one panel (rejected, eval)
    "third": "#0891b2",
    "grid": "#e5e7eb",
    "text": "#374151",
    "muted": "#9ca3af",
}

# (panel title, [(metrics key, legend label, colour)], key of a +-1 std band for the first series)
PANELS: list[tuple[str, list[tuple[str, str, str]], str | None]] = [
    ("loss", [("loss", "loss", "main")], None),
    ("reward (mean ± std)", [("reward/mean", "reward", "main")], "reward/std"),
    ("proxy vs gold reward", [("proxy_reward/mean", "proxy", "proxy"), ("gold_reward/mean", "gold", "gold")], None),
    ("KL to reference (nats/seq)", [("kl/mean", "KL", "kl")], None),
    ("entropy (nats/token)", [("entropy", "entropy", "third")], None),
    ("response length (tokens)", [("response_length/mean", "length", "main")], None),
    ("clip fraction", [("clip_fraction", "clip fraction", "second")], None),
    ("pair accuracy", [("accuracy", "train", "main"), ("rewards/accuracy", "train", "main"),
                       ("eval_accuracy", "held out", "second")], None),
    ("implicit rewards (DPO)", [("rewards/chosen", "chosen", "gold"), ("rewards/rejected", "rejected", "second"),
                                ("rewards/margins", "margin", "main")], None),
    ("reward margin (chosen - rejected)", [("margin", "margin", "main")], None),
    ("learning rate", [("lr", "lr", "muted")], None),
    ("gradient norm", [("grad_norm", "grad norm", "muted")], None),
]


def _style(ax, title: str | None = None) -> None:
    ax.grid(True, color=COLOURS["grid"], linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(COLOURS["muted"])
    ax.tick_params(colors=COLOURS["text"], labelsize=8)
    if title:
        ax.set_title(title, fontsize=10, color=COLOURS["text"], loc="left", fontweight="bold")


def to_png(fig: Figure, dpi: int = 110, tight: bool = True) -> str:
    """PNG bytes as base64. ``tight=False`` skips the bounding-box pass (a second full draw) for
    figures whose margins are set by hand."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None, facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average (the window shrinks at the ends), so the trend does not lag."""
    half = window // 2
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - half): i + half + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, r in enumerate(records):
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r.get("step", i + 1))
            ys.append(float(v))
    return xs, ys


def available_panels(records: list[dict]) -> list[tuple[str, list[tuple[str, str, str]], str | None]]:
    """The panels of PANELS for which the records hold at least one number."""
    out = []
    for title, series, band in PANELS:
        present = [s for s in series if _series(records, s[0])[1]]
        if present:
            out.append((title, present, band))
    return out


def training_curves(records: list[dict], columns: int = 3) -> str:
    """Small multiples, one panel per metric present. Long runs show the raw values faintly and
    a centred moving average on top, so the trend is readable through the step noise."""
    panels = available_panels(records)
    rows = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(3.6 * columns, 2.5 * rows))
    for k, (title, series, band) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, k + 1)
        _style(ax, title)
        for n, (key, label, colour) in enumerate(series):
            xs, ys = _series(records, key)
            smooth = len(ys) > 40 and key != "lr"  # a schedule is exact: nothing to smooth
            if n == 0 and band:
                bx, bs = _series(records, band)
                if len(bs) == len(ys):
                    ax.fill_between(xs, [y - s for y, s in zip(ys, bs)], [y + s for y, s in zip(ys, bs)],
                                    color=COLOURS[colour], alpha=0.12, linewidth=0)
            ax.plot(xs, ys, color=COLOURS[colour], linewidth=1.0 if smooth else 1.6,
                    alpha=0.35 if smooth else 1.0, label=None if smooth else label,
                    marker="o" if len(ys) < 12 else None, markersize=3)
            if smooth:
                ax.plot(xs, rolling_mean(ys, max(3, len(ys) // 15)), color=COLOURS[colour], linewidth=1.8, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        if len(series) > 1:
            ax.legend(fontsize=7, frameon=False)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
            ax.yaxis.get_offset_text().set_fontsize(7)
        if k >= len(panels) - columns:
            ax.set_xlabel("step", fontsize=8, color=COLOURS["text"])
    # margins by hand: tight_layout and a tight bounding box would each draw the figure again
    height = 2.5 * rows
    fig.subplots_adjust(left=0.055, right=0.99, bottom=0.5 / height, top=1 - 0.3 / height, hspace=0.55, wspace=0.22)
    return to_png(fig, tight=False)


def gao_curve(d: float, alpha: float, beta: float, form: str) -> float:
    """Gao et al. 2022, eq. 1-2, with d = sqrt(KL): best-of-N R(d) = d (alpha - beta d),
    RL R(d) = d (alpha - beta log d); R(0) = 0 (the limit d log d -> 0)."""
    if form == "bon":
        return d * (alpha - beta * d)
    if form == "rl":
        return 0.0 if d <= 0 else d * (alpha - beta * math.log(d))
    raise ValueError(f"unknown functional form {form!r}: expected 'bon' or 'rl'")


def gao_peak(alpha: float, beta: float, form: str) -> float | None:
    """The d at which the fitted curve is highest: dR/dd = 0 gives alpha / (2 beta) for best-of-N
    and exp(alpha / beta - 1) for RL; None when beta <= 0 (the curve never turns)."""
    if beta <= 0:
        return None
    return alpha / (2 * beta) if form == "bon" else math.exp(alpha / beta - 1)


def overoptimization(points: list[dict], form: str, fit: dict) -> str:
    """Proxy and gold reward against d = sqrt(KL): measured points and the fitted curves."""
    fig = Figure(figsize=(7.2, 3.9))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    ds = [math.sqrt(max(0.0, p["kl"])) for p in points]
    d_max = max(ds + [1e-6]) * 1.08
    gold_peak = gao_peak(fit["gold"]["alpha"], fit["gold"]["beta"], form) if "gold" in fit else None
    if gold_peak is not None and gold_peak < 3 * d_max:
        d_max = max(d_max, gold_peak * 1.15)
    grid = [d_max * i / 200 for i in range(201)]
    for name in ("proxy", "gold"):
        colour = COLOURS[name]
        ax.scatter(ds, [p[name] for p in points], color=colour, s=28, zorder=3, label=f"{name} (measured)")
        cis = [p.get(f"{name}_ci95") for p in points]
        if all(isinstance(c, (list, tuple)) and len(c) == 2 for c in cis):  # 95% CI as error bars
            ys = [p[name] for p in points]
            ax.errorbar(ds, ys, yerr=[[max(0.0, y - c[0]) for y, c in zip(ys, cis)], [max(0.0, c[1] - y) for y, c in zip(ys, cis)]],
                        fmt="none", ecolor=colour, elinewidth=1.2, capsize=3, alpha=0.7, zorder=2)
        if name in fit:
            a, b = fit[name]["alpha"], fit[name]["beta"]
            ax.plot(grid, [gao_curve(d, a, b, form) for d in grid], color=colour, linewidth=2,
                    label=f"{name} fit: α={a:.3g}, β={b:.3g}")
    if gold_peak is not None and gold_peak <= d_max:
        ax.axvline(gold_peak, color=COLOURS["gold"], linestyle=":", linewidth=1.3)
        ax.annotate(f"gold peaks at KL ≈ {gold_peak ** 2:.3g} nats", (gold_peak, ax.get_ylim()[1]),
                    xytext=(4, -12), textcoords="offset points", fontsize=8, color=COLOURS["gold"])
    ax.axhline(0, color=COLOURS["muted"], linewidth=0.8)
    what = "best-of-N: R(d) = d(α − βd)" if form == "bon" else "RL: R(d) = d(α − β log d)"
    ax.set_xlabel("d = √KL(policy ‖ reference)   [√nats]", fontsize=9, color=COLOURS["text"])
    ax.set_ylabel("reward − initial policy's", fontsize=9, color=COLOURS["text"])
    ax.set_title(f"over-optimisation, {what}", fontsize=10, loc="left", color=COLOURS["text"], fontweight="bold")
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return to_png(fig)


def forest(rows: list[tuple[str, float, float | None, float | None, str]], reference: float | None = 0.5,
           xlabel: str = "") -> str:
    """A forest plot: one row per (label, estimate, ci_lo, ci_hi, colour key), CI as a bar."""
    fig = Figure(figsize=(7.4, 0.42 * len(rows) + 0.8))
    ax = fig.add_subplot(1, 1, 1)
    _style(ax)
    ax.grid(False, axis="y")
    ys = list(range(len(rows)))[::-1]
    for y, (label, est, lo, hi, colour) in zip(ys, rows):
        c = COLOURS.get(colour, colour)
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [y, y], color=c, linewidth=2.5, solid_capstyle="round", alpha=0.55)
            text = f"{est:.3f} [{lo:.3f}, {hi:.3f}]"
        else:
            text = f"{est:.3f}"
        ax.scatter([est], [y], color=c, s=46, zorder=3)
        ax.annotate(text, (1.04, y), xycoords=("axes fraction", "data"), va="center", fontsize=8,
                    color=COLOURS["text"])
    if reference is not None:
        ax.axvline(reference, color=COLOURS["muted"], linestyle="--", linewidth=1)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=9)
    ax.set_xlim(-0.02, 1.02)  # a rate of exactly 0 or 1 stays visible
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(xlabel, fontsize=9, color=COLOURS["text"])
    fig.tight_layout()
    return to_png(fig)
