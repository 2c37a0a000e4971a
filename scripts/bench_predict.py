"""Measure ``predict``: throughput on a folder of face crops (batch inference) and on full-size
photos with face detection, how often the Haar cascade finds the faces, and the crop framing that
matches the training faces. Prints JSON.

    python scripts/bench_predict.py                        # trains a short synthetic run first
    python scripts/bench_predict.py --model <run id> --tracking-uri sqlite:///mlflow.db

Test photos are made, not found (scripts/predict_images.py): faces pasted, scaled up, into a
textured background, so the true boxes are known. The faces are the embedded synthetic ones, and
real FER-2013 faces when /work/shared/data/fer2013 (or ``$FER2013_ROOT``) holds the data. The
framing: for each found face, the pasted square's side over the detector's box side; a median of
1.0 means the detector's box frames faces as the training images do (``--margin 0``), above 1
the margin that matches is (ratio - 1) / 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict_images import group_photo, model_or_train, synthetic_faces  # noqa: E402

FER2013 = Path(os.environ.get("FER2013_ROOT", "/work/shared/data/fer2013"))


def fer2013_faces(n: int) -> list[np.ndarray]:
    """``n`` validation faces of the real FER-2013, spread over its classes (empty without the data)."""
    from PIL import Image

    files = sorted((FER2013 / "validation").glob("*/*.jpg")) if FER2013.is_dir() else []
    step = max(1, len(files) // n)
    return [np.asarray(Image.open(f).convert("L")) for f in files[::step][:n]]


def synthetic(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic faces, the expressions in FER-2013's order, round and round."""
    from fer_exp.data.synthetic import CLASS_NAMES

    return synthetic_faces([CLASS_NAMES[i % len(CLASS_NAMES)] for i in range(n)], seed)


def detection(faces: list[np.ndarray], side: int, per_photo: int = 8) -> dict:
    """Photos of ``per_photo`` pasted faces: how many the cascade finds, false boxes, the framing."""
    from fer_exp.inference.faces import detect_faces

    found = missed = false = 0
    ratios = []
    for start in range(0, len(faces), per_photo):
        photo, pasted = group_photo(faces[start : start + per_photo], side, seed=start, columns=4)
        hit = set()
        for box in detect_faces(photo):
            inside = [
                i
                for i, (x, y, w, h) in enumerate(pasted)
                if x <= box.x + box.w / 2 <= x + w and y <= box.y + box.h / 2 <= y + h
            ]
            if inside and box.w > side / 3:
                hit.add(inside[0])
                ratios.append(side / box.w)
            else:
                false += 1
        found += len(hit)
        missed += len(pasted) - len(hit)
    return {
        "faces": found + missed,
        "found": found,
        "found_fraction": round(found / max(1, found + missed), 3),
        "false_boxes": false,
        "framing_ratio_median": round(float(np.median(ratios)), 3) if ratios else None,
        "matching_margin": round((float(np.median(ratios)) - 1) / 2, 3) if ratios else None,
    }


def throughput(predictor, frames, options) -> dict:
    """Images and faces per second of ``predict_frames`` over ``frames`` (the model loaded)."""
    from fer_exp.inference.predict import predict_frames

    start = time.perf_counter()
    results = list(predict_frames(predictor, frames, options))
    seconds = time.perf_counter() - start
    faces = sum(len(r.faces) for r in results)
    return {
        "images": len(results),
        "faces": faces,
        "seconds": round(seconds, 2),
        "images_per_s": round(len(results) / seconds, 1),
        "faces_per_s": round(faces / seconds, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Build the crops and photos, load the model, measure, print JSON."""
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model reference (default: train a short run)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=25, help="photos of 8 faces each")
    parser.add_argument("--side", type=int, default=400, help="pixels of a pasted face in a photo")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from fer_exp.inference.inputs import expand
    from fer_exp.inference.loading import load_predictor
    from fer_exp.inference.predict import Options

    with tempfile.TemporaryDirectory(prefix="fer_exp-bench-predict-") as tmp:
        work = Path(tmp)
        model, uri = model_or_train(args.model, args.tracking_uri, work)
        predictor = load_predictor(model, tracking_uri=uri)
        crops = work / "crops"
        crops.mkdir()
        for i, face in enumerate(synthetic(args.crops, seed=1)):
            Image.fromarray(face).save(crops / f"{i:05d}.png")
        photos = work / "photos"
        photos.mkdir()
        for p in range(args.photos):
            photo, _ = group_photo(synthetic(8, seed=100 + p), args.side, seed=p, columns=4)
            Image.fromarray(photo).save(photos / f"{p:03d}.jpg", quality=92)
        shape = Image.open(photos / "000.jpg").size
        options = Options(batch_size=args.batch_size)
        throughput(predictor, expand([crops]).frames(), options)  # warm-up: the first calls trace the model
        report = {
            "model": model,
            "cpu_count": os.cpu_count(),
            "batch_size": args.batch_size,
            "crops_folder": throughput(predictor, expand([crops]).frames(), options),
            "crops_folder_tta": throughput(
                predictor, expand([crops]).frames(), Options(batch_size=args.batch_size, tta=True)
            ),
            "photos_with_detection": {
                "photo_size": list(shape),
                **throughput(predictor, expand([photos]).frames(), options),
            },
            "detection_synthetic": detection(synthetic(200, seed=7), args.side),
        }
        real = fer2013_faces(200)
        if real:
            report["detection_fer2013"] = detection(real, args.side)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
