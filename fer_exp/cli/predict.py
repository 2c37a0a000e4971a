"""Apply a trained model to your own photos, folders, videos or a Kaggle test.csv.

    python -m fer_exp.predict <run id> photo.jpg               # faces found, boxed and labelled
    python -m fer_exp.predict models:/fer@champion photos/     # a folder, recursively
    python -m fer_exp.predict runs:/<run id>/model clip.mp4 --every 10
    python -m fer_exp.predict path/to/best.keras crops/ --no-detect --tta
    python -m fer_exp.predict <run id> test.csv                # Kaggle's: a pixels column, 48x48 faces

MODEL: a run id, runs:/<id>/model, models:/NAME@alias (or models:/NAME/VERSION), or a .keras
file of a run folder (its input_spec.json beside it). Faces are found with OpenCV's Haar cascade
and cropped as FER-2013's faces were; an image already at the model's size is a face, used whole
(as is every image with --no-detect). Written to --out: predictions.csv and predictions.json (one
row per face: file, frame, face box x,y,w,h, label, confidence, the probability of each class;
images without a face and skipped files as rows of their own), annotated/ (each photo or video
frame the detector looked at, faces boxed and labelled) and grid_*.png (the faces of each folder,
CSV or video with their labels). An unreadable file is an error when it is the only input, else
it is skipped and listed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from fer_exp.cli.common import parser, run_command
from fer_exp.tracking.redact import redact_text
from fer_exp.tracking.store import default_tracking_uri
from fer_exp.training.setup import filtered_stderr, quiet_tensorflow

GRID_FACES = 64  # faces shown in one grid: enough to see a folder's mix, small enough to read
LISTED = 20  # faces (and problems) printed one per line; beyond, only counts


class Outputs:
    """Writes what ``predict`` finds as it goes: CSV rows at once, pictures per image, and the
    JSON and grids at the end."""

    def __init__(self, out: Path, class_names, model: str, options: dict, pictures: int) -> None:
        self.out, self.class_names, self.pictures = out, list(class_names), pictures
        out.mkdir(parents=True, exist_ok=True)
        self.summary = {"model": model, "class_names": self.class_names, "options": options}
        self.records: list[dict] = []
        self.grids: dict[str, list] = {}
        self.annotated: list[Path] = []
        self.names: set[str] = set()
        self._file = open(out / "predictions.csv", "w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(
            ["file", "frame", "face", "status", "x", "y", "w", "h", "label", "confidence", *self.class_names, "note"]
        )

    def add(self, result) -> None:
        """One image's faces (or its lack of one) as rows, its annotated picture, its grid faces."""
        frame = result.frame
        if not result.faces:
            self._row(frame.file, frame.frame, None, "no_face", note="no face found")
        for i, face in enumerate(result.faces):
            box = face.box or _whole(frame.image)
            label = int(face.probs.argmax())
            self._row(frame.file, frame.frame, i, "ok", (box.x, box.y, box.w, box.h), label, face.probs)
            # one grid per folder, CSV or video argument; loose image files share one
            group = frame.folder or (frame.file if frame.frame is not None else "")
            grid = self.grids.setdefault(group, {"shown": [], "total": 0, "whole": False})
            grid["total"] += 1
            grid["whole"] |= face.box is None
            if len(grid["shown"]) < GRID_FACES:
                caption = (
                    f"{'row' if frame.file.endswith('.csv') else 'frame'} {frame.frame}"
                    if frame.frame is not None
                    else Path(frame.file).name
                )
                grid["shown"].append((face.image, label, float(face.probs[label]), caption))
        if result.detected and len(self.annotated) < self.pictures:
            self._annotate(result)

    def skipped(self, path: str, reason: str) -> None:
        """A file that could not be read, as a row saying why."""
        self._row(path, None, None, "skipped", note=reason)

    def _row(self, file, frame, face, status, box=None, label=None, probs=None, note="") -> None:
        probs_text = [f"{p:.6f}" for p in probs] if probs is not None else [""] * len(self.class_names)
        name = self.class_names[label] if label is not None else ""
        confidence = f"{probs[label]:.6f}" if probs is not None else ""
        self._csv.writerow(
            [file, _blank(frame), _blank(face), status, *(box or ("",) * 4), name, confidence, *probs_text, note]
        )
        record = {"file": file, "frame": frame, "face": face, "status": status}
        if probs is not None:
            record |= {"box": list(box), "label": name, "confidence": float(probs[label])}
            record["probabilities"] = {c: float(p) for c, p in zip(self.class_names, probs)}
        elif note:
            record["note"] = note
        self.records.append(record)

    def _annotate(self, result) -> None:
        from fer_exp.inference.annotate import annotate_photo

        frame = result.frame
        stem = _safe(Path(frame.file).stem) + (f"_frame{frame.frame:06d}" if frame.frame is not None else "")
        name, n = stem, 1
        while name in self.names:  # the same file name in two folders
            n += 1
            name = f"{stem}_{n}"
        self.names.add(name)
        labels = [int(f.probs.argmax()) for f in result.faces]
        self.annotated.append(
            annotate_photo(
                frame.image,
                [(f.box.x, f.box.y, f.box.w, f.box.h) for f in result.faces],
                labels,
                [float(f.probs[k]) for f, k in zip(result.faces, labels)],
                self.class_names,
                self.out / "annotated" / f"{name}.png",
                note=None if result.faces else "no face found",
            )
        )

    def close(self) -> list[Path]:
        """Finish the CSV, write the JSON and the grids; returns every file written."""
        from fer_exp.inference.annotate import face_grid_png

        self._file.close()
        written = [self.out / "predictions.csv", self.out / "predictions.json"]
        faces = [r for r in self.records if r["status"] == "ok"]
        self.summary["counts"] = dict(Counter(r["label"] for r in faces))
        self.summary["predictions"] = self.records
        (self.out / "predictions.json").write_text(json.dumps(self.summary, indent=1))
        for group, grid in self.grids.items():
            if not group and not grid["whole"]:  # loose photos: their annotated pictures show them
                continue
            name = Path(group).stem if Path(group).is_file() else Path(group).name or "faces"
            shown, total = grid["shown"], grid["total"]
            title = f"{name}: {f'first {len(shown)} of ' if total > len(shown) else ''}{total} face(s)"
            images, labels, confidences, captions = zip(*shown)
            path = _unique(self.out / f"grid_{_safe(name)}.png", written)
            written.append(face_grid_png(images, labels, confidences, captions, self.class_names, path, title))
        return written + self.annotated


