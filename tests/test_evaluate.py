"""Test-time augmentation: which views of a batch are averaged, and that predict averages them."""

from __future__ import annotations

import numpy as np

from fer_exp.analysis.evaluate import predict
from fer_exp.augment.tta import tta_views


def _dot(y: int, x: int) -> np.ndarray:
    img = np.zeros((1, 8, 8, 1), np.float32)
    img[0, y, x, 0] = 1.0
    return img


def test_flip_tta_is_the_image_and_its_mirror():
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    views = tta_views(x)
    assert len(views) == 2
    np.testing.assert_array_equal(views[0], x)
    np.testing.assert_array_equal(views[1], x[:, :, ::-1])


def test_shift_tta_moves_the_image_by_that_many_pixels_each_way():
    views = tta_views(_dot(4, 3), shift=2)
    assert len(views) == 10 and all(v.shape == (1, 8, 8, 1) for v in views)
    where = {tuple(int(i) for i in np.argwhere(v[0, :, :, 0] == 1)[0]) for v in views[:5]}
    assert where == {(4, 3), (6, 3), (2, 3), (4, 5), (4, 1)}  # itself, down, up, right, left
    for plain, mirrored in zip(views[:5], views[5:]):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])


def test_shifted_views_repeat_the_edge_like_nearest_fill():
    x = np.arange(64, dtype=np.float32).reshape(1, 8, 8, 1)
    up = tta_views(x, shift=3)[1]  # the content moves down: the top rows repeat row 0
    np.testing.assert_array_equal(up[0, :4, :, 0], np.repeat(x[0, :1, :, 0], 4, axis=0))
    np.testing.assert_array_equal(up[0, 3:, :, 0], x[0, :5, :, 0])


class _Brightness:
    """A 'model' whose class-1 probability is the mean of the top-left 4x4 quarter."""

    def predict_on_batch(self, x):
        p = np.asarray(x)[:, :4, :4, 0].mean(axis=(1, 2))
        return np.stack([1 - p, p], axis=1)


def test_predict_averages_the_probabilities_over_the_views():
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 1]]
    batches = [(x[:3], y[:3]), (x[3:], y[3:])]
    model = _Brightness()
    for shift in (0, 1, 2):
        labels, plain, averaged = predict(model, batches, 2, tta=True, tta_shift=shift)
        np.testing.assert_array_equal(labels, [0, 1, 0, 1, 1])
        np.testing.assert_allclose(plain, model.predict_on_batch(x), rtol=1e-6)
        want = np.mean([model.predict_on_batch(v) for v in tta_views(x, shift)], axis=0)
        np.testing.assert_allclose(averaged, want, rtol=1e-6)
        assert not np.allclose(averaged, plain)  # the views do change what this model sees
    assert len(predict(model, batches, 1)) == 2 and len(predict(model, batches, 1)[0]) == 3  # no TTA: 2 outputs
