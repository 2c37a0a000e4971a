"""The folder of a fer_exp MLflow Model: ``MLmodel`` (pyfunc flavor, signature, input example,
class names and input spec in its metadata), the requirements, and the model files
:func:`fer_exp.inference.loading.load_folder` reads (``best.keras`` + ``input_spec.json``, or an
ensemble's ``members.json`` and ``members/<i>/``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import numpy as np

from fer_exp.inference.loading import KERAS_FILE, MEMBERS_FILE
from fer_exp.inference.preprocess import InputSpec
from fer_exp.serving.pyfunc import IMAGE_COLUMN, LABEL_COLUMN

LOADER_MODULE = "fer_exp.serving.pyfunc"
# What the model needs at load time; fer_exp itself must be installed where it is served
# (mlflow models serve --env-manager local): it is not on PyPI.
_REQUIREMENTS = ("mlflow", "tensorflow", "keras", "numpy", "pandas", "pillow", "pydantic")


def save_model_dir(target: str | Path, members: list[tuple[Path, InputSpec]], run_id: str | None = None) -> Path:
    """Write the MLflow Model of one Keras model, or of an ensemble (several ``(keras file,
    spec)``), into ``target`` (replaced if it exists: built beside it, then renamed).

    Args:
        target: the model folder to write (a run's ``model/``).
        members: ``[(best.keras, its InputSpec)]``, one pair per ensemble member.
        run_id: the MLflow run the model belongs to, recorded in ``MLmodel``.
    """
    import mlflow
    from mlflow.models import Model

    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    spec = members[0][1]
    with _quiet("mlflow.pyfunc", "mlflow.models"):  # "Validating input example against model signature"
        mlflow.pyfunc.save_model(
            str(tmp),
            loader_module=LOADER_MODULE,
            signature=signature(spec.class_names),
            input_example=input_example(spec),
            metadata=model_metadata(members),
            pip_requirements=_pinned(),
        )
    if len(members) == 1:
        _place(members[0], tmp)
    else:
        names = [str(i) for i in range(len(members))]
        for name, member in zip(names, members):
            _place(member, tmp / "members" / name)
        (tmp / MEMBERS_FILE).write_text(json.dumps({"members": names}))
    if run_id:
        model = Model.load(str(tmp / "MLmodel"))
        model.run_id, model.artifact_path = run_id, "model"
        model.save(str(tmp / "MLmodel"))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _place(member: tuple[Path, InputSpec], folder: Path) -> None:
    keras_file, spec = member
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(keras_file, folder / KERAS_FILE)
    spec.save(folder)


def signature(class_names):
    """Input: one ``image`` column of encoded image files; output: ``label`` and one
    probability column per class."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    outputs = [ColSpec(DataType.string, LABEL_COLUMN)] + [ColSpec(DataType.double, c) for c in class_names]
    return ModelSignature(Schema([ColSpec(DataType.binary, IMAGE_COLUMN)]), Schema(outputs))


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """MLflow's INFO lines of a routine save off the console; its warnings stay."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def input_example(spec: InputSpec):
    """One PNG at the model's size (a smooth gradient: no user's image ships inside a model)."""
    import pandas as pd
    from PIL import Image

    side = spec.pic_size
    ramp = np.linspace(0, 255, side * side).reshape(side, side).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return pd.DataFrame({IMAGE_COLUMN: [buf.getvalue()]})


def model_metadata(members: list[tuple[Path, InputSpec]]) -> dict:
    """``MLmodel``'s metadata: class names, the input spec (each member's, for an ensemble),
    and how to call the model."""
    specs = [asdict(spec) for _, spec in members]
    return {
        "class_names": list(members[0][1].class_names),
        "input_spec": specs[0] if len(specs) == 1 else specs,
        "ensemble_size": len(members),
        "input": f"a DataFrame column {IMAGE_COLUMN!r} of encoded images (PNG/JPEG; base64 over REST), any size",
        "output": f"{LABEL_COLUMN!r} and one probability column per class",
        "fer_exp_version": _version("fer_exp"),
    }


def _pinned() -> list[str]:
    return [f"{name}=={_version(name)}" if _version(name) else name for name in _REQUIREMENTS]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
