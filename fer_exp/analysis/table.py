"""The comparison's words: each column of the table formatted alike, the Markdown table, and
each run's short label (:mod:`fer_exp.analysis.compare` draws and writes them)."""

from __future__ import annotations

import re
from typing import Any

# Columns whose numbers are not 0..1 scores: each is formatted its own way in the Markdown
# table (the CSV keeps the raw numbers).
_COUNTS = ("epochs", "epochs_run", "best_epoch")
_SECONDS = ("train_time_s", "wall_time_s")
_DECIMAL = re.compile(r"-?\d+(?:\.(\d+))?")  # 20, 0.25; not 1e-4, null or [0.6, 1.4]


def duration(seconds: float, longest: float) -> str:
    """``seconds`` in the unit ``longest`` (the column's largest value) calls for, so that a
    column reads in one unit: ``8.4 s`` below a minute, else ``m:ss``, else ``h:mm:ss``.

    >>> [duration(s, 75) for s in (8.3873, 11, 75)]
    ['0:08', '0:11', '1:15']
    >>> duration(8.3873, 11), duration(3725, 3725)
    ('8.4 s', '1:02:05')
    """
    if longest < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if longest >= 3600 else f"{whole // 60}:{whole % 60:02d}"


def format_column(name: str, values: list[Any]) -> list[str]:
    """The cells of one table column, formatted alike: counts as integers, times as
    :func:`duration` s, other numbers (scores) with 4 decimals; params (text) as logged, but a
    column of plain decimals gets one number of decimals; missing values are empty.

    >>> format_column("augmentation.zoom_range", ["0.0", "0.25", "", "0.2"])
    ['0.00', '0.25', '', '0.20']
    >>> format_column("optimizer.learning_rate", ["0.00915226100278092", "0.0001316302763942842"])
    ['0.00915', '0.000132']
    """
    is_number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    numbers = [v for v in values if is_number(v)]
    texts = [v for v in values if isinstance(v, str) and v]  # "": a run without that param
    if texts and not numbers and all(_DECIMAL.fullmatch(t) for t in texts):
        if any(0 < abs(float(t)) < 0.01 for t in texts):  # a learning rate: 0.000132, not 0.0001
            return [f"{float(v):.3g}" if v else "" for v in values]
        places = min(4, max(len(_DECIMAL.fullmatch(t)[1] or "") for t in texts))  # a sampled 0.0715348...: 4
        return [f"{float(v):.{places}f}" if v else "" for v in values]
    if name in _SECONDS and numbers:
        longest = max(numbers)
        fmt = lambda v: duration(v, longest)  # noqa: E731
    elif name in _COUNTS:
        fmt = lambda v: f"{v:.0f}"  # noqa: E731
    else:
        fmt = lambda v: f"{v:.4f}"  # noqa: E731
    return ["" if v is None else fmt(v) if is_number(v) else str(v) for v in values]


def _header(name: str) -> str:
    return {"train_time_s": "train time", "wall_time_s": "wall time"}.get(name, name)


def markdown_table(rows, columns) -> str:
    """The comparison as a Markdown table: every column formatted alike (:func:`format_column`),
    overrides without those every run shares."""
    shown = [c for c in columns if c not in ("run_id", "run")]  # overrides name the run better
    cells = {c: format_column(c, [row[c] for row in rows]) for c in shown}
    if "overrides" in cells:  # what differs, numbers to 3 digits: an Optuna trial's 0.07153483373759487 reads 0.0715
        shared = shared_overrides(rows)
        cells["overrides"] = [
            " ".join(
                o if "=" not in o else f"{o.split('=', 1)[0]}={_short(o.split('=', 1)[1])}"
                for o in cell.split()
                if o not in shared
            )
            for cell in (row["overrides"] for row in rows)
        ]
    lines = ["| " + " | ".join(_header(c) for c in shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cells[c][i] for c in shown) + " |" for i in range(len(rows))]
    return "\n".join(lines) + "\n"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3g}"


def shared_overrides(rows) -> set[str]:
    """Overrides every run was given: they say nothing about what differs."""
    sets = [set(row["overrides"].split()) for row in rows]
    return set.intersection(*sets) if len(sets) > 1 else set()


def run_label(row, params, shared: set[str] = frozenset()) -> str:
    """What was varied, compactly: an Optuna trial's run name (``#3 rot=10 lr=0.0012``), else
    the job's own overrides, else the differing params."""
    if (row["run"] or "").startswith("#"):
        return row["run"] if len(row["run"]) < 70 else row["run"][:67] + "..."
    pairs = [
        o.split("=", 1)
        for o in row["overrides"].split()
        if "=" in o and o not in shared and not o.startswith(("debug=", "hydra"))
    ]
    if not pairs:
        pairs = [(p, str(row[p])) for p in params]
    text = ", ".join(f"{k.lstrip('+~').split('.')[-1]}={_short(v)}" for k, v in pairs) or row["run"]
    prefix = f"#{row['job']} " if row["job"] != "" else ""
    text = prefix + text
    return text if len(text) < 70 else text[:67] + "..."
