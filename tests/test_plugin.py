"""The pytest plugin: the `lamina_store` and `lamina_store_factory` fixtures, run in a separate
pytest process on a generated test file."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GENERATED = textwrap.dedent(
    """
    import datetime as dt
    import os

    import pyarrow as pa
    import pytest

    import lamina

    SEEN = {}
    EVENTS = pa.table({
        "ts": [dt.datetime(2026, 3, 2, h) for h in range(6)],
        "page": ["/", "/käse", "/", "/カート", "/", "/käse"],
    })


    def test_temporary_store(lamina_store):
        assert isinstance(lamina_store, lamina.Store) and lamina_store.temporary
        assert lamina_store.append(EVENTS) == 1
        lamina_store.define(lamina.View("p", time="ts", grain="1d", by=["page"],
                                        metrics={"n": lamina.count()}))
        served = lamina_store.query("p")
        truth = {}
        for page in EVENTS.column("page").to_pylist():
            truth[page] = truth.get(page, 0) + 1
        assert dict(zip(served.column("page").to_pylist(), served.column("n").to_pylist())) == truth
        SEEN["temporary"] = str(lamina_store.path)
        assert os.path.isdir(SEEN["temporary"])


    def test_temporary_store_was_closed_and_removed():
        assert not os.path.exists(SEEN["temporary"])


    def test_each_test_gets_a_fresh_store(lamina_store):
        assert lamina_store.status()["latest_commit"] == 0
        assert str(lamina_store.path) != SEEN["temporary"]


    def test_factory_reopens_persistent_stores(lamina_store_factory, tmp_path):
        first = lamina_store_factory("warehouse")
        assert not first.temporary
        assert first.path == lamina_store_factory.path("warehouse")
        assert str(first.path).startswith(str(tmp_path))
        first.append(EVENTS)
        first.close()
        again = lamina_store_factory("warehouse")
        assert again.snapshot().num_rows == EVENTS.num_rows
        other = lamina_store_factory("other", time="ts")
        assert other.path != again.path
        SEEN["left_open"] = str(again.path)  # not closed here: the factory must close it


    def test_factory_closed_its_stores():
        # the writer lock of the store left open above was released at teardown
        with lamina.Store(SEEN["left_open"]) as store:
            assert store.snapshot().num_rows == EVENTS.num_rows
    """
)


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        env=env,
    )


def entry_point_installed() -> bool:
    return any(
        ep.name == "lamina" and ep.value == "lamina.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


def test_fixtures_in_a_generated_suite(tmp_path: Path) -> None:
    (tmp_path / "test_generated.py").write_text(GENERATED, encoding="utf-8")
    # `-p no:lamina` first, so loading the module explicitly works whether or not the installed
    # entry point already registered it (pytest refuses one plugin under two names).
    result = run_pytest(tmp_path, "-p", "no:lamina", "-p", "lamina.pytest_plugin", "-q", "test_generated.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_a_failing_test_still_closes_the_store(tmp_path: Path) -> None:
    (tmp_path / "test_failing.py").write_text(
        textwrap.dedent(
            """
            import os
            SEEN = {}

            def test_fails(lamina_store):
                SEEN["path"] = str(lamina_store.path)
                assert False, "on purpose"

            def test_store_removed():
                assert not os.path.exists(SEEN["path"])
            """
        ),
        encoding="utf-8",
    )
    result = run_pytest(tmp_path, "-p", "no:lamina", "-p", "lamina.pytest_plugin", "-q", "test_failing.py")
    assert result.returncode == 1
    assert "1 failed, 1 passed" in result.stdout


@pytest.mark.skipif(
    not entry_point_installed(), reason="lamina is not installed with its pytest11 entry point"
)
def test_entry_point_registers_the_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_generated.py").write_text(GENERATED, encoding="utf-8")
    listed = run_pytest(tmp_path, "--fixtures", "-q")
    assert listed.returncode == 0, listed.stderr
    assert "lamina_store" in listed.stdout and "lamina_store_factory" in listed.stdout
    result = run_pytest(tmp_path, "-q", "test_generated.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_fixtures_are_available_in_this_session(request: pytest.FixtureRequest) -> None:
    manager = request.config.pluginmanager
    if not (manager.has_plugin("lamina") or manager.has_plugin("lamina.pytest_plugin")):
        pytest.skip("the lamina plugin is not loaded in this session")
    store = request.getfixturevalue("lamina_store")
    assert store.temporary and store.status()["latest_commit"] == 0
