"""``import guidance_lite`` loads none of its heavy dependencies; each loads when what needs it is first used, and
every public name still works. Checked in fresh interpreters (``sys.modules``), never with timings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import guidance_lite as gl

HEAVY = ("pydantic", "pydantic_core", "docstring_parser", "lark", "regex", "openai", "tiktoken", "llama_cpp")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; which HEAVY modules it loaded, and what it printed as ``out``."""
    script = (
        "import json, sys\n"
        "out = None\n"
        f"{code}\n"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules], 'out': out}}))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_loads_no_heavy_dependency():
    assert loaded_after("import guidance_lite")["loaded"] == []


def test_a_program_without_function_tools_never_loads_pydantic():
    found = loaded_after(
        "import guidance_lite as gl\n"
        "out = gl.Program(\"Say {{gen 'x' stop='.'}}\", model=gl.models.Mock('hi. there'))()['x']"
    )
    assert found["out"] == "hi"
    assert "lark" in found["loaded"]  # the parser loaded with the first Program
    assert not {"pydantic", "pydantic_core", "openai"} & set(found["loaded"])


def test_a_function_tool_builds_its_schema_and_validates_on_first_use():
    found = loaded_after(
        "import guidance_lite as gl\n"
        "def add(a: int, b: int = 2) -> int:\n"
        "    'Add two numbers.'\n"
        "    return a + b\n"
        "t = gl.Tool('add', add)\n"
        "out = [t.schema()['function'], t.validate({'a': '3'})]"
    )
    schema, arguments = found["out"]
    assert schema["description"] == "Add two numbers."
    assert schema["parameters"]["required"] == ["a"] and set(schema["parameters"]["properties"]) == {"a", "b"}
    assert arguments == {"a": 3}  # coerced by pydantic, loaded for it
    assert "pydantic" in found["loaded"]


def test_stop_regexes_load_the_regex_module_when_used():
    found = loaded_after(
        "from guidance_lite.stopping import find_stop\n"
        "hit = find_stop('abc123def', [], [r'\\d+'])\n"
        "out = [hit.start, hit.text]"
    )
    assert found["out"] == [3, "123"] and "regex" in found["loaded"]


def test_every_public_name_resolves_to_its_definition():
    from guidance_lite import models, program, tools
    from guidance_lite.models.base import ModelError

    for name in gl.__all__:
        assert getattr(gl, name) is not None, name
    assert gl.Program is program.Program and gl.tool is tools.tool and gl.models is models
    assert gl.ModelError is ModelError and issubclass(gl.ModelError, gl.GuidanceLiteError)
    assert set(gl.__all__) <= set(dir(gl))
    found = loaded_after("from guidance_lite import *\nout = [Program.__name__, tool.__name__, ModelError.__name__]")
    assert found["out"] == ["Program", "tool", "ModelError"]


def test_an_unknown_name_is_a_plain_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        gl.no_such_name