def _blank(value):
    return "" if value is None else value


def _whole(image):
    from fer_exp.inference.faces import Box

    return Box(0, 0, image.shape[1], image.shape[0])


def _unique(path: Path, taken: list[Path]) -> Path:
    n, candidate = 1, path
    while candidate in taken:  # two folders of the same name
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name) or "input"


def _report(outputs: Outputs, written: list[Path]) -> None:
    records = outputs.records
    faces = [r for r in records if r["status"] == "ok"]
    images = {(r["file"], r["frame"]) for r in records if r["status"] != "skipped"}
    missing = [r for r in records if r["status"] == "no_face"]
    skipped = [r for r in records if r["status"] == "skipped"]
    print(f"{len(images)} image(s): {len(faces)} face(s), {len(missing)} without a face, {len(skipped)} skipped")
    if len(faces) <= LISTED:
        for r in faces:
            where = r["file"] + (f" frame {r['frame']}" if r["frame"] is not None else "")
            print(f"  {where} face {r['face']} at {tuple(r['box'])}: {r['label']} {r['confidence']:.2f}")
    else:
        counts = Counter(r["label"] for r in faces)
        print("  " + ", ".join(f"{c} {counts[c]}" for c in outputs.class_names if counts[c]))
    for title, rows in (("no face found", missing), ("skipped", skipped)):
        for r in rows[:LISTED]:
            where = r["file"] + (f" frame {r['frame']}" if r["frame"] is not None else "")
            print(f"  {title}: {where}" + (f" ({r['note']})" if title == "skipped" else ""))
        if len(rows) > LISTED:
            print(f"  {title}: ... {len(rows) - LISTED} more in predictions.csv")
    pictures = [p for p in written if p.parent.name == "annotated"]
    tables = [str(p) for p in written if p not in pictures]
    print(
        f"written: {', '.join(tables)}"
        + (f"; {len(pictures)} annotated in {outputs.out / 'annotated'}" if pictures else "")
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m fer_exp.predict MODEL INPUT... [--out DIR] ...``; returns the exit status."""
    p = parser(__doc__, "predict")
    p.add_argument("model", help="run id, runs:/<id>/model, models:/NAME@alias, or a .keras file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, videos, or a CSV with pixels")
    p.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    p.add_argument("--every", type=int, default=1, metavar="N", help="every Nth video frame (default: 1)")
    p.add_argument("--tta", action="store_true", help="average each face and its mirror, as the runs' --tta")
    p.add_argument("--tta-shift", type=int, default=0, metavar="PX", help="with --tta: also shifted copies")
    p.add_argument("--no-detect", action="store_true", help="every image is a face: use it whole")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="faces per model call (default: 64)")
    p.add_argument("--min-face", type=int, default=30, metavar="PX", help="smallest face to find (default: 30)")
    p.add_argument("--margin", type=float, default=0.0, help="grow each face box by this fraction per side")
    p.add_argument("--pictures", type=int, default=100, metavar="N", help="annotate at most N photos (default: 100)")
    p.add_argument("--tracking-uri", default=default_tracking_uri())
    args = p.parse_args(argv)

    def body() -> None:
        from fer_exp.errors import UserError
        from fer_exp.inference.inputs import expand
        from fer_exp.inference.loading import load_predictor
        from fer_exp.inference.predict import Options, predict_frames

        if args.tta_shift < 0 or args.min_face < 1 or not 0 <= args.margin <= 1 or args.pictures < 0:
            raise UserError("--tta-shift and --pictures must be 0 or more, --min-face 1 or more, --margin 0..1")
        inputs = expand(args.inputs, args.every)  # a missing path fails before the model loads
        options = Options(
            not args.no_detect,
            args.min_face,
            args.margin,
            args.batch_size,
            args.tta or bool(args.tta_shift),
            args.tta_shift,
        )
        quiet_tensorflow(verbose=False)  # before load_predictor imports TensorFlow
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model download
        with filtered_stderr():  # loading the model runs CUDA's probe: an error line without a GPU
            predictor = load_predictor(args.model, tracking_uri=args.tracking_uri)
        outputs = Outputs(args.out, predictor.class_names, redact_text(args.model), vars(options), args.pictures)
        try:
            for result in predict_frames(predictor, inputs.frames(), options):
                outputs.add(result)
        finally:
            for path, reason in inputs.skipped:
                outputs.skipped(path, reason)
            written = outputs.close()
        _report(outputs, written)

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
