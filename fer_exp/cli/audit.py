"""Audit a dataset before training on it.

    python -m fer_exp.audit data=fer2013 data.root=../shared/data/fer2013
    python -m fer_exp.audit data=fer2013_csv data.path=fer2013.csv --out audit/ --per-class 10

Prints counts per class and split, the class weights training will use, image size and mode
statistics, exact duplicates within and across splits and unreadable files by path; writes
``audit.json`` and ``class_samples.png`` (the first images of every class).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fer_exp.analysis.plots import class_grid_png
from fer_exp.cli.common import parser, run_command
from fer_exp.config import compose
from fer_exp.data.audit import audit, render
from fer_exp.data.sources import load_splits


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.audit [overrides] [--out DIR] [--per-class N]``; returns the exit status."""
    p = parser(__doc__, "audit")
    p.add_argument("overrides", nargs="*", help="config overrides, as for python -m fer_exp")
    p.add_argument("--out", type=Path, default=Path("audit"), help="where audit.json and the PNG go")
    p.add_argument("--per-class", type=int, default=8, help="images per class in class_samples.png")
    args = p.parse_args(argv)

    def body() -> None:
        cfg = compose(args.overrides)
        splits = load_splits(cfg.data)
        report = audit(splits, cfg.class_weight, cfg.data.dedupe)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "audit.json").write_text(json.dumps(report, indent=1))
        png = class_grid_png(splits, args.out / "class_samples.png", args.per_class)
        print(render(report))
        print(f"\nwritten: {args.out / 'audit.json'}, {png}")

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
