"""The base of every config section: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A config section: a misspelt key is an error (``extra="forbid"``) and a validated
    config cannot change afterwards (``frozen``), so what is logged is what ran."""

    model_config = ConfigDict(extra="forbid", frozen=True)
