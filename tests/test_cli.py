"""The ``guidance-lite`` CLI, run as a real subprocess (``python -m guidance_lite``): exit codes, stdout/stderr, and
the ``--json`` schemas. ``--mock`` keeps most runs fast; ``--base-url`` runs talk to a ScriptedServer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import guidance_lite as gl
from guidance_lite import cli
from guidance_lite.parser import parse
from guidance_lite.testing import ScriptedServer

REPO = Path(__file__).resolve().parents[1]

CHAT = """\
{{#system}}You are terse.{{/system}}
{{#user}}{{question}} (n={{n}}){{/user}}
{{#assistant}}{{gen 'answer'}}{{/assistant}}
{{#each items}}{{#user}}About {{this}}?{{/user}}{{#assistant}}{{gen 'notes' list_append=True}}{{/assistant}}
{{/each}}"""

RESULT_KEYS = {"variables", "messages", "text", "usage", "tool_calls", "completed"}


def run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": "utf-8"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "guidance_lite", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def write(tmp_path: Path, text: str, name: str = "prog.hbs") -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


# ---- run ----------------------------------------------------------------------------------------------------------
def test_run_with_mock_prints_variables_one_per_line(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT)
    proc = run_cli(
        "run",
        path,
        "--var",
        "question=What is 2+2?",
        "n=3",
        "--var",
        'items=["a", "b"]',
        "--mock",
        "Four.",
        "note\non a",
        "note on b",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [
        "question = 'What is 2+2?'",  # not JSON: the raw string
        "n = 3",  # JSON: an int
        "items = ['a', 'b']",
        "answer = 'Four.'",
        "notes = ['note\\non a', 'note on b']",  # compact: a line break in a value stays on one line
    ]


def test_var_values_are_json_when_they_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#if flag}}{{set 'kind' str(n + 1)}}{{/if}}{{set 'first' items[0]}}{{set 'none' x}}")
    proc = run_cli(
        "run",
        path,
        "--var",
        "flag=true",
        "--var",
        "n=41",
        "--var",
        'items=["z"]',
        "--var",
        "x=null",
        "--json",
        "--mock",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    variables = json.loads(proc.stdout)["variables"]
    assert variables == {"flag": True, "n": 41, "items": ["z"], "x": None, "kind": "42", "first": "z", "none": None}


def test_json_output_schema(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT + "{{set 'r' range(2)}}")
    proc = run_cli(
        "run", path, "--var", "question=Hi", "n=1", "items=[]", "--mock", "Hello there", "--json", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document on stdout
    assert set(doc) == RESULT_KEYS
    assert doc["completed"] is True
    assert doc["variables"]["answer"] == "Hello there"
    assert doc["variables"]["r"] == "range(0, 2)"  # not JSON-able: its str
    assert doc["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi (n=1)"},
        {"role": "assistant", "content": "Hello there"},
    ]
    assert "Hello there" in doc["text"] and "Hi (n=1)" in doc["text"]
    assert set(doc["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "estimated"}
    assert doc["usage"]["completion_tokens"] == 2
    assert doc["tool_calls"] == []


def test_vars_json_file_with_var_override(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}{{greeting}}, {{name}}{{/user}}")
    (tmp_path / "vars.json").write_text(json.dumps({"greeting": "Hello", "name": "file"}), encoding="utf-8")
    proc = run_cli("run", path, "--vars-json", "vars.json", "--var", "name=cli", "--json", "--mock", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["messages"] == [{"role": "user", "content": "Hello, cli"}]


def test_stream_prints_each_generation_then_variables(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT)
    proc = run_cli(
        "run",
        path,
        "--var",
        "question=q",
        "n=1",
        'items=["a", "b"]',
        "--stream",
        "--mock",
        "The answer is four.",
        "first note",
        "second note",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["The answer is four.", "first note", "second note"]
    assert "answer = 'The answer is four.'" in lines[3:]


def test_stream_with_json_keeps_stdout_one_document(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT)
    proc = run_cli(
        "run", path, "--var", "question=q", "n=1", "items=[]", "--stream", "--json", "--mock", "Streamed.", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["variables"]["answer"] == "Streamed."
    assert proc.stderr == "Streamed.\n"


def test_stream_arrives_before_the_program_ends(tmp_path: Path) -> None:
    """The first generation is readable while the second request is still held by the server (flushed output)."""
    path = write(tmp_path, CHAT)
    first_line_read = threading.Event()

    def script(body: dict) -> str:
        if body["messages"][-1]["content"] == "q (n=1)":
            return "first answer"
        first_line_read.wait(20)  # hold the second generation until the test saw the first one
        return "later note"

    with ScriptedServer(script) as server, open(tmp_path / "stderr.txt", "w+", encoding="utf-8") as errors:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "guidance_lite",
                "run",
                path,
                "--base-url",
                server.base_url,
                "--var",
                "question=q",
                "n=1",
                'items=["a"]',
                "--stream",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            still_running = proc.poll() is None
            first_line_read.set()
            rest = proc.stdout.read()
            proc.wait(timeout=60)
        finally:
            first_line_read.set()
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
        errors.seek(0)
        assert proc.returncode == 0, errors.read()
    assert first == "first answer\n"
    assert still_running
    assert rest.splitlines()[0] == "later note"


def test_base_url_run_against_scripted_server(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT)
    with ScriptedServer() as server:
        server.push("Four.", "A note.")
        proc = run_cli(
            "run",
            path,
            "--base-url",
            server.base_url,
            "--model",
            "my-model",
            "--api-key",
            "k",
            "--var",
            "question=What is 2+2?",
            "n=2",
            'items=["x"]',
            "--json",
            cwd=tmp_path,
        )
        requests = list(server.requests)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["variables"]["answer"] == "Four." and doc["variables"]["notes"] == ["A note."]
    assert doc["usage"]["estimated"] is False and doc["usage"]["total_tokens"] > 0
    assert [r["model"] for r in requests] == ["my-model", "my-model"]
    assert requests[0]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2? (n=2)"},
    ]
    assert requests[1]["messages"][-1] == {"role": "user", "content": "About x?"}


def test_base_url_without_model_uses_default_name(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}hi{{/user}}{{#assistant}}{{gen 'a'}}{{/assistant}}")
    with ScriptedServer() as server:
        proc = run_cli("run", path, "--base-url", server.base_url, cwd=tmp_path)
        models = [r["model"] for r in server.requests]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a = 'ok'\n"
    assert models == ["default"]


# ---- errors and exit codes ----------------------------------------------------------------------------------------
def test_syntax_error_exits_2_with_location_caret_and_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}\nHi {{name}{{/user}}")
    proc = run_cli("run", path, "--mock", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == "prog.hbs:2:10: unexpected '}' inside a tag"
    assert lines[1].strip() == "Hi {{name}{{/user}}"
    assert lines[2].index("^") == lines[1].index("}{{/")  # the caret points at the stray '}'
    assert lines[3].startswith("hint: ")


def test_missing_variable_exits_3_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, CHAT)
    proc = run_cli("run", path, "--var", "n=1", "--mock", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == ""
    first, source_line, caret, *hints = proc.stderr.splitlines()
    assert first == "prog.hbs:2:10: error: variable or helper 'question' is not defined"
    assert source_line.strip() == "{{#user}}{{question}} (n={{n}}){{/user}}"
    assert caret.index("^") == source_line.index("{{question")
    assert "hint: on the command line: --var question=VALUE" in hints


def test_runtime_error_with_json_prints_the_partial_result(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}hi{{/user}}\n{{#assistant}}{{gen 'a'}}{{/assistant}}{{1 / zero}}")
    proc = run_cli("run", path, "--var", "zero=0", "--mock", "fine", "--json", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.startswith("prog.hbs:2:")
    assert "ZeroDivisionError" in proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == RESULT_KEYS | {"error"}
    assert doc["completed"] is False
    assert doc["variables"]["a"] == "fine"  # what ran before the failure
    assert doc["error"]["line"] == 2 and "ZeroDivisionError" in doc["error"]["message"]


def test_model_error_exits_3(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}hi{{/user}}\n{{#assistant}}{{gen 'a'}}{{/assistant}}")
    with ScriptedServer() as server:
        server.push({"status": 400, "error_message": "no such model here"})
        proc = run_cli("run", path, "--base-url", server.base_url, cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr.startswith("prog.hbs:2:15: error: ")
    assert "no such model here" in proc.stderr and "400" in proc.stderr


def test_model_setup_error_exits_3(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}hi{{/user}}{{#assistant}}{{gen 'a'}}{{/assistant}}")
    proc = run_cli("run", path, "--model", "", cwd=tmp_path)
    assert proc.returncode == 3
    assert proc.stderr.startswith("prog.hbs: error: could not set up the model: ")


def test_paused_program_exits_3_with_what_to_pass(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}{{await 'reply'}}{{/user}}")
    proc = run_cli("run", path, "--mock", cwd=tmp_path)
    assert proc.returncode == 3
    assert "paused waiting for 'reply'" in proc.stderr and "--var reply=VALUE" in proc.stderr
    assert "Task was destroyed" not in proc.stderr
    given = run_cli("run", path, "--mock", "--var", "reply=yes", "--json", cwd=tmp_path)
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["messages"] == [{"role": "user", "content": "yes"}]


def main_in_process(args: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``cli.main`` without a subprocess (argparse's own usage errors raise SystemExit)."""
    try:
        code = cli.main(args)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "prog.hbs", "--mock", "--var", "novalue"], "--var takes NAME=VALUE"),
        (["run", "missing.hbs", "--mock"], "missing.hbs: no such template file"),
        (["run", "prog.hbs", "--mock", "--var", "model=x"], "'model' is a program option"),
        (["run", "prog.hbs", "--mock", "--vars-json", "list.json"], "must hold a JSON object"),
        (["run", "prog.hbs", "--mock", "--vars-json", "bad.json"], "bad.json is not valid JSON"),
        (["run", "prog.hbs", "--mock", "--vars-json", "nothere.json"], "--vars-json: cannot read nothere.json"),
        (["check", "."], ".: is a directory"),
        (["run"], "required: TEMPLATE_FILE"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "{{#user}}hi{{/user}}")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    code, out, err = main_in_process(args, capsys)
    assert code == 2
    assert message in err
    assert out == ""


def test_usage_error_exit_code_from_a_subprocess(tmp_path: Path) -> None:
    write(tmp_path, "{{#user}}hi{{/user}}")
    bad_var = run_cli("run", "prog.hbs", "--mock", "--var", "novalue", cwd=tmp_path)
    assert (bad_var.returncode, bad_var.stdout) == (2, "")
    assert (
        bad_var.stderr == "guidance-lite: error: --var takes NAME=VALUE (e.g. --var question='What is 2+2?'), "
        "got 'novalue'\n"
    )
    no_command = run_cli(cwd=tmp_path)
    assert no_command.returncode == 2 and "usage: guidance-lite" in no_command.stderr


def test_unexpected_error_exits_1_with_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(template: object) -> None:
        raise RuntimeError("analysis bug")

    monkeypatch.setattr(cli, "analyze", broken)
    path = tmp_path / "prog.hbs"
    path.write_text("{{x}}", encoding="utf-8")
    assert cli.main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unexpected error" in err and "RuntimeError: analysis bug" in err and "Traceback" in err


# ---- check --------------------------------------------------------------------------------------------------------
CHECKED = """\
{{#system}}{{system_prompt}}{{/system}}
{{#user}}{{question}}{{/user}}
{{#assistant}}{{gen 'answer' tools=[get_weather, 'get_time'] tool_choice='auto' max_tokens=limit}}{{/assistant}}
{{#if callable(answer)}}{{#function}}{{answer()}}{{/function}}{{/if}}
{{#each docs item_name='doc'}}{{doc.title}} {{@index}} {{this}}{{set 'seen' len(doc.body)}}{{/each}}
{{#geneach 'facts' num_iterations=2}}{{gen 'this.text'}}{{/geneach}}
{{#select 'mood'}}happy{{or}}sad{{/select}}{{mood}} {{seen}} {{upper(facts[0].text)}}
{{>footer tone=mood}}{{await 'feedback'}}{{#block 'summary' hidden=True}}{{summary_seed}}{{/block}}{{summary}}
"""


def test_check_lists_inputs_sets_commands_and_blocks(tmp_path: Path) -> None:
    path = write(tmp_path, CHECKED)
    proc = run_cli("check", path, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "prog.hbs: ok",
        "variables: system_prompt, question, get_weather, get_time, limit, docs, footer, feedback, summary_seed",
        "sets: answer, seen, facts, mood, summary",
        "commands: gen, callable, set, len, upper, await",
        "blocks: system, user, assistant, if, function, each, geneach, select, block",
    ]


def test_check_json(tmp_path: Path) -> None:
    path = write(tmp_path, "{{#user}}{{q}}{{/user}}{{#assistant}}{{gen 'a'}}{{/assistant}}")
    proc = run_cli("check", path, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "file": "prog.hbs",
        "ok": True,
        "variables": ["q"],
        "sets": ["a"],
        "commands": ["gen"],
        "blocks": ["user", "assistant"],
    }


def test_check_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "line one\n{{#each items}}{{this}}")
    proc = run_cli("check", path, "--json", cwd=tmp_path)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["file"] == "prog.hbs"
    assert set(doc["error"]) == {"message", "line", "col", "hint"}
    assert proc.stderr.startswith(f"prog.hbs:{doc['error']['line']}:{doc['error']['col']}: {doc['error']['message']}")
    plain = run_cli("check", path, cwd=tmp_path)
    assert plain.returncode == 2 and plain.stdout == "" and plain.stderr == proc.stderr


# ---- the analysis, in process (fast) ------------------------------------------------------------------------------
def report(source: str) -> gl.TemplateReport:
    return gl.analyze(parse(source))


def test_a_read_before_its_set_is_an_input() -> None:
    r = report("{{x}}{{set 'x' 1}}{{x}}{{set 'y' 2}}{{y}}")
    assert r.variables == ["x"] and r.sets == ["x", "y"]


def test_gen_side_variables_and_set_dict() -> None:
    r = report("{{gen 'a' save_prompt=True save_stop_text='why'}}{{set {'p': 1, 'q': a}}}{{a_prompt}}{{why}}{{p}}")
    assert r.variables == [] and r.sets == ["a", "a_prompt", "why", "p", "q"]


def test_loop_names_are_scoped_to_the_loop_body() -> None:
    r = report("{{#each xs item_name='it'}}{{it}}{{/each}}{{it}}{{@index}}{{this}}")
    assert r.variables == ["xs", "it"]


def test_variables_shadow_helpers() -> None:
    r = report("{{len(xs)}}{{set 'len' 3}}{{len}}")
    assert r.commands == ["len", "set"] and r.variables == ["xs"] and r.sets == ["len"]


def test_parse_value() -> None:
    assert cli.parse_value("3") == 3 and cli.parse_value("true") is True and cli.parse_value('["a"]') == ["a"]
    assert cli.parse_value("hello world") == "hello world" and cli.parse_value("") == ""


def test_load_variables_rejects_reserved_names(tmp_path: Path) -> None:
    with pytest.raises(cli.UsageError, match="'silent' is a program option"):
        cli.load_variables(None, ["silent=true"])
    assert cli.load_variables(None, ["a=1", "a=2", "b==x"]) == {"a": 2, "b": "=x"}


# ---- options before the file (issue 13, item 3) -------------------------------------------------------------------
GREETING = "{{#user}}Weather in {{city}}?{{/user}}{{#assistant}}{{gen 'answer'}}{{/assistant}}"


@pytest.mark.parametrize(
    "args, variables",
    [
        (["run", "--var", "city=Paris", "prog.hbs", "--mock", "Sunny."], {"city": "Paris", "answer": "Sunny."}),
        (["run", "--mock", "Sunny.", "prog.hbs", "--var", "city=Rome"], {"city": "Rome", "answer": "Sunny."}),
        (["run", "--var", "city=Oslo", "--mock", "prog.hbs"], {"city": "Oslo", "answer": "mock output 0"}),
        (
            ["run", "--var", "city=Lima", "prog.hbs", "day=1", "--mock", "Dry."],
            {"city": "Lima", "day": 1, "answer": "Dry."},
        ),
        (["run", "--mock", "a", "b", "prog.hbs", "--var", "city=Bern"], {"city": "Bern", "answer": "a"}),
    ],
)
def test_the_template_file_may_follow_options_that_take_several_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list, variables: dict
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, GREETING)
    code, out, err = main_in_process([*args, "--json"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out)["variables"] == variables


def test_without_a_template_file_the_error_still_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = main_in_process(["run", "--var", "city=Paris"], capsys)
    assert code == 2 and "required: TEMPLATE_FILE" in err and out == ""


def test_a_missing_reserved_name_gets_a_hint_that_works(tmp_path: Path) -> None:
    write(tmp_path, "{{silent}}")
    proc = run_cli("run", "prog.hbs", "--mock", cwd=tmp_path)
    assert proc.returncode == 3
    assert "'silent' is a program option" in proc.stderr and "rename the variable" in proc.stderr
    assert "--var silent=" not in proc.stderr
