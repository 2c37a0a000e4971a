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

from fer_exp.models.base import ModelSpec
from fer_exp.registry import subclasses_by_tag, tagged_union

_NOT_MODELS = {"base", "layers"}


def _import_model_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _NOT_MODELS:
            importlib.import_module(f"{__name__}.{module.name}")


def registered() -> dict[str, type[ModelSpec]]:
    """Every model of the zoo by its config name (``model=<name>``)."""
    return subclasses_by_tag(ModelSpec, "name")


_import_model_modules()

# The ``model`` config section: one of the registered schemas, chosen by ``model.name``.
ModelConfig = tagged_union(registered(), "name")

__all__ = ["ModelConfig", "ModelSpec", "registered"]
