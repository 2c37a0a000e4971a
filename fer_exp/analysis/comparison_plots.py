"""The comparison picture, with its noise: which setting helped, and how sure that is.

Panels, left to right: a forest plot of the settings (each setting's mean as a dot, its interval
as a line, the number of runs beside it; the axis spans the values, not zero: an interval plot
compares positions, not lengths), a forest plot of each setting's difference to the baseline
(a line at zero, coloured by verdict; omitted when there is one setting), and the learning
curves (per setting the mean over its runs at each epoch with a band of one standard deviation
where two or more runs reached that epoch). Rows and curves share one colour per setting.
The rows come from :func:`fer_exp.analysis.stats.compare_settings`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_exp.analysis.plots import integer_epochs, new_figure, save
from fer_exp.analysis.stats import IMAGES_ONLY, LEVEL

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

VERDICT_COLORS = {"better": "#2ca02c", "worse": "#d62728", "indistinguishable": "#7f7f7f"}
IMAGES_ONLY_NOTE = "one run per setting: intervals count image noise only, not seed noise"
EARLY_STOP_NOTE = "shorter runs stopped early: later epochs average the runs still training"
_PALETTE = "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf".split()  # tab10
_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D")]  # past ten settings the colours repeat, the styles not
_CURVE_NAMES = {"val_accuracy": "validation accuracy", "val_f1": "validation macro-F1", "val_loss": "validation loss"}
_COLUMN = 1.03  # where the text beside a forest panel's rows starts, in axes widths (right of the axes)
_FONT = 7.5


def short_labels(labels: Sequence[str], width: int = 26, lines: int = 2) -> dict[str, str]:
    """Readable labels for the settings: each ``a.b.key=value`` part keeps only its last key
    (``preset.augmentation=heavy`` reads ``augmentation=heavy``) unless two keys would then
    read alike, and is wrapped to ``lines`` lines of ``width`` characters, cut with ``…``.

    >>> short_labels(["preset.augmentation=heavy lr=0.01"], width=20)
    {'preset.augmentation=heavy lr=0.01': 'augmentation=heavy\\nlr=0.01'}
    """
    keys = {p.split("=", 1)[0] for label in labels for p in label.split() if "=" in p}
    last = {k: k.split(".")[-1] for k in keys}
    unique = len(set(last.values())) == len(keys)
    out = {}
    for label in labels:
        parts = [
            f"{last[p.split('=', 1)[0]]}={p.split('=', 1)[1]}" if "=" in p and unique else p for p in label.split()
        ]
        # broken at spaces only (a key cut in two reads as two words), each line cut to ``width``
        wrapped = textwrap.wrap(" ".join(parts) or label, width, break_long_words=False, break_on_hyphens=False)
        cut = len(wrapped) > lines
        wrapped = [w if len(w) <= width else w[: width - 1] + "…" for w in (wrapped or [label])[:lines]]
        if cut and not wrapped[-1].endswith("…"):
            wrapped[-1] = wrapped[-1][: width - 1] + "…"
        out[label] = "\n".join(wrapped)
    return out


def style_of(index: int) -> tuple[str, str, str]:
    """The colour, line style and marker of the ``index``-th setting: ten colours, then the
    same colours with another line style and marker."""
    linestyle, marker = _STYLES[(index // len(_PALETTE)) % len(_STYLES)]
    return _PALETTE[index % len(_PALETTE)], linestyle, marker


def comparison_figure(
    groups: list[dict],
    differences: list[dict],
    histories: dict[str, list[list[tuple[int, float]]]],
    metric: str,
    curves: str = "val_accuracy",
    baseline: str | None = None,
    title: str | None = None,
) -> Figure:
    """The comparison picture: the settings' intervals, their differences to the baseline and
    their mean learning curves (see the module's docstring).

    Args:
        groups: one row per setting, as ``compare_settings`` makes them: ``group``, ``n``,
            ``mean``, ``std``, ``ci_low``, ``ci_high`` (NaN: no interval), ``noise``.
        differences: one row per setting but the baseline: ``group``, ``baseline``,
            ``difference``, ``ci_low``, ``ci_high``, ``p_adjusted``, ``p_improvement``,
            ``verdict``, ``noise``; empty for one setting (the panel is then left out).
        histories: setting -> one list per run of ``(epoch, value of curves)`` pairs.
        metric: the metric of the intervals.
        curves: the per-epoch metric of the learning curves.
        baseline: the setting the differences are taken to; by default the differences' own.
        title: the figure's title; by default the metric, the interval's level and the seeds.
    """
    if baseline is None and differences:
        baseline = differences[0]["baseline"]
    rows = sorted(groups, key=lambda g: g["group"] != baseline)  # the baseline first, else as given
    names = [g["group"] for g in rows]
    labels = short_labels(names)
    styles = {name: style_of(i) for i, name in enumerate(names)}
    panels = 3 if differences else 2
    height = max(4.2, 0.5 * len(rows) + 2.4)
    fig = new_figure(figsize=(4.7 * (panels - 1) + 6.3, height), layout="constrained")
    axes = fig.subplots(1, panels, width_ratios=[1] * (panels - 1) + [1.25])
    _settings_panel(axes[0], rows, labels, styles, metric, baseline)
    if differences:
        axes[1].sharey(axes[0])
        _differences_panel(axes[1], rows, differences, metric, labels.get(baseline, baseline))
    _curves_panel(axes[-1], names, labels, styles, histories, curves)
    if title is None:
        counts = sorted({int(g["n"]) for g in rows})
        seeds = f"{counts[0]} seed{'s' * (counts[0] != 1)}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]} seeds"
        title = f"{metric}: mean and {LEVEL:.0%} interval per setting ({seeds})".replace("%", " %")
    fig.suptitle(title, fontsize=11)
    return fig


def comparison_png(
    groups: list[dict],
    differences: list[dict],
    histories: dict[str, list[list[tuple[int, float]]]],
    metric: str,
    path: Path,
    curves: str = "val_accuracy",
    baseline: str | None = None,
    title: str | None = None,
) -> Path:
    """:func:`comparison_figure`, written to ``path``."""
    return save(comparison_figure(groups, differences, histories, metric, curves, baseline, title), path)


def _finite(*values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _interval(row: Mapping) -> tuple[float, float] | None:
    low, high = _finite(row.get("ci_low")), _finite(row.get("ci_high"))
    return (low[0], high[0]) if low and high else None


def _fit(ax: Axes, values: list[float]) -> None:
    """An x axis around ``values`` (not from zero: the intervals' positions are compared)."""
    from matplotlib.ticker import MaxNLocator

    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.08 * (hi - lo) or max(abs(hi) * 0.01, 0.005)
    ax.set_xlim(lo - pad, hi + pad)
    ax.spines[["top", "right"]].set_visible(False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # a narrow panel: few ticks, no labels run together


def _column_text(ax: Axes, y: float, text: str, color: str = "0.15") -> None:
    """``text`` right of the axes at row ``y`` (constrained layout makes room for it)."""
    ax.text(_COLUMN, y, text, transform=ax.get_yaxis_transform(), va="center", fontsize=_FONT, color=color)


def _rows_axis(ax: Axes, n: int) -> None:
    ax.set_ylim(n - 0.5, -0.5)  # the first row (the baseline) on top
    for y in range(1, n, 2):  # every other row shaded: a row reads across both forest panels
        ax.axhspan(y - 0.5, y + 0.5, color="0.94", zorder=0, lw=0)


def _settings_panel(ax: Axes, rows, labels, styles, metric: str, baseline: str | None) -> None:
    """Panel 1: each setting's mean (dot) and interval (line), ``n`` and the mean beside them."""
    _rows_axis(ax, len(rows))
    values = []
    for y, row in enumerate(rows):
        name, color, marker = row["group"], styles[row["group"]][0], styles[row["group"]][2]
        interval = _interval(row)
        if interval:
            ax.plot(interval, [y, y], color=color, lw=2.2, marker="|", ms=9, gid=f"interval:{name}")
            values.extend(interval)
        ax.plot([row["mean"]], [y], marker=marker, color=color, ms=7, mec="white", zorder=3, gid=f"mean:{name}")
        values.extend(_finite(row["mean"]))
        text = f"{row['mean']:.3f}  n={int(row['n'])}" + ("" if interval else "\nno interval")
        _column_text(ax, y, text)
    ticks = [labels[r["group"]] + ("\n(baseline)" if r["group"] == baseline else "") for r in rows]
    ax.set_yticks(range(len(rows)), ticks, fontsize=8)
    base = [r for r in rows if r["group"] == baseline]
    if base and _finite(base[0]["mean"]):
        ax.axvline(base[0]["mean"], color="0.5", lw=0.8, ls=":", zorder=1, gid="baseline-mean")
    _fit(ax, values)
    noises = {r.get("noise") for r in rows}
    ax.set_xlabel(metric + (f"\nintervals count: {noises.pop()}" if len(noises) == 1 else ""), fontsize=8.5)
    ax.set_title(f"per setting: mean and {LEVEL:.0%} interval".replace("%", " %"), fontsize=9.5)
    ax.tick_params(axis="x", labelsize=8)


def _differences_panel(ax: Axes, rows, differences, metric: str, baseline_label: str | None) -> None:
    """Panel 2: each setting's difference to the baseline, coloured by verdict, at the row of
    panel 1 that shows the setting."""
    ax.tick_params(axis="y", left=False, labelleft=False)
    _rows_axis(ax, len(rows))
    where = {r["group"]: y for y, r in enumerate(rows)}
    counts = {r["group"]: int(r["n"]) for r in rows}
    values = [0.0]
    for d in differences:
        y = where.get(d["group"])
        if y is None:
            continue
        color = VERDICT_COLORS.get(d["verdict"], VERDICT_COLORS["indistinguishable"])
        interval = _interval(d)
        if interval:
            ax.plot(interval, [y, y], color=color, lw=2.2, marker="|", ms=9, gid=f"difference:{d['group']}")
            values.extend(interval)
        ax.plot([d["difference"]], [y], "o", color=color, ms=6.5, mec="white", zorder=3, gid=f"dot:{d['group']}")
        values.extend(_finite(d["difference"]))
        p = _finite(d.get("p_improvement"))
        text = f"{d['verdict']}  {d['difference']:+.3f}"
        if p:  # of one run against one, P(better) is only the sign of the difference: say how many runs
            k, k_base = counts.get(d["group"], 0), counts.get(d["baseline"], 0)
            text += f"\nP(better)={p[0]:.2f}" + (f" (runs: {k} vs {k_base})" if min(k, k_base) < 2 else "")
        _column_text(ax, y, text + ("" if interval else "\nno interval"), color=color)
    for name, y in where.items():
        if name not in {d["group"] for d in differences}:
            _column_text(ax, y, "baseline" if name == differences[0]["baseline"] else "–", color="0.4")
    ax.axvline(0, color="0.2", lw=1, zorder=1, gid="zero")
    _fit(ax, values)
    xlabel = f"difference in {metric} to the baseline"
    if len(differences) > 1:  # an interval clear of zero can still be "indistinguishable"
        xlabel += f"\nverdicts corrected for {len(differences)} comparisons (Holm), intervals not"
    ax.set_xlabel(xlabel, fontsize=8.5)
    base = (baseline_label or "").replace("\n", " ")
    ax.set_title(f"difference to {base}" if len(base) < 30 else "difference to the baseline", fontsize=9.5)
    ax.tick_params(axis="x", labelsize=8)
    if all(d.get("noise") == IMAGES_ONLY for d in differences):
        ax.annotate(
            "\n".join(textwrap.wrap(IMAGES_ONLY_NOTE, 44)),
            xy=(0.5, 0),
            xycoords=ax.xaxis.label,  # below the x label, however many lines it has
            xytext=(0, -6),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            color="#8a4b00",
            bbox={"boxstyle": "round,pad=0.35", "fc": "#fff4e0", "ec": "#e0a040"},
            gid="images-only-note",
        )


def mean_curve(runs: Sequence[Sequence[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs' mean at each epoch any of them reached, their standard deviation there (NaN
    where fewer than two runs reached it) and how many runs did: ``(epochs, mean, std, n)``.

    >>> [np.round(a, 3).tolist() for a in mean_curve([[(1, 0.2), (2, 0.4)], [(1, 0.4)]])]
    [[1, 2], [0.3, 0.4], [0.141, nan], [2, 1]]
    """
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for epoch, value in run:
            if value is not None and math.isfinite(value):
                by_epoch.setdefault(int(epoch), []).append(float(value))
    epochs = sorted(by_epoch)
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    std = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else np.nan for e in epochs])
    return np.array(epochs, dtype=int), mean, std, np.array([len(by_epoch[e]) for e in epochs], dtype=int)


def _curves_panel(ax: Axes, names, labels, styles, histories, curves: str) -> None:
    """Panel 3: each setting's mean curve with a band of ± one standard deviation over its runs."""
    ragged = banded = False
    most = 0  # the most runs of a setting
    many = len(names) > 6  # lighter bands and no markers, or a dozen settings are a tangle
    for name in names:
        runs = [run for run in histories.get(name, []) if run]
        if not runs:
            continue
        epochs, mean, std, n = mean_curve(runs)
        color, linestyle, marker = styles[name]
        label = labels[name].replace("\n", " ")
        style = {"marker": None if many else marker, "lw": 1.4 if many else 1.6}
        ax.plot(epochs, mean, ls=linestyle, ms=3, color=color, label=label, gid=f"curve:{name}", **style)
        several = n >= 2
        if several.any():
            band = {"where": several, "color": color, "alpha": 0.08 if many else 0.18, "lw": 0, "gid": f"band:{name}"}
            ax.fill_between(epochs, mean - std, mean + std, **band)
            banded = True
        ragged = ragged or len({len(run) for run in runs}) > 1
        most = max(most, len(runs))
    integer_epochs(ax)
    ax.set_ylabel(f"{curves} (mean over the runs at each epoch)", fontsize=8.5)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    what = _CURVE_NAMES.get(curves, curves)
    lines = [f"{what}: mean ± 1 std over the runs" if banded else f"{what}, one run per setting" if most == 1 else what]
    if ragged:
        lines.append(EARLY_STOP_NOTE)
    ax.set_title("\n".join(lines), fontsize=9.5 if len(lines) == 1 else 8.5)
    if ax.lines:
        ax.legend(fontsize=_FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
