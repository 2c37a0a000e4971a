"""What each augmentation preset costs in CPU time: training batches per second of fer_exp's
tfdata pipeline on one thread, every preset side by side in one process, on the same images.

    python scripts/bench_augmentation.py                         # the ablation's presets
    python scripts/bench_augmentation.py --presets none,seed,heavy --batches 50

The ablation (``experiment=fer2013_ablation``) gives every preset the same training time, so its
epochs column mixes the augmentation's cost with the machine's noise; this script isolates the
cost. Prints a table, and as its last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_input import rate  # noqa: E402  (scripts/ is on sys.path when a script in it runs)

from fer_exp.config import compose  # noqa: E402
from fer_exp.data.sources import load_splits  # noqa: E402

BATCH = 64

ABLATION = "none,light,light_photometric,light_filters,light_erasing,light_crop,light_mixup,light_cutmix"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.environ.get("FER2013_ROOT", REPO.parent / "shared/data/fer2013"))
    parser.add_argument("--presets", default=ABLATION, help="comma-separated augmentation presets")
    parser.add_argument("--batches", type=int, default=150, help=f"timed batches of {BATCH} per preset")
    args = parser.parse_args()

    root = Path(args.root)
    data = ["data=fer2013", f"data.root={root}"] if (root / "train").is_dir() else []
    cache = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    common = [*data, f"batch_size={BATCH}", f"data.cache_dir={cache}", "data.threads=1", "preview_images=0"]
    splits = load_splits(compose(common).data)
    print(f"data: {splits.root} ({len(splits.train)} train images), batch {BATCH}, 1 thread", flush=True)

    from fer_exp.data import tf_pipeline

    results: dict[str, float] = {}
    for preset in args.presets.split(","):
        inputs = tf_pipeline.build(compose([*common, f"augmentation={preset}"]), splits)
        results[preset] = rate(inputs.train, args.batches, warmup=3)  # warm-up: tracing, the cache load

    base = results.get("none")
    print(f"\n{'preset':20s} {'images/s':>10s} {'CPU s / epoch':>14s} {'vs none':>8s}")
    for preset, speed in results.items():
        ratio = f"{base / speed:7.2f}x" if base else ""
        print(f"{preset:20s} {speed:10,.0f} {len(splits.train) / speed:14.2f} {ratio:>8s}")
    print(json.dumps({"n_images": len(splits.train), "img_s": {k: round(v, 1) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
