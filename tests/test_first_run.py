"""The first run on the default model (issue 13, items 1 and 5): local generation has a sensible default length whose
cut shows in the result and the display, and a script that used the local model ends without noise."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guidance_lite as gl
from guidance_lite.models.base import ModelError
from guidance_lite.models.llamacpp import DEFAULT_MAX_TOKENS, LlamaCpp

COUNTING = "Count on: 1, 2, 3, 4, 5, 6, 7,{{gen 'more'}}"  # a text that never ends by itself


# ---- item 1: a default length, and its cut visible -----------------------------------------------------------------
@pytest.mark.local_model
def test_a_local_gen_without_max_tokens_stops_at_the_default_length() -> None:
    result = gl.Program(COUNTING, model=LlamaCpp())()
    assert DEFAULT_MAX_TOKENS == 256
    assert result.finish_reasons == {"more": "length"}
    assert result.usage.completion_tokens == DEFAULT_MAX_TOKENS
    assert result.generations[-1]["finish_reason"] == "length"


@pytest.mark.local_model
def test_the_default_length_is_a_model_setting_and_max_tokens_still_wins() -> None:
    short = LlamaCpp(max_tokens=5, n_ctx=512)
    assert gl.Program(COUNTING, model=short)().usage.completion_tokens == 5
    assert gl.Program(COUNTING.replace("'more'", "'more' max_tokens=9"), model=short)().usage.completion_tokens == 9
    with pytest.raises(ModelError, match="max_tokens must be a positive integer or None"):
        LlamaCpp(max_tokens=0)


def test_a_cut_generation_shows_in_the_result_and_the_display() -> None:
    result = gl.Program("{{gen 'cut' max_tokens=2}}|{{gen 'whole'}}", model=gl.models.Mock("three short words"))()
    assert result.finish_reasons == {"cut": "length", "whole": "stop"}
    assert [entry["variable"] for entry in result.generations] == ["cut", "whole"]
    html = result._repr_html_()
    labels = re.findall(r'class="gl-label"[^>]*>([^<]*)<', html)
    assert "cut · finish: length" in labels  # on the page, not only in a tooltip
    assert "whole" in labels
    assert "three short⟨finish: length⟩|three short words" in repr(result)


def test_finish_reasons_of_a_paused_run_are_a_snapshot() -> None:
    program = gl.Program("{{gen 'a'}}{{await 'x'}}{{gen 'b'}}", model=gl.models.Mock("w"))
    paused = program()
    done = paused(x="!")
    assert paused.finish_reasons == {"a": "stop"}
    assert done.finish_reasons == {"a": "stop", "b": "stop"}


# ---- item 5: a quiet exit -------------------------------------------------------------------------------------------
def run_script(tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, encoding="utf-8", timeout=600, cwd=tmp_path
    )


@pytest.mark.local_model
def test_a_script_on_the_local_model_ends_without_noise(tmp_path: Path) -> None:
    proc = run_script(
        tmp_path,
        """
        import guidance_lite as gl

        program = gl.Program("{{#user}}Hi{{/user}}{{#assistant}}{{gen 'a' max_tokens=3}}{{/assistant}}")
        print(program(silent=True)["a"] != "")
        """,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\n", "")


@pytest.mark.local_model
def test_models_are_freed_before_the_interpreter_takes_llama_cpp_apart(tmp_path: Path) -> None:
    """At exit Python clears modules; a llama.cpp model freed after that printed "Exception ignored in:
    Llama.__del__". Here that teardown is made certain: the model lives until the very end (in builtins) and
    llama_cpp's functions are gone before then (an exit hook registered first runs last)."""
    proc = run_script(
        tmp_path,
        """
        import atexit, builtins, sys

        def take_llama_cpp_apart():
            for name, module in list(sys.modules.items()):
                if name.startswith("llama_cpp") and module is not None:
                    for key in list(vars(module)):
                        if not key.startswith("__"):
                            setattr(module, key, None)

        atexit.register(take_llama_cpp_apart)

        import guidance_lite as gl

        builtins.kept = gl.models.LlamaCpp()
        program = gl.Program("{{#user}}Hi{{/user}}{{#assistant}}{{gen 'a' max_tokens=3}}{{/assistant}}")
        print(program(model=builtins.kept, silent=True)["a"] != "")
        """,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "True\n", "")
