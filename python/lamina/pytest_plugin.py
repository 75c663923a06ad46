"""pytest fixtures for testing metrics built on lamina.

Installed with lamina and registered as the ``lamina`` pytest plugin, so the fixtures are available
in any test suite without imports (or load it explicitly with ``pytest -p lamina.pytest_plugin``):

``lamina_store``
    A temporary :class:`lamina.Store`, closed (and removed) after the test.

``lamina_store_factory``
    A function ``make(name="store", **options) -> lamina.Store`` that opens a persistent store in
    a directory under the test's ``tmp_path``. Calling it again with the same name after closing
    the first store reopens the same directory, which is how tests check what survives a restart.
    Every store it opened is closed after the test.

.. code-block:: python

    def test_daily_users(lamina_store):
        lamina_store.append(events)
        lamina_store.define(lamina.View("daily", time="ts", grain="1d",
                                        metrics={"users": lamina.count_distinct("user_id")}))
        lamina_store.recompute()
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lamina.store import Store


class StoreFactory:
    """Opens persistent stores under one directory and closes them all at the end of the test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[Store] = []

    def path(self, name: str = "store") -> Path:
        """The directory a store called ``name`` lives in (it may not exist yet)."""
        return self.root / name

    def __call__(self, name: str = "store", **options: Any) -> Store:
        import lamina

        store = lamina.Store(self.path(name), **options)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        errors: list[BaseException] = []
        for store in reversed(self.opened):
            try:
                store.close()
            except Exception as e:  # close every store even if one fails
                errors.append(e)
        self.opened.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def lamina_store() -> Iterator[Store]:
    """A temporary lamina store, closed and removed after the test."""
    import lamina

    store = lamina.Store()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def lamina_store_factory(tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """``make(name="store", **options)``: a persistent lamina store in ``tmp_path / name``.

    Options are those of :class:`lamina.Store` (``read_only``, ``time``, ``quarantine``, ...).
    ``make.path(name)`` gives the directory without opening it.
    """
    factory = StoreFactory(tmp_path / "lamina")
    try:
        yield factory
    finally:
        factory.close_all()
