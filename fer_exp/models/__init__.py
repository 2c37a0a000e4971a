"""The model zoo: one architecture per file, registered by being there.

Every module in this package (but :mod:`~fer_exp.models.base` and
:mod:`~fer_exp.models.layers`) is imported once, and every :class:`ModelSpec` subclass it
defines becomes a choice of the ``model`` config key, by its ``name``. Adding a model is one
file here and one YAML in ``conf/model/`` (see the "Extending fer_exp" page).

>>> sorted(registered())
['mini_xception', 'resnet', 'seed_cnn', 'small_cnn', 'vgg_fer']
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from fer_exp.models.base import ModelSpec

_NOT_MODELS = {"base", "layers"}


def _import_model_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_MODELS:
            importlib.import_module(f"{__name__}.{module.name}")


def registered() -> dict[str, type[ModelSpec]]:
    """Every model of the zoo by its config name (``model=<name>``)."""
    found: dict[str, type[ModelSpec]] = {}
    pending = list(ModelSpec.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        name = cls.model_fields.get("name")
        if name is None:  # an abstract intermediate class
            continue
        (value,) = name.annotation.__args__  # name: Literal["<name>"]
        if value in found and found[value] is not cls:
            raise TypeError(f"two models are named {value!r}: {found[value].__module__} and {cls.__module__}")
        found[value] = cls
    return dict(sorted(found.items()))


_import_model_modules()

# The ``model`` config section: one of the registered schemas, chosen by ``model.name``.
ModelConfig = Annotated[Union[tuple(registered().values())], Field(discriminator="name")]  # noqa: UP007

__all__ = ["ModelConfig", "ModelSpec", "registered"]
