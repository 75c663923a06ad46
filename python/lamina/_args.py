"""Checks of public arguments: a wrong type is a :class:`lamina.InvalidArgumentError` naming the
argument, never a foreign ``TypeError`` from deep inside (pyo3's conversions, ``json.dumps``,
``len()``). One helper per kind of argument, used by every public entry point."""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lamina.errors import InvalidArgumentError


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def flag(value: Any, name: str) -> bool:
    """A bool (numpy's bool too)."""
    if isinstance(value, bool):
        return value
    if getattr(getattr(value, "dtype", None), "kind", None) == "b":
        return bool(value)
    raise InvalidArgumentError(f"{name} must be True or False, not {_shown(value)}")


def text(value: Any, name: str, *, optional: bool = False, empty: bool = False) -> Any:
    """A str (None too when ``optional``); non-empty unless ``empty``."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        kind = "a string or None" if optional else "a string"
        raise InvalidArgumentError(f"{name} must be {kind}, not {_shown(value)}")
    if not value and not empty:
        raise InvalidArgumentError(f"{name} must not be empty")
    return value


def integer(value: Any, name: str, *, minimum: int | None = None, optional: bool = False) -> Any:
    """An int (numpy integers too, not bools or floats), at least ``minimum``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        number = None
    else:
        try:
            number = operator.index(value)
        except TypeError:
            number = None
    if number is None:
        raise InvalidArgumentError(f"{name} must be an integer, not {_shown(value)}")
    if minimum is not None and number < minimum:
        raise InvalidArgumentError(f"{name} must be at least {minimum}, not {number}")
    return number


def number(value: Any, name: str, *, positive: bool = False, optional: bool = False) -> Any:
    """An int or float (not a bool)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(value, "__float__"):
        raise InvalidArgumentError(f"{name} must be a number, not {_shown(value)}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a number, not {_shown(value)}") from None
    if positive and not out > 0:
        raise InvalidArgumentError(f"{name} must be positive, not {_shown(value)}")
    return value


def names(value: Any, name: str, *, optional: bool = False) -> Any:
    """A list of strings (one string stands for a list of one)."""
    if value is None and optional:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentError(f"{name} must be a list of names (strings), not {_shown(value)}")
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise InvalidArgumentError(f"{name} must be a list of names (strings), not {_shown(value)}")
    return out


def path(value: Any, name: str) -> str:
    """A filesystem path: a non-empty str or os.PathLike (not bytes, not a number)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{name} must be a path (a str or pathlib.Path), not {_shown(value)}")
    if not value:
        raise InvalidArgumentError(f"{name} is empty: give a directory")
    if "\0" in value:
        raise InvalidArgumentError(f"{name} holds a NUL character")
    return str(Path(value))


def mapping(value: Any, name: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(f"{name} must be a dict, not {_shown(value)}")
    return value
