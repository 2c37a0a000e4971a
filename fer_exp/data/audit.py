"""Data audit: what is in the splits, and what is wrong with them.

Reports counts per class and split, the class weights training will use, image size and mode
statistics, exact duplicates within each split and across splits (content hash of the
decoded pixels) and unreadable files by path. ``python -m fer_exp.audit`` prints it; every
run logs the same numbers to MLflow when it starts (``audit.*`` metrics, ``audit/audit.json``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from fer_exp.data.class_weights import balanced_class_weights, by_name
from fer_exp.data.sources import Splits

SAMPLE = 2000  # files whose headers are read for size/mode statistics


def audit(splits: Splits, class_weight: str = "balanced", dedupe: str = "none") -> dict[str, Any]:
    """What is in the splits: counts per class, the class weights, duplicates, dropped and
    unreadable images, and source image sizes and modes (a JSON-able dict)."""
    names = splits.class_names
    report: dict[str, Any] = {
        "classes": list(names),
        "splits": {},
        "duplicates": dict(splits.duplicates),
        "dedupe": dedupe,
        "dropped": dict(splits.dropped),
        "unreadable": {k: v for k, v in splits.bad_images.items()},
    }
    for name, table in splits.items():
        report["splits"][name] = {
            "images": len(table),
            "per_class": table.counts(),
            "source_images": _image_stats(table),
        }
    if class_weight == "balanced":
        report["class_weights"] = by_name(balanced_class_weights(splits.train.labels, len(names)), names)
    return report


def _image_stats(table) -> dict[str, Any]:
    """Original sizes and modes (file headers of a deterministic sample), or the array shape."""
    if table.paths is None:
        return {"in_memory": list(table.images.shape[1:])}
    from PIL import Image

    rng = np.random.default_rng(0)
    pick = rng.choice(len(table.paths), min(SAMPLE, len(table.paths)), replace=False) if table.paths else []
    sizes, modes = Counter(), Counter()
    for i in pick:
        try:
            with Image.open(table.paths[i]) as img:
                sizes[f"{img.size[0]}x{img.size[1]}"] += 1
                modes[img.mode] += 1
        except OSError:
            modes["unreadable"] += 1
    return {"sampled_files": len(pick), "sizes": dict(sizes.most_common(5)), "modes": dict(modes.most_common(5))}


def audit_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The audit's numbers as flat MLflow metrics."""
    out = {f"audit.{k}": float(v) for k, v in report["duplicates"].items()}
    out.update({f"audit.dropped.{k}": float(v) for k, v in report["dropped"].items()})
    for split, info in report["splits"].items():
        out[f"audit.{split}.images"] = float(info["images"])
    out["audit.unreadable"] = float(sum(len(v) for v in report["unreadable"].values()))
    return out


def render(report: dict[str, Any]) -> str:
    """The audit as the plain-text table ``python -m fer_exp.audit`` prints."""
    names = report["classes"]
    lines = ["split        " + " ".join(f"{n[:9]:>9s}" for n in names) + "     total"]
    for split, info in report["splits"].items():
        lines.append(f"{split:12s} " + " ".join(f"{info['per_class'][n]:9d}" for n in names) + f" {info['images']:9d}")
    if "class_weights" in report:
        lines.append("weights      " + " ".join(f"{report['class_weights'][n]:9.4f}" for n in names))
    d = report["duplicates"]
    lines.append("")
    for split in report["splits"]:
        lines.append(
            f"{split}: {d[f'{split}.files']} files hold {d[f'{split}.distinct']} distinct images "
            f"({d[f'{split}.files'] - d[f'{split}.distinct']} repeated copies)"
        )
        if split != "train":
            lines.append(f"train and {split} share {d[f'train_{split}.shared_distinct']} distinct images")
    for split, info in report["splits"].items():
        stats = info["source_images"]
        lines.append(f"{split} images: {stats}")
    unreadable = sum(len(v) for v in report["unreadable"].values())
    lines.append(
        f"unreadable files: {unreadable}" + "".join(f"\n  {m}" for v in report["unreadable"].values() for m in v[:20])
    )
    if report["dropped"]:
        lines.append(f"dropped (data.dedupe={report['dedupe']}, skipped images): {report['dropped']}")
    return "\n".join(lines)
