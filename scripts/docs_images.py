"""Regenerate the pictures the docs show from real runs (never drawn by hand):

    python scripts/docs_images.py            # docs/images/augmentation_sweep.png

The augmentation sweep is the README's example, ``python -m fer_exp -m
augmentation=none,light,seed,heavy seed=1,2,3 epochs=10``, on the embedded synthetic faces, run in a
temporary folder; its comparison picture is copied into docs/images/.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["-m", "augmentation=none,light,seed,heavy", "seed=1,2,3", "epochs=10"]


def augmentation_sweep(out: Path) -> Path:
    """Run the README's sweep in a scratch folder and copy its comparison picture to ``out``."""
    with tempfile.TemporaryDirectory(prefix="fer_exp-docs-") as work:
        subprocess.run([sys.executable, "-m", "fer_exp", *SWEEP], cwd=work, check=True)
        (picture,) = Path(work).glob("multirun/*/*/comparison/comparison.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Regenerate every docs picture (one today)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder of the pictures")
    args = parser.parse_args(argv)
    print(f"wrote {augmentation_sweep(args.out / 'augmentation_sweep.png')}")


if __name__ == "__main__":
    main()
