"""The augmentations ImageDataGenerator lacks: each does what it says, in both pipelines,
and mixing keeps class weights exact."""

from __future__ import annotations

import numpy as np
import pytest

from fer_exp.augment import extra, keras_idg
from fer_exp.config import AugmentationConfig, compose


def _faces(n=16, seed=0) -> np.ndarray:
    from fer_exp.data.synthetic import CLASS_NAMES, render_face

    rng = np.random.default_rng(seed)
    return np.stack([render_face(CLASS_NAMES[i % 7], rng) for i in range(n)])[..., None].astype(np.float32)


def _apply(overrides, x, seed=0):
    aug = compose(["augmentation=none", *overrides]).augmentation
    return extra.apply_per_image(x.copy(), aug, np.random.default_rng(seed))


def test_everything_is_off_in_none():
    aug = compose(["augmentation=none"]).augmentation
    assert not extra.has_per_image(aug) and not extra.has_mixing(aug)
    assert "preprocessing_function" not in keras_idg.train_kwargs(aug)


def test_contrast_and_gamma():
    x = _faces()
    low = _apply(["augmentation.contrast_prob=1", "augmentation.contrast_range=[0.5,0.5]"], x)
    np.testing.assert_allclose(low.std(axis=(1, 2, 3)), 0.5 * x.std(axis=(1, 2, 3)), rtol=0.02)
    dark = _apply(["augmentation.gamma_prob=1", "augmentation.gamma_range=[2,2]"], x)
    np.testing.assert_allclose(dark, 255 * (x / 255) ** 2, rtol=1e-4, atol=1e-3)


def test_equalize_spreads_the_histogram():
    x = _faces() * 0.3 + 60  # low contrast: values in 60..137
    out = _apply(["augmentation.equalize_prob=1"], x)
    assert out.max() >= 250 and (out.max(axis=(1, 2, 3)) - out.min(axis=(1, 2, 3))).min() > 200


def test_blur_removes_and_sharpen_adds_detail():
    x = _faces()

    def detail(a):
        return np.abs(np.diff(a, axis=2)).mean()

    assert detail(_apply(["augmentation.blur_prob=1"], x)) < 0.8 * detail(x)
    assert detail(_apply(["augmentation.sharpen_prob=1"], x)) > 1.2 * detail(x)


def test_random_erasing_blanks_one_box_of_the_configured_area():
    x = _faces()
    out = _apply(
        ["augmentation.erasing_prob=1", "augmentation.erasing_area=[0.1,0.1]", "augmentation.erasing_value=zero"], x + 1
    )  # +1: no natural zeros
    areas = (out == 0).sum(axis=(1, 2, 3)) / (48 * 48)
    assert np.all((areas > 0.07) & (areas < 0.13)), areas


def test_resized_crop_identity_and_zoom():
    x = _faces()
    same = _apply(["augmentation.crop_prob=1", "augmentation.crop_scale=[1,1]", "augmentation.crop_ratio=[1,1]"], x)
    np.testing.assert_allclose(same, x, atol=1e-3)
    zoomed = _apply(["augmentation.crop_prob=1", "augmentation.crop_scale=[0.5,0.5]"], x)
    assert np.abs(zoomed - x).mean() > 5


def test_probability_is_respected():
    x = _faces(200)
    out = _apply(["augmentation.erasing_prob=0.3", "augmentation.erasing_value=zero"], x + 1)
    rate = np.mean([(img == 0).any() for img in out])
    assert 0.2 < rate < 0.4


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_keeps_class_weighted_loss_exact(kind):
    aug = compose(["augmentation=none", f"augmentation.{kind}_prob=1"]).augmentation
    rng = np.random.default_rng(3)
    x = _faces(8)
    labels = np.arange(8) % 3
    y = np.eye(3, dtype=np.float32)[labels]
    w = np.array([1.0, 4.0, 0.5], np.float32)
    xm, ym, sw = extra.mix_batch(x.copy(), y, aug, np.random.default_rng(5), w)
    assert np.allclose(ym.sum(axis=1), 1) and (ym > 0).sum() > 8  # soft labels
    # recover lam and the partner of each image from the mixed targets; check the loss identity
    logp = np.log(rng.dirichlet(np.ones(3), 8))
    for i in range(8):
        ce = -logp[i]  # per-class cross-entropy of image i's prediction
        partner_classes = [c for c in range(3) if ym[i, c] > 0 and c != labels[i]]
        weighted = sw[i] * (ym[i] @ ce)
        if not partner_classes:  # mixed with an image of its own class
            assert weighted == pytest.approx(w[labels[i]] * ce[labels[i]], rel=1e-5)
            continue
        b = partner_classes[0]
        share_a = ym[i, labels[i]] * sw[i] / w[labels[i]]  # = lam
        share_b = ym[i, b] * sw[i] / w[b]  # = 1 - lam
        assert share_a + share_b == pytest.approx(1, rel=1e-5)
        assert weighted == pytest.approx(share_a * w[labels[i]] * ce[labels[i]] + share_b * w[b] * ce[b], rel=1e-5)


