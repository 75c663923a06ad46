"""Progress bars for long work: tqdm in a notebook or a terminal, silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def interactive() -> bool:
    try:
        from IPython import get_ipython  # type: ignore[attr-defined]

        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _tqdm() -> Any:
    """tqdm's notebook bar in Jupyter when ipywidgets is installed, its text bar otherwise
    (``tqdm.auto`` would warn ``IProgress not found`` on every bar without ipywidgets)."""
    try:
        from IPython import get_ipython  # type: ignore[attr-defined]

        if get_ipython() is not None and "IPKernelApp" in get_ipython().config:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm

            return tqdm
    except Exception:  # noqa: BLE001 - no IPython, no kernel or no widgets: the text bar
        pass
    from tqdm.std import tqdm

    return tqdm


class Progress:
    """A callback for the core: called with (rows done, rows total) about every 100 ms."""

    def __init__(self, description: str, enabled: bool | None = None) -> None:
        self.enabled = interactive() if enabled is None else enabled
        self.description = description
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        if self.bar is None:
            self.bar = _tqdm()(total=total, desc=self.description, unit="row", unit_scale=True, leave=False)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def callback(progress: bool | Callable[[int, int], None] | None, description: str) -> Progress | Callable:
    if callable(progress):
        return progress
    return Progress(description, enabled=progress)
