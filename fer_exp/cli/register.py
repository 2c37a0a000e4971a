"""Register a model: the best run of a sweep, an experiment or a study (or one run, or an
ensemble) as a new version of a registered MLflow model, with an alias on it.

    python -m fer_exp.register fer                                  # the best run of the latest sweep
    python -m fer_exp.register fer --experiment fer2013 --metric val_macro_f1
    python -m fer_exp.register fer --sweep multirun/2026-01-01/10-00-00   # a sweep folder, or its parent run id
    python -m fer_exp.register fer --run 0123456789abcdef0123456789abcdef --alias challenger
    python -m fer_exp.register fer --ensemble RUN_ID,RUN_ID,RUN_ID

The version's description names the run and its metric; the alias (default ``champion``)
moves to it, so ``models:/fer@champion`` loads the newest champion
(``mlflow models serve -m models:/fer@champion``, ``fer_exp.inference.loading.load_predictor``).
The best run is the finished training run with the highest ``--metric`` (the lowest, for a
metric named ``*loss*``) that logged an MLflow Model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_exp.analysis.compare import select_runs
from fer_exp.cli.common import parser, run_command
from fer_exp.errors import UserError
from fer_exp.runs.ensemble import log_ensemble_model
from fer_exp.runs.sweep import read_sweep
from fer_exp.serving.registry import register_run_model
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import default_tracking_uri, open_client


def best_run(client, runs: list, metric: str, where: str):
    """The finished training run of ``runs`` with the best ``metric`` that logged an MLflow
    Model (ensemble evaluations and sweep parents, which hold none, left out)."""
    candidates = [
        r
        for r in runs
        if r.info.status == "FINISHED"
        and metric in r.data.metrics
        and r.data.tags.get("fer_exp.kind") not in ("ensemble",)
        and r.data.tags.get("fer_exp.sweep_role") != "parent"
    ]
    if not candidates:
        raise UserError(f"{where} has no finished run with the metric {metric!r}: pass another --metric")
    lower = "loss" in metric
    for run in sorted(candidates, key=lambda r: r.data.metrics[metric], reverse=not lower):
        if any(a.path == "model/MLmodel" for a in client.list_artifacts(run.info.run_id, "model")):
            return run
    raise UserError(f"{where}: no finished run with {metric!r} logged an MLflow Model (model/MLmodel)")


def sweep_parent(sweep: str) -> str:
    """A sweep's parent run id, from its folder (``.fer_exp_sweep.json``) or as given."""
    if Path(sweep).is_dir():
        info = read_sweep(sweep)
        if info is None:
            raise UserError(f"--sweep {sweep}: not a sweep folder (no .fer_exp_sweep.json in it)")
        return info["parent_run_id"]
    return sweep


def _run(client, run_id: str, uri: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise UserError(f"--run {run_id}: no such MLflow run at {redact_text(uri)}") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.register NAME [--run | --sweep | --experiment | --study | --ensemble ...]``;
    returns the exit status."""
    p = parser(__doc__, "register")
    p.add_argument("name", help="the registered model's name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--run", help="register this run's model")
    which.add_argument("--sweep", help="the best run of this sweep (its folder or parent run id)")
    which.add_argument("--experiment", help="the best run of this experiment")
    which.add_argument("--study", help="the best trial of this Optuna study's latest sweep")
    which.add_argument("--ensemble", help="comma-separated run ids: one model averaging their probabilities")
    p.add_argument("--metric", default="best_val_accuracy", help="what 'best' means (default: best_val_accuracy)")
    p.add_argument("--alias", default="champion", help="the alias moved to the new version (default: champion)")
    p.add_argument("--tracking-uri", default=default_tracking_uri())
    args = p.parse_args(argv)

    def body() -> None:
        uri = args.tracking_uri
        client = open_client(uri)
        if args.ensemble:
            ids = [i.strip() for i in args.ensemble.split(",") if i.strip()]
            run_id = log_ensemble_model(uri, ids)
            description = f"ensemble of runs {', '.join(ids)} (probabilities averaged); model in run {run_id}"
        elif args.run:
            run_id = args.run
            value = _run(client, run_id, uri).data.metrics.get(args.metric)
            shown = f"{args.metric}={value:.4f}" if value is not None else f"no {args.metric}"
            description = f"run {run_id} ({shown})"
        else:
            runs, parent = select_runs(
                client, args.experiment, sweep_parent(args.sweep) if args.sweep else None, args.study
            )
            where = f"sweep {parent}" if parent else f"experiment {args.experiment!r}"
            best = best_run(client, runs, args.metric, where)
            run_id = best.info.run_id
            description = (
                f"best of {where} by {args.metric}: {best.data.metrics[args.metric]:.4f} "
                f"(of {len(runs)} runs), run {run_id}"
            )
        version = register_run_model(uri, run_id, args.name, args.alias, description)
        ref = f"models:/{args.name}@{args.alias}" if args.alias else f"models:/{args.name}/{version.version}"
        print(
            f"registered {args.name} version {version.version}"
            + (f" (alias @{args.alias})" if args.alias else "")
            + f": {description}\n  load it: {ref} "
            f"at {redact_text(uri)}"
        )

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
