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
    """An operating-system I/O failure (disk full, permissions). ``errno`` is the system's error
    number when it is known; a missing file is also a :class:`FileNotFoundError` and a refused
    permission also a :class:`PermissionError`, as Python's own I/O raises them."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        if errno is None:
            super().__init__(message)
        else:
            super().__init__(errno, message)

    def __str__(self) -> str:  # OSError would prefix "[Errno N]"; the message says it all
        return str(self.strerror if self.errno is not None else (self.args[0] if self.args else ""))


class LaminaFileNotFoundError(LaminaIOError, FileNotFoundError):
    """A file or folder the store needs is missing (``errno.ENOENT``)."""


class LaminaPermissionError(LaminaIOError, PermissionError):
    """The operating system refused access to a file of the store (``errno.EACCES``/``EPERM``)."""


_IO_CLASSES: dict[type[OSError], type[LaminaIOError]] = {
    FileNotFoundError: LaminaFileNotFoundError,
    PermissionError: LaminaPermissionError,
}


def io_error(message: str, errno: int | None) -> LaminaIOError:
    """The :class:`LaminaIOError` for a system error number (what the core raises): also the
    built-in subclass Python's own I/O would raise for that number (``FileNotFoundError``,
    ``PermissionError``, ``NotADirectoryError``, ...)."""
    if errno is None:
        return LaminaIOError(message)
    base = type(OSError(errno, message))  # Python picks the subclass of an errno
    cls = _IO_CLASSES.get(base)
    if cls is None and base is not OSError:
        cls = type(f"Lamina{base.__name__}", (LaminaIOError, base), {"__module__": __name__})
        _IO_CLASSES[base] = cls
    return (cls or LaminaIOError)(message, errno)


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
    "LaminaFileNotFoundError",
    "LaminaPermissionError",
    "InputFileError",
]


class InputFileError(LaminaError, ValueError):
    """An input file (an ingested or watched file) cannot be read; the message names it."""
