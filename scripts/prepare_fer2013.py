"""Convert the Kaggle ``fer2013.csv`` into the class-per-folder layout, and back.

    python scripts/prepare_fer2013.py to-folders fer2013.csv data/fer2013
        -> data/fer2013/{train,validation,test}/<emotion>/<row>.png
    python scripts/prepare_fer2013.py to-csv data/fer2013 fer2013_rebuilt.csv

The CSV has columns ``emotion`` (0-6: angry, disgust, fear, happy, sad, surprise, neutral),
``pixels`` (2304 space-separated integers, a 48x48 grayscale image) and ``Usage``.
PNG keeps the pixels exact, so a round trip gives back the same images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}


def to_folders(csv_path: Path, out: Path, fmt: str = "png") -> dict[str, int]:
    import pandas as pd

    df = pd.read_csv(csv_path)
    missing = {"emotion", "pixels", "Usage"} - set(df.columns)
    if missing:
        raise SystemExit(f"{csv_path}: missing column(s) {sorted(missing)}; found {list(df.columns)}")
    counts: dict[str, int] = {}
    for row, (emotion, pixels, usage) in enumerate(zip(df["emotion"], df["pixels"], df["Usage"])):
        values = np.array(str(pixels).split(), dtype=np.int64)
        if values.size != 48 * 48 or not 0 <= int(emotion) < len(EMOTIONS) or usage not in USAGE_TO_SPLIT:
            raise SystemExit(
                f"{csv_path} row {row + 2}: expected emotion 0-6, 2304 pixels and a Usage in "
                f"{list(USAGE_TO_SPLIT)}; got emotion={emotion}, {values.size} pixels, Usage={usage!r}"
            )
        split = USAGE_TO_SPLIT[usage]
        folder = out / split / EMOTIONS[int(emotion)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(values.reshape(48, 48).astype(np.uint8), "L").save(folder / f"{row:05d}.{fmt}")
        counts[split] = counts.get(split, 0) + 1
    return counts


def to_csv(root: Path, csv_path: Path) -> int:
    import pandas as pd

    rows = []
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        usage = {v: k for k, v in USAGE_TO_SPLIT.items()}.get(split_dir.name, split_dir.name)
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if class_dir.name not in EMOTIONS:
                raise SystemExit(f"{class_dir}: not one of the FER-2013 emotions {EMOTIONS}")
            for image in sorted(class_dir.iterdir()):
                if image.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
                    continue
                with Image.open(image) as img:
                    pixels = np.asarray(img.convert("L").resize((48, 48)), dtype=np.uint8)
                rows.append(
                    {
                        "emotion": EMOTIONS.index(class_dir.name),
                        "pixels": " ".join(map(str, pixels.reshape(-1).tolist())),
                        "Usage": usage,
                        "_order": image.stem,
                    }
                )
    frame = pd.DataFrame(rows)
    frame = frame.sort_values("_order", key=lambda s: pd.to_numeric(s, errors="coerce")).drop(columns="_order")
    frame.to_csv(csv_path, index=False)
    return len(frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-folders", help="fer2013.csv -> <out>/<split>/<emotion>/<row>.png")
    a.add_argument("csv", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--format", default="png", choices=["png", "jpg"], help="png keeps pixels exact")
    b = sub.add_parser("to-csv", help="<root>/<split>/<emotion>/* -> a fer2013.csv")
    b.add_argument("root", type=Path)
    b.add_argument("csv", type=Path)
    args = parser.parse_args(argv)
    if args.command == "to-folders":
        print(f"written {to_folders(args.csv, args.out, args.format)} images under {args.out}")
    else:
        print(f"written {to_csv(args.root, args.csv)} rows to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
