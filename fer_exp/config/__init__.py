"""The run config: its schema (one pydantic model per section), validation, and composition.

>>> from fer_exp.config import compose
>>> compose(["model=resnet"]).model.name
'resnet'
"""

from fer_exp.config.augmentation import AugmentationConfig
from fer_exp.config.compose import compose, config_dir
from fer_exp.config.data import CHANNELS, FER2013_EMOTIONS, DataConfig
from fer_exp.config.schema import TTA_MAX_SHIFT, RunConfig
from fer_exp.config.validate import validate

__all__ = [
    "AugmentationConfig",
    "CHANNELS",
    "DataConfig",
    "FER2013_EMOTIONS",
    "RunConfig",
    "TTA_MAX_SHIFT",
    "compose",
    "config_dir",
    "validate",
]
