"""The fused augmentation reproduces ImageDataGenerator: image by image for explicit
parameters, and in distribution for random ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fer_exp.augment import params as P
from fer_exp.augment.pipeline import apply_transform, featurewise_stats, standardize
from fer_exp.config import compose
from fer_exp.data.cache import decode_image
from fer_exp.data.folders import scan_dataset
from fer_exp.data.sources import load_splits
from tests.conftest import SHARED_FER2013


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """64 real faces from the shared FER-2013 folders, else 64 synthetic ones."""
    if (SHARED_FER2013 / "train").is_dir():
        table, _ = scan_dataset(SHARED_FER2013, "train", "validation").values()
    else:
        table = load_splits(compose().data).train
    paths = table.paths[:: max(1, len(table.paths) // 64)][:64]
    return np.stack([decode_image(p, 48, "grayscale", "nearest") for p in paths])


def _keras(aug_overrides: list[str]):
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    from fer_exp.augment.keras_idg import train_kwargs

    aug = compose(aug_overrides).augmentation
    return aug, ImageDataGenerator(**train_kwargs(aug))


@pytest.mark.parametrize("brightness", [False, True])
@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
def test_explicit_params_match_apply_transform(faces, fill_mode, brightness):
    overrides = [
        "augmentation=heavy",
        f"augmentation.fill_mode={fill_mode}",
        "augmentation.cval=90",
        "augmentation.vertical_flip=true",
    ]
    aug, idg = _keras(overrides + ([] if brightness else ["augmentation.brightness_range=null"]))
    np.random.seed(1)
    per_image = [idg.get_random_transform(faces[0].shape) for _ in faces]
    expected = np.stack(
        [idg.standardize(idg.apply_transform(f.astype(np.float32), p)) for f, p in zip(faces, per_image)]
    )
    got = apply_transform(faces, P.stack(per_image), aug)
    diff = np.abs(got - expected)
    if not brightness:
        # The kernel reimplements scipy's order-1 affine_transform tap by tap: only float
        # rounding differs (values are rescaled to [0, 1]).
        assert diff.max() < 1e-4, diff.max()
        return
    # Keras's brightness shift truncates to 8-bit integers (through PIL); where the warped value
    # lies within float rounding of an integer, truncation can land one grey level apart. The
    # documented tolerance: at most one grey level, on a tiny fraction of the pixels.
    assert diff.max() <= 1 / 255 + 1e-6, diff.max() * 255
    assert (diff > 1e-4).mean() < 1e-3, (diff > 1e-4).sum()


def test_every_transform_alone_matches(faces):
    aug, idg = _keras(["augmentation=none", "augmentation.rotation_range=30", "augmentation.fill_mode=reflect"])
    cases = [
        {"theta": 17.0},
        {"tx": 5.5},
        {"ty": -7.25},
        {"shear": 12.0},
        {"zx": 0.8, "zy": 1.15},
        {"flip_horizontal": True},
        {"flip_vertical": True},
        {"brightness": 1.3},
        {"channel_shift_intensity": 40.0},
        {"theta": -9.0, "tx": 3.0, "flip_horizontal": True, "zx": 1.1},
    ]
    for case in cases:
        expected = np.stack([idg.standardize(idg.apply_transform(f.astype(np.float32), case)) for f in faces[:8]])
        got = apply_transform(faces[:8], P.stack([case] * 8), aug)
        assert np.abs(got - expected).max() < 1e-4, case


def test_standardization_matches_fit_and_standardize(faces):
    aug, idg = _keras(
        [
            "augmentation=none",
            "augmentation.featurewise_center=true",
            "augmentation.featurewise_std_normalization=true",
            "augmentation.samplewise_center=true",
        ]
    )
    idg.fit(faces.astype(np.float32))
    mean, std = featurewise_stats(faces, aug.rescale)
    np.testing.assert_allclose(mean, idg.mean, rtol=1e-5)
    np.testing.assert_allclose(std, idg.std, rtol=1e-5)
    expected = np.stack([idg.standardize(f.astype(np.float32)) for f in faces])
    got = standardize(faces.astype(np.float32), aug, mean, std)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def _keras_draws(idg, n: int) -> dict[str, np.ndarray]:
    np.random.seed(123)
    return P.stack([idg.get_random_transform((48, 48, 1)) for _ in range(n)])


@pytest.mark.parametrize(
    "overrides",
    [
        ["augmentation=heavy", "augmentation.vertical_flip=true"],
        ["augmentation=seed", "augmentation.width_shift_range=3", "augmentation.height_shift_range=[2,5,0.5]"],
        ["augmentation=none", "augmentation.zoom_range=[0.7,1.0]", "augmentation.width_shift_range=4.5"],
    ],
    ids=["heavy", "int-and-list-shifts", "zoom-pair-pixel-shift"],
)
def test_random_params_follow_keras_distributions(overrides):
    aug, idg = _keras(overrides)
    n = 3000
    keras = _keras_draws(idg, n)
    ours = P.draw(aug, n, (48, 48, 1), np.random.default_rng(7))
    for key in P.KEYS:
        a, b = ours[key].astype(float), keras[key].astype(float)
        assert np.isnan(a).all() == np.isnan(b).all(), key
        if np.isnan(a).all():
            continue
        values = np.union1d(a, b)
        if len(values) <= 20:  # discrete: same support, same frequencies
            assert set(np.unique(a)) == set(np.unique(b)), key
            table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
            assert stats.chi2_contingency(table).pvalue > 1e-3, key
        else:
            assert stats.ks_2samp(a, b).pvalue > 1e-3, key
            assert a.min() >= b.min() - 0.05 * np.ptp(b) and a.max() <= b.max() + 0.05 * np.ptp(b), key


def test_a_wrong_distribution_is_detected():
    """The KS test above has teeth: rotation 20 vs 25 is told apart."""
    _, idg = _keras(["augmentation=seed"])
    heavy = compose(["augmentation=seed", "augmentation.rotation_range=25"]).augmentation
    ours = P.draw(heavy, 3000, (48, 48, 1), np.random.default_rng(7))
    assert stats.ks_2samp(ours["theta"], _keras_draws(idg, 3000)["theta"]).pvalue < 1e-3
