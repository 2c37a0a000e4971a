"""Decode-once cache and the tf.data pipeline: reuse, invalidation, determinism, coverage."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_exp.config import compose
from fer_exp.data import cache as cache_mod
from fer_exp.data.cache import decoded_images
from fer_exp.data.folders import scan_dataset
from fer_exp.data.sources import load_splits


def _folders(root: Path, n: int = 12) -> Path:
    """Images whose pixel value encodes (class, index), so labels can be checked from pixels."""
    for split in ("train", "validation"):
        for c, name in enumerate(("a", "b", "c")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((40, 52), 60 * c + i, np.uint8)).save(d / f"{i:02d}.png")
    return root


def _decode(table, cache_dir):
    images, bad = decoded_images(table, 48, "grayscale", "nearest", cache_dir)
    assert not bad
    return images


def test_second_use_never_touches_the_image_files(tmp_path, monkeypatch):
    train, _ = scan_dataset(_folders(tmp_path / "d"), "train", "validation").values()
    first = np.array(_decode(train, tmp_path / "c"))
    assert first.shape == (36, 48, 48, 1) and first.dtype == np.uint8

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "decode_image", no_decoding)
    np.testing.assert_array_equal(_decode(train, tmp_path / "c"), first)


def test_changed_or_added_file_invalidates(tmp_path):
    root = _folders(tmp_path / "d")
    train, _ = scan_dataset(root, "train", "validation").values()
    _decode(train, tmp_path / "c")
    target = Path(train.paths[0])
    Image.fromarray(np.full((40, 52), 250, np.uint8)).save(target)
    os.utime(target, ns=(1, 1))  # a different mtime even on coarse clocks
    changed, _ = scan_dataset(root, "train", "validation").values()
    assert _decode(changed, tmp_path / "c")[0].max() == 250
    Image.fromarray(np.full((40, 52), 7, np.uint8)).save(root / "train" / "a" / "99.png")
    added, _ = scan_dataset(root, "train", "validation").values()
    assert len(_decode(added, tmp_path / "c")) == 37


@pytest.mark.parametrize("damage", ["flip_bytes", "truncate", "garbage_meta"])
def test_damaged_cache_is_rebuilt_not_trusted(tmp_path, caplog, damage):
    train, _ = scan_dataset(_folders(tmp_path / "d"), "train", "validation").values()
    good = np.array(_decode(train, tmp_path / "c"))
    npy = next((tmp_path / "c").glob("*.npy"))
    if damage == "flip_bytes":
        raw = bytearray(npy.read_bytes())
        raw[-100:] = bytes(255 - b for b in raw[-100:])
        npy.write_bytes(bytes(raw))
    elif damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-500])
    else:
        next((tmp_path / "c").glob("*.json")).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        again = _decode(train, tmp_path / "c")
    np.testing.assert_array_equal(again, good)
    assert "damaged" in caplog.text


def test_unreadable_image_is_named(tmp_path):
    root = _folders(tmp_path / "d")
    bad = root / "train" / "b" / "05.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    train, _ = scan_dataset(root, "train", "validation").values()
    images, unreadable = decoded_images(train, 48, "grayscale", "nearest", tmp_path / "c")
    assert [i for i, _ in unreadable] == [train.paths.index(str(bad))]
    assert f"cannot read image {bad}" in unreadable[0][1]
    assert not images[unreadable[0][0]].any()  # its row is blank, and the source drops or stops


def _inputs(tmp_path, overrides):
    from fer_exp.data import tf_pipeline

    cfg = compose(["data=fer2013", f"data.root={tmp_path / 'd'}", f"data.cache_dir={tmp_path / 'c'}", *overrides])
    return cfg, tf_pipeline.build(cfg, load_splits(cfg.data))


def test_every_epoch_sees_every_image_once_with_its_label(tmp_path):
    _folders(tmp_path / "d")
    cfg, inputs = _inputs(tmp_path, ["augmentation=none", "batch_size=5"])
    batches = list(inputs.train.take(2 * inputs.train_batches).as_numpy_iterator())
    assert inputs.train_batches == 8 and [len(x) for x, _ in batches[:8]] == [5] * 7 + [1]
    for epoch in range(2):
        seen = []
        for x, y in batches[epoch * 8 : (epoch + 1) * 8]:
            value = np.rint(x[:, 0, 0, 0] * 255).astype(int)  # 60 * class + index
            np.testing.assert_array_equal(value // 60, y.argmax(axis=1))
            seen.extend(value.tolist())
        assert sorted(seen) == sorted(60 * c + i for c in range(3) for i in range(12))
    first, second = (np.concatenate([x[:, 0, 0, 0] for x, _ in batches[e * 8 : (e + 1) * 8]]) for e in range(2))
    assert not np.array_equal(first, second), "each epoch is reshuffled"


def test_validation_is_in_file_order_and_never_augmented(tmp_path):
    _folders(tmp_path / "d")
    _, inputs = _inputs(tmp_path, ["augmentation=heavy", "batch_size=8"])
    xs, ys = zip(*inputs.val.as_numpy_iterator())
    values = np.rint(np.concatenate(xs)[:, :, :, 0] * 255)
    assert (values == values[:, :1, :1]).all(), "validation images must be untouched"
    np.testing.assert_array_equal(values[:, 0, 0], [60 * c + i for c in range(3) for i in range(12)])
    np.testing.assert_array_equal(np.concatenate(ys).argmax(axis=1), np.repeat(np.arange(3), 12))


def test_batches_do_not_depend_on_thread_count(tmp_path):
    _folders(tmp_path / "d")
    runs = []
    for threads in (1, 3):
        _, inputs = _inputs(tmp_path, ["augmentation=heavy", "batch_size=6", f"data.threads={threads}"])
        runs.append([x for x, _ in inputs.train.take(9).as_numpy_iterator()])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    _, other_seed = _inputs(tmp_path, ["augmentation=heavy", "batch_size=6", "seed=1"])
    assert not np.array_equal(next(other_seed.train.as_numpy_iterator())[0], runs[0][0])


def _one_epoch(pipeline: str, overrides: list[str]):
    """One training epoch's images and one-hot labels through ``pipeline``, the batch sizes, and
    the splits it read."""
    cfg = compose([f"data.pipeline={pipeline}", "batch_size=32", *overrides])
    splits = load_splits(cfg.data)
    if pipeline == "keras":
        from fer_exp.data.keras_pipeline import build
    else:
        from fer_exp.data.tf_pipeline import build
    inputs = build(cfg, splits)
    batches = iter(inputs.train)
    xs, ys = zip(*(tuple(np.asarray(t) for t in next(batches)[:2]) for _ in range(inputs.train_batches)))
    return np.concatenate(xs), np.concatenate(ys), [len(x) for x in xs], splits


def test_keras_pipeline_epoch_shows_every_training_image_once_with_its_label():
    """What test_every_epoch_sees_every_image_once_with_its_label checks for tf.data."""
    x, y, _, splits = _one_epoch("keras", ["augmentation=none"])
    seen = sorted((img.tobytes(), label) for img, label in zip(np.rint(x * 255).astype(np.uint8), y.argmax(axis=1)))
    train = splits.train
    assert seen == sorted((img.tobytes(), label) for img, label in zip(train.images, train.labels))


def test_both_pipelines_augment_an_epoch_alike():
    """The same preset through ImageDataGenerator and through tf.data: the same batch shapes,
    every label once, and the same pixel statistics (the draws differ, so pixels are compared as
    distributions); constant fill makes the filled share measure how far the geometry moved."""
    overrides = ["augmentation=seed", "augmentation.fill_mode=constant"]
    kx, ky, k_sizes, splits = _one_epoch("keras", overrides)
    tx, ty, t_sizes, _ = _one_epoch("tfdata", overrides)
    assert k_sizes == t_sizes and kx.shape[1:] == tx.shape[1:] == (48, 48, 1)
    expected = np.bincount(splits.train.labels, minlength=7)
    np.testing.assert_array_equal(ky.sum(axis=0), expected)
    np.testing.assert_array_equal(ty.sum(axis=0), expected)
    assert kx.dtype == tx.dtype == np.float32 and 0 <= tx.min() and tx.max() <= 1
    assert abs(kx.mean() - tx.mean()) < 0.01 and abs(kx.std() - tx.std()) < 0.01, (kx.mean(), tx.mean())
    filled = (kx == 0).mean(), (tx == 0).mean()
    assert filled[0] > 0.01 and abs(filled[0] - filled[1]) < 0.01, filled


def test_augmentation_cost_benchmark_measures_every_preset(tmp_path):
    import json
    import subprocess
    import sys

    repo = Path(__file__).parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/bench_augmentation.py",
            "--root",
            str(tmp_path / "absent"),
            "--batches",
            "2",
            "--presets",
            "none,light_cutmix",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(figures["img_s"]) == {"none", "light_cutmix"} and min(figures["img_s"].values()) > 0
    assert "light_cutmix" in proc.stdout and "vs none" in proc.stdout
