"""Exception and warning classes raised on purpose by fmkit.

Every error a user can cause derives from :class:`FMError`; the CLI prints its message on one
line and exits non-zero, and the server maps it to a 4xx status.
"""

from __future__ import annotations


class FMError(Exception):
    """Base of everything fmkit raises on purpose."""


class ConfigError(FMError, ValueError):
    """A hyperparameter or setting is missing or invalid."""


class DataError(FMError, ValueError):
    """Input shape, dtype or values are wrong."""


class DataTypeError(DataError, TypeError):
    """Input holds values that are not numbers (an object array of dicts, say)."""


class FormatError(DataError):
    """Bytes that are not the claimed format."""


class NotFittedError(FMError, AttributeError):
    """A model was used before it was fitted."""


class ArtifactError(FMError):
    """A model directory is missing files or has an unknown format_version."""


class DivergenceError(FMError, ArithmeticError):
    """Training produced a non-finite loss."""


class RegistryError(FMError):
    """A registry record is missing or the registry database cannot be used."""


class WorkerError(FMError, RuntimeError):
    """A worker process of a multi-process job failed, died or timed out."""


class FMWarning(UserWarning):
    """Base of fmkit's warnings."""
