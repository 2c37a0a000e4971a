"""Trained models applied to new images: the input a run's model expects (:mod:`.preprocess`)
and a model loaded from a run, a registry or a ``.keras`` file (:mod:`.loading`)."""

from fer_exp.inference.preprocess import SPEC_FILE, InputSpec

__all__ = ["SPEC_FILE", "InputSpec"]
