"""Ensembles: average the class probabilities of several finished runs' best models.

    python -m fer_exp.ensemble RUN_ID RUN_ID [RUN_ID ...] [--tta] [--tta-shift PIXELS]
    python -m fer_exp.ensemble --experiment fer2013 --recipe fer2013_small_cnn --top 3 --tta

Each member is evaluated on the validation split through its own run's config; the averaged
result is logged as a new MLflow run (see :mod:`fer_exp.runs.ensemble`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fer_exp.cli.common import parser, run_command
from fer_exp.config import TTA_MAX_SHIFT
from fer_exp.errors import UserError
from fer_exp.runs.ensemble import run_ensemble, top_runs
from fer_exp.tracking.store import default_tracking_uri, open_client


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.ensemble RUN_ID ... | --experiment NAME --top N``; returns the exit status."""
    p = parser(__doc__, "ensemble")
    p.add_argument("run_ids", nargs="*", help="MLflow run ids of finished runs")
    p.add_argument(
        "--experiment",
        help="with --top: pick the best runs of this experiment; "
        "also where the ensemble run is logged (default: the first member's)",
    )
    p.add_argument("--recipe", help="with --top: only runs of this experiment config (preset.experiment)")
    p.add_argument("--top", type=int, default=0, help="ensemble the N best finished runs of --experiment")
    p.add_argument("--tta", action="store_true", help="also average over horizontally flipped images")
    p.add_argument(
        "--tta-shift",
        type=int,
        default=0,
        choices=range(TTA_MAX_SHIFT + 1),
        metavar="PIXELS",
        help="with --tta: also over the images shifted this many pixels up, down, left, right",
    )
    p.add_argument("--tracking-uri", default=default_tracking_uri())
    p.add_argument("--out", type=Path, default=None, help="folder for the report and confusion matrix")
    args = p.parse_args(argv)

    def body() -> None:
        run_ids = list(args.run_ids)
        if args.top:
            if not args.experiment:
                raise UserError("--top needs --experiment NAME")
            client = open_client(args.tracking_uri)
            run_ids += top_runs(client, args.experiment, args.recipe, args.top)
        run_ensemble(args.tracking_uri, run_ids, args.tta, args.experiment, args.out, args.tta_shift)

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
