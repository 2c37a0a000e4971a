"""Export a trained model for deployment: LiteRT (``.tflite``) or a TensorFlow SavedModel.

    python -m fer_exp.export <run id> --format tflite            # export/model.tflite
    python -m fer_exp.export models:/fer@champion --format savedmodel --out deploy/fer
    python -m fer_exp.export path/to/best.keras --format tflite --out fer.tflite --images faces/

MODEL: a run id, runs:/<id>/model, models:/NAME@alias (or models:/NAME/VERSION), or a .keras
file of a run folder (its input_spec.json beside it). The export takes the model input that
input_spec.json describes (float32 (N, H, W, C), resized and standardized as the run's
validation images were) and returns class probabilities; input_spec.json is written beside it.
After writing, the exported model and the Keras model classify the same images (--images, or
synthetic faces) and the command fails, keeping nothing, if any class probability differs by
more than 1e-3. A model trained in bfloat16 exports to LiteRT in float32 (same weights).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fer_exp.cli.common import parser, run_command
from fer_exp.tracking.store import default_tracking_uri
from fer_exp.training.setup import filtered_stderr, quiet_tensorflow


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.export MODEL --format tflite|savedmodel [--out PATH]``; returns the exit status."""
    p = parser(__doc__, "export")
    p.add_argument("model", help="a run id, runs:/<id>/model, models:/NAME@alias, or a .keras file")
    p.add_argument("--format", required=True, choices=["tflite", "savedmodel"], dest="fmt")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="tflite: a .tflite file or a folder (default export/model.tflite); "
        "savedmodel: a folder (default export/saved_model)",
    )
    p.add_argument("--images", nargs="+", default=None, help="image files, folders or a CSV for the parity check")
    p.add_argument("--n-images", type=int, default=64, help="images the parity check uses (default 64)")
    p.add_argument("--tracking-uri", default=default_tracking_uri())
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converter's own messages")
    args = p.parse_args(argv)

    def body() -> None:
        from fer_exp.errors import UserError
        from fer_exp.inference.export import PARITY_LIMIT, export_model, output_path

        output_path(args.fmt, args.out)  # a bad --out fails before TensorFlow is imported
        if args.n_images < 1:
            raise UserError(f"--n-images must be 1 or more, got {args.n_images}")
        quiet_tensorflow(args.verbose)  # before load_predictor imports TensorFlow
        if not args.verbose:  # "Assets written to ...": the exporter's temporary SavedModel
            logging.getLogger("tensorflow").setLevel(logging.WARNING)
        from fer_exp.inference.loading import load_predictor

        images = None
        if args.images:
            from fer_exp.inference.inputs import expand

            frames = expand(args.images).frames()
            images = [frame.image for _, frame in zip(range(args.n_images), frames)]
        with filtered_stderr(args.verbose):  # the converter's and the GPU probe's C++ lines
            predictor = load_predictor(args.model, args.tracking_uri)
            done = export_model(predictor, args.fmt, args.out, images, n_images=args.n_images)
        print(f"written: {done.path} (and {done.spec_path.name} beside it)")
        print(
            f"parity on {done.images} images: max abs probability difference {done.max_abs_diff:.2e} "
            f"(limit {PARITY_LIMIT:g}) between the {done.format} model and the Keras model ({done.exported_precision})"
        )
        if done.half_vs_float32 is not None:
            print(
                f"the model was trained in {done.precision}; the export computes in float32: the float32 "
                f"Keras model differs from the {done.precision} one by {done.half_vs_float32:.2e} (rounding)"
            )

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
