"""Errors that are the user's to fix: reported as one clear message, never as a traceback."""

from hydra.errors import CompactHydraException


class UserError(CompactHydraException):
    """A problem in the user's config or data; the message names it and the fix.

    Hydra prints a CompactHydraException as its message alone, without a stack trace.
    """


class ConfigError(UserError):
    """A config value that is missing, of the wrong type or out of range."""


class DataError(UserError):
    """Data that is missing, laid out wrongly or unreadable."""
