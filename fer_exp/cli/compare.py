"""Compare runs: which setting helped, and how sure is that? Tables (CSV + Markdown) and a picture.

    python -m fer_exp.compare                         # the latest sweep in ./mlflow.db
    python -m fer_exp.compare --sweep <parent run id> --baseline none
    python -m fer_exp.compare --study fer2013_augmentation_study   # an Optuna study's trials
    python -m fer_exp.compare --experiment fer2013 --by augmentation --metric val_macro_f1 --out reports/
    python -m fer_exp.compare --runs <run id> <run id> ...          # any finished runs
    python -m fer_exp.compare --curves val_f1         # each run's macro-F1 per epoch in the picture

One row per run in comparison.csv/.md: the params that differ between the runs, the chosen
metric, best validation accuracy, validation macro-F1, F1 of the rarest class, epochs run,
training and wall time. The runs grouped by setting over seeds (every differing param but the
seed, or --by one param): groups.csv (each setting's mean with its 95 % interval) and
differences.csv (each setting against the baseline, the first job's setting unless --baseline
names one: the difference with its interval, P(better), and a verdict corrected for the number
of settings). The printed summary says which settings differ and which cannot be told apart.
For a sweep the files, metrics and verdicts go to its MLflow parent run; for other runs to a
new run tagged fer_exp.sweep_role=comparison. For an Optuna
study (``-m hparams_search=optuna``), Optuna's pictures too: optimization history, parameter
importances, the per-epoch values the pruner saw and, for two objectives, the Pareto front
(the study is read from its storage: ``--storage`` when its URL holds a password).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fer_exp.analysis.compare import compare_runs, comparison_run, record_comparison, select_runs
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
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN_ID", help="compare these finished runs")
    p.add_argument("--metric", default="best_val_accuracy")
    p.add_argument("--baseline", default=None, help="the setting the others are compared with (default: job 0's)")
    p.add_argument("--by", default=None, metavar="KEY", help="group by this param (default: every one but the seed)")
    p.add_argument(
        "--curves",
        default="val_accuracy",
        choices=MONITORS,
        help="the per-epoch metric the picture draws for every run (val_f1: macro-F1)",
    )
    p.add_argument("--out", type=Path, default=Path("comparison"))
    args = p.parse_args(argv)

    def body() -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per run's predictions
        client = open_client(args.tracking_uri)
        runs, parent = select_runs(client, args.experiment, args.sweep, args.study, args.runs)
        report = compare_runs(client, runs, args.metric, args.out, args.curves, args.baseline, args.by)
        if parent:
            report.files += parent_study_plots(client, parent, args.out, args.storage)
        target = parent or comparison_run(client, runs)
        log_files(client, target, report.files, "comparison")
        record_comparison(client, target, report.grouped)
        if not parent:
            client.set_terminated(target)
        print(report.markdown)
        print(f"\n{report.summary}\n")
        role = "parent" if parent else "comparison"
        print(f"written: {', '.join(str(p) for p in report.files)}; logged to {role} run {target}")

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
