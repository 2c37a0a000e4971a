"""A trained model, ready for raw images: from a run id, ``runs:/<id>/model``, a registered
``models:/NAME@alias`` or ``models:/NAME/3``, a ``.keras`` file, or a model folder.

A model folder is what a run logs as its MLflow Model (:mod:`fer_exp.serving`): ``best.keras``
beside ``input_spec.json`` (:class:`~fer_exp.inference.preprocess.InputSpec`), or for an ensemble
``members.json`` and one such pair per member under ``members/<i>/``. Everything here reads
files; MLflow is asked only to download a remote model's folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_exp.errors import UserError
from fer_exp.inference.preprocess import SPEC_FILE, InputSpec

KERAS_FILE = "best.keras"
MEMBERS_FILE = "members.json"
BATCH = 256  # images per forward pass: memory stays flat for a folder of thousands


@dataclass
class Predictor:
    """One Keras model and the input it was trained on."""

    model: object
    spec: InputSpec

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the probability columns, in order."""
        return self.spec.class_names

    def predict_proba(self, images, batch_size: int = BATCH) -> np.ndarray:
        """Raw images (uint8 arrays of any size, encoded bytes, PIL images) -> (N, k) probabilities."""
        images = list(images)
        out = [
            self.predict_prepared(self.spec.prepare(images[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict_prepared(self, x: np.ndarray) -> np.ndarray:
        """Already prepared model input (:meth:`InputSpec.prepare`) -> (N, k) probabilities."""
        outputs = self.model(x, training=False)
        return self.spec.probabilities(np.asarray(outputs, dtype=np.float32))

    def labels(self, probabilities: np.ndarray) -> list[str]:
        """The class name of each row's highest probability."""
        return [self.class_names[i] for i in np.asarray(probabilities).argmax(axis=1)]


@dataclass
class EnsemblePredictor:
    """Several predictors of the same classes; their probabilities averaged, each member
    preparing the images its own way (its size, colour mode, standardization)."""

    members: list[Predictor]

    @property
    def spec(self) -> InputSpec:
        """The first member's spec (the members share their classes)."""
        return self.members[0].spec

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the probability columns, in order."""
        return self.spec.class_names

    def predict_proba(self, images, batch_size: int = BATCH) -> np.ndarray:
        """The members' probabilities for the images, averaged."""
        images = list(images)
        return np.mean([m.predict_proba(images, batch_size) for m in self.members], axis=0)

    def labels(self, probabilities: np.ndarray) -> list[str]:
        """The class name of each row's highest probability."""
        return self.members[0].labels(probabilities)


def load_keras(path: str | Path):
    """A fer_exp Keras model for inference (no optimizer), in Keras's safe mode
    (:func:`fer_exp.models.layers.load_saved_model`)."""
    from fer_exp.models.layers import load_saved_model

    return load_saved_model(path, compile=False)


def load_folder(folder: str | Path) -> Predictor | EnsemblePredictor:
    """A model folder (``best.keras`` + ``input_spec.json``, or an ensemble's ``members.json``)."""
    folder = Path(folder)
    if (folder / MEMBERS_FILE).exists():
        names = json.loads((folder / MEMBERS_FILE).read_text())["members"]
        return EnsemblePredictor([load_folder(folder / "members" / name) for name in names])
    if not (folder / KERAS_FILE).exists():
        raise UserError(f"{folder} is not a fer_exp model folder: no {KERAS_FILE} (or {MEMBERS_FILE}) in it")
    return Predictor(load_keras(folder / KERAS_FILE), InputSpec.load(folder / SPEC_FILE))


def spec_beside(keras_file: Path) -> Path:
    """The ``input_spec.json`` of a ``.keras`` file: beside it (a model folder, a run's
    ``checkpoints/``) or in the run folder above it."""
    for folder in (keras_file.parent, keras_file.parent.parent, keras_file.parent.parent / "model"):
        if (folder / SPEC_FILE).exists():
            return folder / SPEC_FILE
    raise UserError(
        f"no {SPEC_FILE} beside {keras_file}: fer_exp runs write it into checkpoints/ (runs before "
        "fer_exp 0.3 did not); load the run's logged model instead (its run id, or runs:/<id>/model)"
    )


def load_predictor(ref: str | Path, tracking_uri: str | None = None) -> Predictor | EnsemblePredictor:
    """A model ready for raw images.

    Args:
        ref: an MLflow run id, ``runs:/<id>/model``, ``models:/NAME@alias``, ``models:/NAME/<version>``,
            a ``.keras`` file (its ``input_spec.json`` beside it or in its run folder), or a model folder.
        tracking_uri: the MLflow store of run ids and ``runs:/`` / ``models:/`` URIs (default: MLflow's own).

    Returns:
        An object with ``.spec``, ``.class_names`` and ``.predict_proba(images) -> (N, k)``.
    """
    text = str(ref)
    path = Path(text).expanduser()
    if path.suffix == ".keras":
        if not path.is_file():
            raise UserError(f"model file not found: {path}")
        return Predictor(load_keras(path), InputSpec.load(spec_beside(path)))
    if path.is_dir():
        return load_folder(path)
    if re.fullmatch(r"[0-9a-f]{32}", text):
        text = f"runs:/{text}/model"
    if not text.startswith(("runs:/", "models:/")):
        raise UserError(
            f"model {text!r} is neither a run id, a runs:/ or models:/ URI, a .keras file nor a model folder"
        )
    return load_folder(_download(text, tracking_uri))


def _download(uri: str, tracking_uri: str | None) -> Path:
    """The model folder of a ``runs:/`` or ``models:/`` URI, downloaded (a local store: read in
    place). The store goes to MLflow per call: the process's global URIs stay as they were."""
    import mlflow

    try:
        return Path(
            mlflow.artifacts.download_artifacts(artifact_uri=_resolve(uri, tracking_uri), tracking_uri=tracking_uri)
        )
    except Exception as exc:
        why = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        why = re.sub(r"//[^/@\s]+@", "//***@", why)  # a password in a URI never reaches the message
        raise UserError(f"cannot load the model {uri}: {why}") from None


def _resolve(uri: str, tracking_uri: str | None) -> str:
    """``models:/NAME@alias``, ``models:/NAME/<version>`` and ``models:/<model id>`` -> the
    artifact URI of the model's files, looked up in ``tracking_uri`` (MLflow's own resolution
    of a ``models:/`` URI reads the global registry URI, whatever it is passed)."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("models:/"):
        return uri
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    body = uri[len("models:/") :].rstrip("/")
    if body.startswith("m-"):
        source = uri
    elif "@" in body:
        name, alias = body.split("@", 1)
        source = client.get_model_version_by_alias(name, alias).source
    elif "/" in body:
        name, version = body.rsplit("/", 1)
        source = client.get_model_version(name, version).source
    else:
        raise UserError(f"model {uri!r}: name a version or an alias (models:/NAME@champion, models:/NAME/3)")
    if source.startswith("models:/m-"):  # a version of an MLflow 3 logged model
        return client.get_logged_model(source[len("models:/") :].split("/")[0]).artifact_location
    return source
