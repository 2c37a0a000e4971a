"""Data sources: turn ``cfg.data`` into train/validation image tables (no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer_exp.config import DataConfig, SyntheticData
from fer_exp.data.folders import ImageTable, scan_dataset
from fer_exp.data.synthetic import SyntheticSpec, ensure_synthetic_dataset


@dataclass(frozen=True)
class Splits:
    root: Path
    train: ImageTable
    val: ImageTable

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names


def load_splits(data: DataConfig) -> Splits:
    """Locate (or generate) the data and list both splits, checking the layout."""
    if isinstance(data, SyntheticData):
        spec = SyntheticSpec(n_train=data.n_train, n_val=data.n_val, seed=data.generator_seed,
                             pic_size=data.pic_size)
        root = ensure_synthetic_dataset(spec, Path(data.root).expanduser() if data.root else None)
    else:
        root = Path(data.root).expanduser()
    train, val = scan_dataset(root, data.train_dir, data.val_dir)
    return Splits(root=root, train=train, val=val)
