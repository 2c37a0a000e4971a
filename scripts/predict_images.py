"""Test photos for ``predict``, and the docs' annotated picture, made from real runs (never drawn
by hand):

    python scripts/predict_images.py                     # trains a short run, writes docs/images/predict_*.png
    python scripts/predict_images.py --model <run id>    # with a model you have

There are no photos of people in this repository, so the photos are made: embedded synthetic
faces (:mod:`fer_exp.data.synthetic`) scaled up and pasted into a larger textured background,
with their true expressions and boxes known. ``group_photo`` is also what tests/test_predict.py
and scripts/bench_predict.py use. The synthetic faces are drawn smaller inside their square than
FER-2013's faces are, so the docs' run predicts with ``--margin 0.13`` (the framing
bench_predict.py measures for them); a FER-2013 model needs none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["model=small_cnn", "epochs=12", "augmentation=light"]
# Faces of the docs' photo: one of each expression the synthetic set draws, the rare one too.
EXPRESSIONS = ("happy", "surprise", "sad", "angry", "neutral", "fear", "disgust")


def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A calm RGB background: a diagonal colour gradient with soft blotches and sensor noise."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (yy / height + xx / width) / 2
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 180, 3)
    img = top * (1 - t[..., None]) + bottom * t[..., None]
    blotches = cv2.resize(
        rng.normal(0, 18, (6, 8, 3)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC
    )
    img = img + blotches + rng.normal(0, 3, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def group_photo(
    faces: list[np.ndarray], side: int = 192, seed: int = 0, columns: int = 4, gap: int = 48
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An RGB photo with ``faces`` (uint8 48x48 gray) scaled up to ``side`` pixels and pasted in
    rows of ``columns`` with jitter, and the (x, y, w, h) box of each pasted face."""
    import cv2

    rng = np.random.default_rng(seed)
    rows = -(-len(faces) // columns)
    cols = min(columns, len(faces))
    height, width = rows * (side + gap) + gap, cols * (side + gap) + gap
    photo = background(height, width, rng)
    boxes = []
    for i, face in enumerate(faces):
        r, c = divmod(i, columns)
        x = gap + c * (side + gap) + int(rng.integers(-gap // 3, gap // 3 + 1))
        y = gap + r * (side + gap) + int(rng.integers(-gap // 3, gap // 3 + 1))
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        tint = rng.uniform(0.9, 1.1, 3)  # a little colour, as a photo has
        photo[y : y + side, x : x + side] = np.clip(big[..., None] * tint, 0, 255).astype(np.uint8)
        boxes.append((x, y, side, side))
    return photo, boxes


def synthetic_faces(expressions, seed: int = 0) -> list[np.ndarray]:
    """One synthetic 48x48 face per expression name (deterministic for ``seed``)."""
    from fer_exp.data.synthetic import render_face

    rng = np.random.default_rng(seed)
    return [render_face(name, rng) for name in expressions]


def train(work: Path) -> str:
    """A short training run on the synthetic faces in ``work``; returns its MLflow run id."""
    from mlflow.tracking import MlflowClient

    subprocess.run([sys.executable, "-m", "fer_exp", *TRAIN], cwd=work, check=True)
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("fer_exp").experiment_id])
    return run.info.run_id


def model_or_train(model: str | None, tracking_uri: str | None, work: Path) -> tuple[str, str | None]:
    """``(model, tracking_uri)`` as given, or a short run trained in ``work`` and its store."""
    if model is not None:
        return model, tracking_uri
    return train(work), f"sqlite:///{work / 'mlflow.db'}"


def main(argv: list[str] | None = None) -> None:
    """Write docs/images/predict_photo.png (an annotated photo) and predict_grid.png (a folder's grid)."""
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model reference for predict (default: train one)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer_exp-predict-") as tmp:
        work = Path(tmp)
        model, uri = model_or_train(args.model, args.tracking_uri, work)
        photo, _ = group_photo(synthetic_faces(EXPRESSIONS, args.seed), seed=args.seed)
        Image.fromarray(photo).save(work / "group.jpg", quality=92)
        crops = work / "crops"
        crops.mkdir()
        for i, (name, face) in enumerate(zip(EXPRESSIONS * 3, synthetic_faces(EXPRESSIONS * 3, args.seed + 1))):
            Image.fromarray(face).save(crops / f"{name}_{i:02d}.png")  # the caption shows the truth
        command = [sys.executable, "-m", "fer_exp.predict", model, "group.jpg", "crops", "--margin", "0.13"]
        subprocess.run(command + (["--tracking-uri", uri] if uri else []), cwd=work, check=True)
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(work / "predictions" / "annotated" / "group.png", args.out / "predict_photo.png")
        shutil.copyfile(work / "predictions" / "grid_crops.png", args.out / "predict_grid.png")
    print(f"wrote {args.out / 'predict_photo.png'} and {args.out / 'predict_grid.png'}")


if __name__ == "__main__":
    main()
