"""The real FER-2013 folders beside the checkout (../shared/data/fer2013); skipped when absent."""

from __future__ import annotations

import pytest

from fer_exp.config import compose
from fer_exp.data.class_weights import balanced_class_weights, by_name
from fer_exp.data.sources import load_splits
from tests.conftest import FER2013_TRAIN_COUNTS, SHARED_FER2013

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_FER2013 / "train").is_dir(), reason=f"{SHARED_FER2013} not present"),
]

TRAIN_COUNTS = FER2013_TRAIN_COUNTS
VAL_COUNTS = {"angry": 960, "disgust": 111, "fear": 1018, "happy": 1825, "neutral": 1216, "sad": 1139, "surprise": 797}


@pytest.fixture(scope="module")
def cfg():
    return compose(["data=fer2013", f"data.root={SHARED_FER2013}", "augmentation=seed", "model=seed_cnn"])


def test_counts_and_class_weights(cfg):
    splits = load_splits(cfg.data)
    assert splits.train.counts() == TRAIN_COUNTS and len(splits.train) == 28821
    assert splits.val.counts() == VAL_COUNTS and len(splits.val) == 7066
    weights = by_name(balanced_class_weights(splits.train.labels, 7), splits.class_names)
    assert weights["disgust"] == pytest.approx(9.4433, abs=1e-4)
    assert weights["happy"] == pytest.approx(0.5747, abs=1e-4)


def test_keras_generators_find_every_image(cfg, capsys):
    from fer_exp.data import keras_pipeline

    inputs = keras_pipeline.build(cfg, load_splits(cfg.data))
    out = capsys.readouterr().out
    assert "Found 28821 images belonging to 7 classes." in out
    assert "Found 7066 images belonging to 7 classes." in out
    assert inputs.train_batches == -(-28821 // cfg.batch_size)  # every image every epoch
    x, y = inputs.train[0]
    assert x.shape == (cfg.batch_size, 48, 48, 1) and y.shape == (cfg.batch_size, 7)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_tfdata_pipeline_decodes_every_image_once(cfg, capsys, tmp_path):
    from fer_exp.data import tf_pipeline

    cfg = compose(["data=fer2013", f"data.root={SHARED_FER2013}", "augmentation=seed", f"data.cache_dir={tmp_path}"])
    inputs = tf_pipeline.build(cfg, load_splits(cfg.data))
    out = capsys.readouterr().out
    assert "Found 28821 images belonging to 7 classes." in out
    assert "Found 7066 images belonging to 7 classes." in out
    assert inputs.train_batches == -(-28821 // cfg.batch_size)
    caches = sorted(tmp_path.glob("*.npy"))
    assert sorted(p.stat().st_size for p in caches) == sorted(n * 48 * 48 + 128 for n in (28821, 7066))
