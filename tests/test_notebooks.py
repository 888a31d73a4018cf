"""Execute every notebook in ``notebooks/`` headless, top to bottom, as CI does.

Why real execution: the notebooks are user documentation with assertions in them; running them proves that every
example still works against the current library (local model, ScriptedServer, Mock; no network, no API key).
The kernel must run this test's Python (the venv with guidance_lite's dependencies): the ``python3`` kernelspec is
checked, and replaced by a temporary one pointing at ``sys.executable`` when it would start another interpreter.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient.exceptions import CellExecutionError, CellTimeoutError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "python3"
CELL_TIMEOUT = 300  # seconds per cell
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# ``python`` in a kernelspec's argv is replaced by sys.executable when jupyter_client starts the kernel
PYTHON_ALIASES = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}

pytestmark = pytest.mark.notebook


def test_there_are_at_least_four_notebooks() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert len(names) >= 4, f"expected at least 4 notebooks in {NOTEBOOK_DIR}, found {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    """Outputs and execution counts stay out of the repository (clean diffs, no stale results)."""
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


def _runs_this_python(argv: list[str]) -> bool:
    if not argv:
        return False
    if argv[0] in PYTHON_ALIASES:
        return True
    # no symlink resolution: a venv's python links to the base interpreter but has other site-packages
    return os.path.abspath(argv[0]) == os.path.abspath(sys.executable)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Make the ``python3`` kernel run ``sys.executable`` with this checkout importable, and keep it offline."""
    saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", "PYTHONPATH", "OPENAI_API_KEY")}
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        usable = _runs_this_python(spec.argv)
    except NoSuchKernel:
        usable = False
    if not usable:  # write a kernelspec for this interpreter and put it first on the search path
        data_dir = tmp_path_factory.mktemp("jupyter")
        kernel_dir = data_dir / "kernels" / KERNEL_NAME
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": f"Python {sys.version_info[0]} (guidance_lite tests)",
                    "language": "python",
                }
            )
        )
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data_dir), saved["JUPYTER_PATH"]]))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ.pop("OPENAI_API_KEY", None)  # the notebooks must never reach a paid API
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _describe_failure(notebook: nbformat.NotebookNode, error: Exception) -> str:
    """The failing cell's source and the error, without terminal colour codes.

    A CellExecutionError's message already holds the cell's source; for a timeout, the cell is the last one that
    started (nbclient numbers a cell when the kernel begins executing it).
    """
    message = ANSI_ESCAPE.sub("", str(error))
    if isinstance(error, CellTimeoutError):
        started = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.get("execution_count")]
        if started:
            message = f"{message}\nthe cell that timed out:\n{started[-1].source}"
    return message


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, kernel_env: None) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        pytest.fail(f"{path.name} failed:\n{_describe_failure(notebook, error)}", pytrace=False)
    ran = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert ran and all(cell.get("execution_count") for cell in ran), f"{path.name}: not every code cell ran"
