"""The notebooks run from top to bottom without errors (their own cells assert their claims
against pyarrow computations on the raw events), and are stored without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["quickstart.ipynb", "lambda_architecture.ipynb"]
PLOTS = {"quickstart.ipynb": 0, "lambda_architecture.ipynb": 1}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name: str, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    # "python3" is the kernel of the running interpreter (ipykernel's native kernel)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    took = time.perf_counter() - started
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert took < 60, f"{name} took {took:.0f} s"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == PLOTS[name]
    assert list(tmp_path.iterdir()) == []  # temporary stores only: nothing left behind


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


# ---------------------------------------------------------------- (from test_experience_v2.py)


def test_progress_bars_never_warn_without_ipywidgets(recwarn) -> None:
    from lamina._progress import Progress

    p = Progress("recompute", enabled=True)
    p(5, 10)
    p(10, 10)
    p.close()
    assert not [w for w in recwarn if "tqdm" in str(w.category).lower() or "IProgress" in str(w.message)]
    assert p.bar is not None and type(p.bar).__module__ == "tqdm.std"
