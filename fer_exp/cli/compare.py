"""Compare runs: which setting helped? A table (CSV + Markdown) and a picture.

    python -m fer_exp.compare                         # the latest sweep in ./mlflow.db
    python -m fer_exp.compare --sweep <parent run id>
    python -m fer_exp.compare --study fer2013_augmentation_study   # an Optuna study's trials
    python -m fer_exp.compare --experiment fer2013 --metric val_macro_f1 --out reports/
    python -m fer_exp.compare --curves val_f1         # each run's macro-F1 per epoch in the picture

One row per run: the params that differ between the runs, the chosen metric, best validation
accuracy, validation macro-F1, F1 of the rarest class, epochs run, training and wall time; the
printed table gives each column one format (scores with 4 decimals, epochs whole, times in
one unit). For a sweep, the files are also logged to its MLflow parent run. For an Optuna
study (``-m hparams_search=optuna``), Optuna's pictures too: optimization history, parameter
importances, the per-epoch values the pruner saw and, for two objectives, the Pareto front
(the study is read from its storage: ``--storage`` when its URL holds a password).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_exp.analysis.compare import compare_runs, select_runs
from fer_exp.analysis.study_plots import parent_study_plots
from fer_exp.cli.common import parser, run_command
from fer_exp.tracking.store import default_tracking_uri, log_files, open_client
from fer_exp.training.monitors import MONITORS


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.compare [--sweep ID | --experiment NAME] ...``; returns the exit status."""
    p = parser(__doc__, "compare")
    p.add_argument("--tracking-uri", default=default_tracking_uri())
    p.add_argument("--experiment", default=None, help="compare every finished run of this experiment")
    p.add_argument("--sweep", default=None, help="a sweep's parent run id (default: the latest sweep)")
    p.add_argument("--study", default=None, help="an Optuna study's name: its latest sweep")
    p.add_argument("--storage", default=None, help="the study's Optuna storage URL (default: the one it ran with)")
    p.add_argument("--metric", default="best_val_accuracy")
    p.add_argument(
        "--curves",
        default="val_accuracy",
        choices=MONITORS,
        help="the per-epoch metric the picture draws for every run (val_f1: macro-F1)",
    )
    p.add_argument("--out", type=Path, default=Path("comparison"))
    args = p.parse_args(argv)

    def body() -> None:
        client = open_client(args.tracking_uri)
        runs, parent = select_runs(client, args.experiment, args.sweep, args.study)
        report = compare_runs(client, runs, args.metric, args.out, args.curves)
        if parent:
            report.files += parent_study_plots(client, parent, args.out, args.storage)
            log_files(client, parent, report.files, "comparison")
        print(report.markdown)
        print(
            f"written: {', '.join(str(p) for p in report.files)}"
            + (f"; logged to parent run {parent}" if parent else "")
        )

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