def test_cutmix_lambda_is_the_kept_area():
    """Each image's soft label gives every class exactly the share of pixels that came from an
    image of that class (image c is filled with a value of its own, so pixels name their source)."""
    aug = compose(["augmentation=none", "augmentation.cutmix_prob=1"]).augmentation
    values = (np.arange(8, dtype=np.float32) + 1) / 10
    x = np.broadcast_to(values[:, None, None, None], (8, 48, 48, 1)).copy()
    y = np.eye(8, dtype=np.float32)
    mixed = 0
    for seed in range(4):
        xm, ym, _ = extra.mix_batch(x.copy(), y, aug, np.random.default_rng(seed))
        shares = (xm[..., 0][:, None] == values[None, :, None, None]).mean(axis=(2, 3))
        np.testing.assert_allclose(ym, shares, atol=1e-6)
        mixed += int(((shares > 0) & (shares < 1)).any(axis=1).sum())
    assert mixed > 0  # boxes were pasted from other images, not only from themselves


def test_both_pipelines_apply_the_extra_ops(tmp_path):
    from tensorflow.keras.preprocessing.image import ImageDataGenerator

    from fer_exp.data import tf_pipeline
    from fer_exp.data.sources import load_splits

    overrides = [
        "augmentation=none",
        "augmentation.erasing_prob=1",
        "augmentation.erasing_value=zero",
        "augmentation.erasing_area=[0.2,0.2]",
        "augmentation.rescale=null",
        "batch_size=16",
    ]
    cfg = compose(overrides)
    # keras: ImageDataGenerator + preprocessing_function
    idg = ImageDataGenerator(**keras_idg.train_kwargs(cfg.augmentation))
    x = _faces() + 1
    flow = idg.flow(x, np.zeros(len(x)), batch_size=16, seed=0, shuffle=False)
    keras_area = (flow[0][0] == 0).mean()
    # tfdata: the same key, drawn per batch
    splits = load_splits(cfg.data)
    batch = tf_pipeline.build(cfg, splits).preview(16)[0]
    tf_area = (batch == 0).mean()
    assert 0.15 < keras_area < 0.25 and 0.15 < tf_area < 0.3, (keras_area, tf_area)


@pytest.mark.parametrize(
    "bad,message",
    [
        (["augmentation.mixup_prob=0.7", "augmentation.cutmix_prob=0.7"], "mixup_prob + cutmix_prob must be <= 1"),
        (["augmentation.erasing_area=[0.5,1.5]"], "erasing_area is a fraction"),
        (["augmentation.blur_sigma=[2,1]"], "augmentation.blur_sigma=[2, 1]"),
        (["augmentation.mixup_prob=0.5", "data.class_mode=sparse"], "mixup and cutmix mix one-hot labels"),
    ],
)
def test_bad_extra_values(bad, message):
    from fer_exp.errors import ConfigError

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        compose(bad)


def test_every_registered_op_has_its_probability_key():
    assert list(extra.PER_IMAGE_OPS) == ["crop", "contrast", "gamma", "equalize", "blur", "sharpen", "erasing"]
    missing = [name for name in extra.PER_IMAGE_OPS if f"{name}_prob" not in AugmentationConfig.model_fields]
    assert missing == []


def test_per_image_ops_run_from_the_registry_in_order(monkeypatch):
    calls = []
    for name in ("blur", "erasing"):
        monkeypatch.setitem(extra.PER_IMAGE_OPS, name, lambda img, aug, rng, name=name: calls.append(name) or img + 1)
    aug = AugmentationConfig(blur_prob=1.0, erasing_prob=1.0)
    x = np.zeros((2, 8, 8, 1), np.float32)
    assert extra.has_per_image(aug)
    out = extra.apply_per_image(x, aug, np.random.default_rng(0))
    assert calls == ["blur", "blur", "erasing", "erasing"] and np.all(out == 2)
    with pytest.raises(ValueError, match="two per-image augmentation ops"):
        extra.per_image_op("blur")(lambda img, aug, rng: img)
