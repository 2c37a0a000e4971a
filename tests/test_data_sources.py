"""Synthetic data and class-folder scanning (no TensorFlow)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_exp.data.class_weights import balanced_class_weights
from fer_exp.data.folders import scan_dataset
from fer_exp.data.synthetic import CLASS_NAMES, SyntheticSpec, class_counts, ensure_synthetic_dataset, render_face
from fer_exp.errors import DataError


def _digest(root: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(root.rglob("*.png")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_synthetic_dataset_is_deterministic_and_fer_shaped(tmp_path):
    spec = SyntheticSpec(n_train=140, n_val=70, seed=3)
    a = ensure_synthetic_dataset(spec, tmp_path / "a")
    b = ensure_synthetic_dataset(spec, tmp_path / "b")
    assert _digest(a) == _digest(b)
    train, val = scan_dataset(a, "train", "validation").values()
    assert train.class_names == CLASS_NAMES
    assert (len(train), len(val)) == (140, 70)
    counts = train.counts()
    assert counts["disgust"] == min(counts.values()) and counts["happy"] == max(counts.values())
    img = Image.open(train.paths[0])
    assert img.size == (48, 48) and img.mode == "L"
    other = ensure_synthetic_dataset(SyntheticSpec(n_train=140, n_val=70, seed=4), tmp_path / "a")
    assert _digest(other) != _digest(a)


def test_synthetic_dataset_is_regenerated_when_incomplete(tmp_path):
    spec = SyntheticSpec(n_train=14, n_val=14)
    root = ensure_synthetic_dataset(spec, tmp_path)
    (root / "COMPLETE").unlink()
    next(root.rglob("*.png")).unlink()
    assert ensure_synthetic_dataset(spec, tmp_path) == root
    assert (root / "COMPLETE").is_file() and len(list(root.rglob("*.png"))) == 28


def test_class_counts_follow_fer_proportions():
    counts = class_counts(2000)
    assert sum(counts) == 2000
    assert counts[CLASS_NAMES.index("disgust")] / 2000 == pytest.approx(436 / 28821, abs=0.002)


def test_expressions_differ_in_the_expected_regions():
    """Mouth region separates happy from sad; brow/eye region separates surprise from angry."""
    rng = np.random.default_rng(0)
    mean = {c: np.mean([render_face(c, rng).astype(float) for _ in range(150)], axis=0) for c in CLASS_NAMES}
    mouth, eyes = (slice(30, 42), slice(12, 36)), (slice(10, 24), slice(10, 38))
    assert np.abs(mean["happy"][mouth] - mean["sad"][mouth]).mean() > 3
    assert np.abs(mean["surprise"][eyes] - mean["angry"][eyes]).mean() > 3
    # and the task is not trivial: two faces of one class differ more than class means do
    a, b = render_face("happy", rng), render_face("happy", rng)
    assert np.abs(a.astype(float) - b).mean() > np.abs(mean["happy"] - mean["neutral"]).mean()


def _make_layout(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    for split, classes in layout.items():
        for name, n in classes.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((48, 48), i * 10, np.uint8)).save(d / f"{i}.png")
    return root


def test_scan_lists_like_keras_and_ignores_non_images(tmp_path):
    root = _make_layout(tmp_path, {"train": {"b": 2, "a": 3}, "validation": {"a": 1, "b": 1}})
    (root / "train" / "a" / ".DS_Store").write_text("x")
    (root / "train" / "a" / "notes.txt").write_text("x")
    train, val = scan_dataset(root, "train", "validation").values()
    assert train.class_names == ("a", "b")
    assert [Path(p).name for p in train.paths] == ["0.png", "1.png", "2.png", "0.png", "1.png"]
    assert train.labels.tolist() == [0, 0, 0, 1, 1]
    assert balanced_class_weights(train.labels, 2) == pytest.approx({0: 5 / 6, 1: 5 / 4})


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"data.root not found: .*nowhere"):
        scan_dataset(tmp_path / "nowhere", "train", "validation")


def test_root_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(DataError, match="data.root is not a folder"):
        scan_dataset(f, "train", "validation")


def test_missing_split_names_the_config_key(tmp_path):
    root = _make_layout(tmp_path, {"train": {"a": 1}})
    with pytest.raises(DataError, match=r"data.val_dir='validation'"):
        scan_dataset(root, "train", "validation")


def test_class_mismatch_lists_both_sets(tmp_path):
    root = _make_layout(tmp_path, {"train": {"a": 1, "b": 1, "c": 1}, "validation": {"a": 1, "b": 1}})
    with pytest.raises(DataError) as err:
        scan_dataset(root, "train", "validation")
    assert "['a', 'b', 'c']" in str(err.value) and "only in train: ['c']" in str(err.value)


def test_empty_train_class_is_an_error(tmp_path):
    root = _make_layout(tmp_path, {"train": {"a": 2, "b": 0}, "validation": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match=r"without images .*\['b'\]"):
        scan_dataset(root, "train", "validation")


def test_one_class_is_an_error_before_any_run(tmp_path):
    from fer_exp.config import compose
    from fer_exp.data.sources import load_splits

    root = _make_layout(tmp_path, {"train": {"angry": 3}, "validation": {"angry": 2}})
    cfg = compose(["data=fer2013", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}"])
    with pytest.raises(DataError, match=r"needs at least 2 classes, found 1: angry .*add a folder"):
        load_splits(cfg.data)


def test_a_batch_larger_than_the_train_split_is_an_error_before_any_run(tmp_path):
    from fer_exp.config import compose
    from fer_exp.errors import ConfigError
    from fer_exp.runs.steps import load_data

    root = _make_layout(tmp_path, {"train": {"a": 6, "b": 6}, "validation": {"a": 2, "b": 2}})
    cfg = compose(["data=fer2013", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}", "batch_size=64"])
    with pytest.raises(ConfigError, match=r"batch_size=64 is larger than the train split \(12 images\)"):
        load_data(cfg)


def test_val_holdout_sets_aside_the_same_stratified_images_in_every_run(tmp_path):
    from fer_exp.config import compose
    from fer_exp.data.sources import load_splits

    root = _make_layout(tmp_path, {"train": {"a": 4, "b": 4}, "validation": {"a": 20, "b": 10}})
    base = ["data=fer2013", f"data.root={root}", f"data.cache_dir={tmp_path / 'c'}", "batch_size=2"]
    whole = load_splits(compose(base).data)
    first = load_splits(compose([*base, "data.val_holdout=0.5", "seed=1"]).data)
    other = load_splits(compose([*base, "data.val_holdout=0.5", "seed=2"]).data)
    assert first.test.counts() == {"a": 10, "b": 5} and first.val.counts() == {"a": 10, "b": 5}
    assert first.test.paths == other.test.paths  # whatever the run's seed
    assert sorted(first.val.paths + first.test.paths) == sorted(whole.val.paths)  # nothing lost, nothing twice
    assert len(first.val_in_train) == len(first.val)
    with pytest.raises(DataError, match=r"data.val_holdout=0.02 leaves no held-out images"):
        load_splits(compose([*base, "data.val_holdout=0.02"]).data)


def test_val_holdout_is_refused_where_the_data_has_a_test_split(tmp_path):
    from fer_exp.config import compose
    from fer_exp.data.sources import load_splits

    root = _make_layout(tmp_path, {"train": {"a": 4, "b": 4}, "validation": {"a": 2, "b": 2}, "test": {"a": 2, "b": 2}})
    base = ["data=fer2013", f"data.root={root}", "data.test_dir=test", f"data.cache_dir={tmp_path / 'c'}"]
    load_splits(compose(base).data)
    with pytest.raises(DataError, match=r"the data has a test split already \(4 images\).*set data.val_holdout=0"):
        load_splits(compose([*base, "data.val_holdout=0.5"]).data)
