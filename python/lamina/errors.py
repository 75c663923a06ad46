"""The exceptions lamina raises. Every one derives from :class:`LaminaError`.

Several also derive from the matching built-in, so code that already catches ``KeyError`` or
``ValueError`` keeps working.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class of every lamina error."""


class SchemaError(LaminaError, ValueError):
    """Data does not fit the store's schema: a missing or extra column, a wrong type, a null
    event time, a value out of range. The message names the column and the first bad row."""


class LockError(LaminaError):
    """Another process holds the store's writer lock (or the store was opened read-only)."""


class CorruptionError(LaminaError):
    """A file of the store failed its checksum or could not be decoded; the message names it."""


class NotFoundError(LaminaError, KeyError):
    """An unknown view, column or commit."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(LaminaError, ValueError):
    """A bad argument: grain, filter, view definition."""


class SumOverflowError(LaminaError, OverflowError):
    """An integer sum does not fit in int64."""


class StoreClosedError(LaminaError):
    """The store was closed."""


class LaminaIOError(LaminaError, OSError):
    """An operating-system I/O failure (disk full, permissions)."""


__all__ = [
    "LaminaError",
    "SchemaError",
    "LockError",
    "CorruptionError",
    "NotFoundError",
    "InvalidArgumentError",
    "SumOverflowError",
    "StoreClosedError",
    "LaminaIOError",
    "InputFileError",
]


class InputFileError(LaminaError, ValueError):
    """An input file (an ingested or watched file) cannot be read; the message names it."""
