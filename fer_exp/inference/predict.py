"""Faces in, class probabilities out: detection, cropping and batched inference over a stream.

:func:`predict_frames` reads images one at a time (:mod:`fer_exp.inference.inputs`), finds the
faces of each (:mod:`fer_exp.inference.faces`), and classifies them in batches of
``batch_size`` faces gathered across images, so a folder of small crops and a video with one
face per frame both run at batch speed. It yields each image with its faces as soon as the
batch holding them is done: memory holds one batch of images, never a whole folder or video.

An image already at the model's ``pic_size`` is taken to be a cropped face (as FER-2013's are)
and used whole, as is every image with ``detect=False``; those are read exactly as the training
files were (:meth:`InputSpec.decode`: the run's resize filter). ``tta`` averages the views the
runs average (:func:`~fer_exp.augment.tta.tta_views`: the face and its mirror, and with
``tta_shift`` their shifted copies), in one model call per batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from fer_exp.augment.tta import tta_views
from fer_exp.errors import UserError
from fer_exp.inference.faces import Box, detect_faces, square_crop, to_model_image
from fer_exp.inference.inputs import Frame


@dataclass(frozen=True)
class Options:
    """How faces are found and classified (the ``predict`` command's flags)."""

    detect: bool = True  # False: every image is a face, used whole
    min_face: int = 30  # smallest face to detect, in the photo's pixels
    margin: float = 0.0  # grown on every side of the detector's box, as a fraction of its side
    batch_size: int = 64
    tta: bool = False
    tta_shift: int = 0


@dataclass
class Face:
    """One face of an image: its box (None: the whole image), the uint8 image the model saw
    (pic_size square, the model's colour mode) and its class probabilities."""

    box: Box | None
    image: np.ndarray
    probs: np.ndarray | None = None


@dataclass
class Result:
    """An image and its faces; ``detected``: the face detector looked at it (empty ``faces``:
    none found)."""

    frame: Frame
    faces: list[Face]
    detected: bool


def find_faces(frame: Frame, spec, options: Options) -> Result:
    """The faces of one image, cropped and converted for the model described by ``spec``."""
    image = frame.image
    whole = not options.detect or image.shape[:2] == (spec.pic_size, spec.pic_size)
    if whole:
        return Result(frame, [Face(None, spec.decode(image))], detected=False)
    faces = [
        Face(box, to_model_image(square_crop(image, box, options.margin), spec.pic_size, spec.color_mode))
        for box in detect_faces(image, options.min_face)
    ]
    return Result(frame, faces, detected=True)


def check_model(predictor) -> None:
    """A UserError when a model's input layer does not take the images its input spec describes
    (a ``.keras`` file paired with another run's ``input_spec.json``); checked once, before any
    image is read, so the message names both shapes instead of a layer deep inside the model."""
    for member in getattr(predictor, "members", [predictor]):
        model, spec = getattr(member, "model", None), member.spec
        shape = tuple(getattr(model, "input_shape", None) or ())[1:]
        if shape and any(want is not None and want != got for want, got in zip(shape, spec.input_shape)):
            raise UserError(
                f"the model takes {_shape(shape)} images but its input spec describes {_shape(spec.input_shape)} "
                f"({spec.pic_size}x{spec.pic_size} {spec.color_mode}): the .keras file and its input_spec.json "
                "come from different runs. Load the model from its run (a run id or runs:/<id>/model)"
            )


def _shape(shape) -> str:
    return "x".join("?" if v is None else str(v) for v in shape)


def classify(predictor, images: np.ndarray, tta: bool = False, tta_shift: int = 0) -> np.ndarray:
    """(N, k) class probabilities of uint8 face images (N, S, S, C) at the model's size; with
    ``tta``, averaged over :func:`~fer_exp.augment.tta.tta_views` of the standardized batch, as the runs do (all views
    in one model call)."""
    members = getattr(predictor, "members", None)
    if members:  # an ensemble: each member standardizes its own way
        return np.mean([classify(m, images, tta, tta_shift) for m in members], axis=0)
    if not len(images):
        return np.zeros((0, len(predictor.class_names)), np.float32)
    if images.shape[1:] != predictor.spec.input_shape:  # an ensemble member of another size
        images = np.stack([predictor.spec.decode(image) for image in images])
    if hasattr(predictor, "predict_prepared"):
        x = predictor.spec.standardize(images)
        batch = tta_views(x, tta_shift) if tta else [x]
        probs = np.asarray(predictor.predict_prepared(np.concatenate(batch)))
    else:  # only raw images in: the views of the raw pixels
        batch = tta_views(images, tta_shift) if tta else [images]
        probs = np.asarray(predictor.predict_proba(np.concatenate(batch)))
    return probs.reshape(len(batch), len(images), -1).mean(axis=0)


def predict_frames(predictor, frames: Iterable[Frame], options: Options = Options()) -> Iterator[Result]:
    """Each image of ``frames`` with its faces and their probabilities, in input order."""
    if options.batch_size < 1:
        raise UserError(f"--batch-size must be 1 or more, got {options.batch_size}")
    check_model(predictor)
    pending: list[Result] = []
    waiting = 0  # faces in ``pending`` without probabilities
    for frame in frames:
        result = find_faces(frame, predictor.spec, options)
        pending.append(result)
        waiting += len(result.faces)
        if waiting >= options.batch_size:
            yield from _flush(predictor, pending, options)
            pending, waiting = [], 0
    yield from _flush(predictor, pending, options)


def _flush(predictor, pending: list[Result], options: Options) -> Iterator[Result]:
    faces = [face for result in pending for face in result.faces]
    for start in range(0, len(faces), options.batch_size):
        chunk = faces[start : start + options.batch_size]
        probs = classify(predictor, np.stack([f.image for f in chunk]), options.tta, options.tta_shift)
        for face, p in zip(chunk, probs):
            face.probs = p
    yield from pending
