"""What a trained model expects of an image, and raw images made into exactly that.

A run's model saw images decoded by :mod:`fer_exp.data` (PIL: converted to ``color_mode``,
resized to ``pic_size`` with the configured filter, uint8) and standardized as validation
batches are (:func:`fer_exp.augment.pipeline.standardize`: rescale, samplewise and featurewise
statistics). :class:`InputSpec` records those facts beside the model (``input_spec.json``) and
:meth:`InputSpec.prepare` repeats them on new images, so the numbers a served or exported model
sees are the numbers its run evaluated.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fer_exp.augment.pipeline import standardize
from fer_exp.config import RunConfig
from fer_exp.config.data import CHANNELS
from fer_exp.data.cache import RESAMPLE_FILTERS
from fer_exp.errors import DataError, UserError

SPEC_FILE = "input_spec.json"
SPEC_VERSION = 1
_PIL_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}
_MODE_OF_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class InputSpec:
    """The input a run's model was trained on: size, colour mode, resize filter, standardization
    (the augmentation's ``rescale`` / samplewise / featurewise keys and the featurewise statistics
    of the training images), and what its outputs mean (class names, ``class_mode``)."""

    pic_size: int
    color_mode: str
    interpolation: str
    class_names: tuple[str, ...]
    model_name: str = ""
    class_mode: str = "categorical"
    rescale: float | None = None
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    mean: tuple[float, ...] | None = None  # per channel, when featurewise standardization is on
    std: tuple[float, ...] | None = None
    version: int = field(default=SPEC_VERSION)

    @classmethod
    def from_run(cls, cfg: RunConfig, class_names, mean=None, std=None) -> InputSpec:
        """The spec of a run: its config, its classes and the featurewise ``mean``/``std`` its
        pipeline computed (:attr:`fer_exp.data.inputs.InputData.mean`)."""
        aug, data = cfg.augmentation, cfg.data
        if (aug.featurewise_center and mean is None) or (aug.featurewise_std_normalization and std is None):
            raise UserError(
                "the run standardizes featurewise but no training-set mean/std were given: "
                "pass InputData.mean and InputData.std"
            )
        return cls(
            pic_size=data.pic_size,
            color_mode=data.color_mode,
            interpolation=data.interpolation,
            class_names=tuple(class_names),
            model_name=cfg.model.name,
            class_mode=data.class_mode,
            rescale=aug.rescale,
            samplewise_center=aug.samplewise_center,
            samplewise_std_normalization=aug.samplewise_std_normalization,
            featurewise_center=aug.featurewise_center,
            featurewise_std_normalization=aug.featurewise_std_normalization,
            mean=_channels(mean),
            std=_channels(std),
        )

    @property
    def channels(self) -> int:
        """Channels of the model input (1, 3 or 4)."""
        return CHANNELS[self.color_mode]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one prepared image."""
        return (self.pic_size, self.pic_size, self.channels)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        """The spec as JSON (the file ``input_spec.json`` beside a model)."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        """A spec from :meth:`to_json`'s text."""
        raw = json.loads(text)
        for key in ("class_names", "mean", "std"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def save(self, folder: str | Path) -> Path:
        """Write ``input_spec.json`` into ``folder``; returns its path."""
        path = Path(folder) / SPEC_FILE
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> InputSpec:
        """Read ``input_spec.json`` (the file, or the folder holding it)."""
        path = Path(path)
        path = path / SPEC_FILE if path.is_dir() else path
        try:
            return cls.from_json(path.read_text())
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"cannot read the model's input spec {path}: {exc}") from None

    # ------------------------------------------------------------------ images

    def decode(self, image: Any) -> np.ndarray:
        """One raw image -> uint8 (pic_size, pic_size, channels), as the training data was read.

        ``image``: a uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of any size, encoded
        bytes of an image file (PNG, JPEG, ...), or a PIL image."""
        if isinstance(image, (bytes, bytearray, memoryview)):
            try:
                with Image.open(io.BytesIO(bytes(image))) as pil:
                    return self._fit(pil)
            except (OSError, ValueError, SyntaxError) as exc:
                raise DataError(f"cannot decode the image bytes ({len(image)} bytes): {exc}") from None
        if isinstance(image, Image.Image):
            return self._fit(image)
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise DataError(
                f"images must be uint8 pixels (0-255), got dtype {arr.dtype}: pass raw images, "
                "not standardized ones (e.g. np.asarray(img, dtype=np.uint8))"
            )
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
            raise DataError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8, got shape {arr.shape}")
        return self._fit(Image.fromarray(arr, _MODE_OF_CHANNELS[1 if arr.ndim == 2 else arr.shape[-1]]))

    def _fit(self, pil: Image.Image) -> np.ndarray:
        # the order of fer_exp.data.cache.decode_image: convert the mode, then resize
        pil = pil.convert(_PIL_MODES[self.color_mode])
        if pil.size != (self.pic_size, self.pic_size):
            pil = pil.resize((self.pic_size, self.pic_size), RESAMPLE_FILTERS[self.interpolation])
        arr = np.asarray(pil, dtype=np.uint8)
        return arr[..., None] if arr.ndim == 2 else arr

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) at the model's size -> float32 model input, as validation batches are."""
        mean = None if self.mean is None else np.asarray(self.mean, np.float32).reshape(1, 1, -1)
        std = None if self.std is None else np.asarray(self.std, np.float32).reshape(1, 1, -1)
        # standardize() reads rescale / samplewise_* / featurewise_* by name: the spec has them all
        return standardize(np.asarray(x, dtype=np.float32), self, mean, std)  # type: ignore[arg-type]

    def prepare(self, images) -> np.ndarray:
        """Raw images (a list, or a uint8 array (N, H, W[, C])) -> float32 (N, H, W, C) model input."""
        if isinstance(images, np.ndarray) and images.ndim in (3, 4) and images.dtype == np.uint8:
            images = list(images)
        decoded = [self.decode(img) for img in images]
        if not decoded:
            return np.zeros((0, *self.input_shape), np.float32)
        return self.standardize(np.stack(decoded))

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Model outputs -> (N, k) class probabilities (a binary model's one sigmoid unit -> two columns)."""
        out = np.asarray(outputs, dtype=np.float32)
        if self.class_mode == "binary" and out.ndim == 2 and out.shape[1] == 1:
            out = np.concatenate([1.0 - out, out], axis=1)
        return out


def _channels(values) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))
