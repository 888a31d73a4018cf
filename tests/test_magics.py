"""The IPython extension (``%load_ext guidance_lite``): ``%%program`` and ``%%run_program`` in a real kernel (nbclient),
with what a user sees checked output by output: the live view, and template errors shown as the cell's own line and
caret instead of a traceback. notebooks/05_cell_magics.ipynb is the worked example (run by test_notebooks.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import nbclient
import nbformat
import pytest
from IPython.core.error import UsageError
from nbformat.v4 import new_code_cell, new_notebook
from test_notebooks import KERNEL_NAME, kernel_env  # noqa: F401 - the fixture that makes the kernel run this Python

from guidance_lite.magics import parse_magic_line

ANSI = re.compile(r"\x1b\[[0-9;]*m")
pytestmark = pytest.mark.notebook


# ---- the magic line ------------------------------------------------------------------------------------------------
def test_the_magic_line_is_words_then_key_expression_pairs() -> None:
    line = 'capital model=gl.models.Mock("a b", x=1) tools=[f, g] note="k=v" temperature=0.5'
    assert parse_magic_line(line, "usage") == (
        ["capital"],
        [("model", 'gl.models.Mock("a b", x=1)'), ("tools", "[f, g]"), ("note", '"k=v"'), ("temperature", "0.5")],
    )
    assert parse_magic_line("", "usage") == ([], [])
    assert parse_magic_line("x flag=a == b", "usage") == (["x"], [("flag", "a == b")])  # == is not a new key


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("x model=", "model= needs a value"),
        ("x model=(1,", "cannot read the magic's arguments"),
        ("1x", "unexpected '1'"),
    ],
)
def test_a_bad_magic_line_is_a_usage_error(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        parse_magic_line(line, "usage: %%program NAME")
    assert str(caught.value).endswith("usage: %%program NAME")


def test_importing_the_package_imports_neither_ipython_nor_pygments() -> None:
    code = "import guidance_lite, sys; print(sorted(m for m in ('IPython', 'pygments') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# ---- in a real kernel ----------------------------------------------------------------------------------------------
CELLS = [
    "%load_ext guidance_lite\nimport guidance_lite as gl\nmodel = gl.models.Mock(['Lima', 'Quito'])\ncountry = 'Peru'",
    "%%program capital model=model\n{{#user}}Capital of {{country}}?{{/user}}\n"
    "{{#assistant}}{{gen 'city'}}{{/assistant}}",
    "print(type(capital).__name__, capital(country='Peru', silent=True)['city'])",
    "%%run_program answer model=model\n{{#user}}Capital of {{country}}?{{/user}}\n"
    "{{#assistant}}{{gen 'city'}}{{/assistant}}",
    "print(answer['city'], answer.variables['country'])",
    "%%program broken\n{{#user}}\n{{gen 'x' max_tokens=}}\n{{/user}}",
    "def shout(text):\n    raise ValueError('too quiet: ' + text)",
    "%%run_program model=model\nline two\n{{shout(country)}}",
    "%%program class\nhi",
    "print('broken' in globals())",
]
RAISES = {5, 7, 8}  # cells expected to fail (tagged so the run goes on)


@pytest.fixture(scope="module")
def executed(kernel_env: None) -> list:  # noqa: F811 - the imported fixture
    cells = []
    for index, source in enumerate(CELLS):
        cell = new_code_cell(source)
        if index in RAISES:
            cell.metadata["tags"] = ["raises-exception"]
        cells.append(cell)
    notebook = new_notebook(cells=cells)
    nbclient.NotebookClient(notebook, timeout=120, kernel_name=KERNEL_NAME).execute()
    return notebook.cells


def outputs(cell: nbformat.NotebookNode, kind: str) -> list:
    return [output for output in cell.outputs if output.output_type == kind]


def test_program_defines_a_program_in_the_notebook(executed: list) -> None:
    assert executed[1].outputs == []  # defining shows nothing
    assert outputs(executed[2], "stream")[0].text == "Program Lima\n"


def test_run_program_runs_with_the_notebooks_variables_and_shows_it_live(executed: list) -> None:
    (live,) = outputs(executed[3], "display_data")
    html = live.data["text/html"]
    assert 'class="gl-root"' in html and "Quito" in html
    assert re.search(r'<span class="gl-value"[^>]*>Peru</span>', html)  # the argument, marked as a value
    assert not outputs(executed[3], "execute_result")  # the live view is the one copy
    assert outputs(executed[4], "stream")[0].text == "Quito Peru\n"


def test_a_syntax_error_shows_the_cells_line_and_caret_without_a_traceback(executed: list) -> None:
    (error,) = outputs(executed[5], "error")
    assert error.ename == "CellSyntaxError"
    assert [ANSI.sub("", line) for line in error.traceback] == [
        "TemplateSyntaxError: the tag ends where a value was expected (cell line 3, column 22)",
        "    {{gen 'x' max_tokens=}}",
        "                         ^",
        "hint: complete the expression in \"{{gen 'x' max_tokens=}}\"",
    ]
    assert any("\x1b[" in line for line in error.traceback)  # highlighted
    assert outputs(executed[9], "stream")[0].text == "False\n"  # nothing was defined


def test_a_runtime_error_names_the_cells_line_and_shows_the_notebooks_own_traceback(executed: list) -> None:
    (error,) = outputs(executed[7], "error")
    assert error.ename == "CellRuntimeError"
    lines = [ANSI.sub("", line) for line in error.traceback]
    assert lines[:3] == [
        "TemplateRuntimeError: ValueError: too quiet: Peru (cell line 3, column 1)",
        "    {{shout(country)}}",
        "    ^",
    ]
    assert "caused by:" in lines and lines[-1] == "ValueError: too quiet: Peru"
    assert any("raise ValueError('too quiet: ' + text)" in line for line in lines)  # the user's function


def test_a_bad_variable_name_is_a_usage_error(executed: list) -> None:
    (message,) = outputs(executed[8], "stream")  # IPython prints a UsageError (the cell still fails)
    assert message.name == "stderr" and message.text.startswith("UsageError: 'class' is not a Python variable name")
