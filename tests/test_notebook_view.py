"""The notebook view in a real kernel (ipykernel driven by nbclient), as JupyterLab receives it.

One notebook runs every scenario once; every IOPub message of every cell is recorded in order, so each test reads the
sequence of renders a user saw: messages before the first token, tool boxes after the tools, the streamed text inside
its message, the final "Interrupted" / "Failed" / "Paused" states, a view on resume, the result shown again in a later
cell and through ``display()``, and tracebacks short enough to read (message, template line, cause; no frames of
guidance_lite, asyncio or the SDK).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nbformat
import pytest
from html_tree import Node, parse
from nbclient import NotebookClient
from test_notebooks import kernel_env  # noqa: F401 - the fixture: a kernel that runs this Python, offline

pytestmark = pytest.mark.notebook

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

SETUP = '''
import asyncio, os, signal, threading, time
import guidance_lite as gl
from guidance_lite.testing import ScriptedServer

class SlowMock(gl.models.Mock):
    """Mock replies with a slow first token and a pause between chunks: a slow server, visibly."""

    def __init__(self, replies, first_token=0.4, per_chunk=0.03):
        super().__init__(replies, chunk_size=4)
        self.first_token, self.per_chunk = first_token, per_chunk

    async def stream(self, request):
        await asyncio.sleep(self.first_token)
        async for item in super().stream(request):
            await asyncio.sleep(self.per_chunk)
            yield item

def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temperature": 21}

def interrupt_in(seconds):
    """What Kernel > Interrupt does: SIGINT to the kernel process."""
    threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT)).start()

weather = gl.Program("""
{{#system~}}You are a helpful assistant.{{~/system}}
{{#user~}}{{question}}{{~/user}}
{{#each range(10)~}}
  {{#assistant~}}{{gen 'answer' tools=tools tool_choice='auto'}}{{~/assistant}}
  {{~#if not callable(answer)}}{{break}}{{/if~}}
  {{#function~}}{{answer()}}{{~/function}}
{{~/each}}""")
'''

CELLS = {
    "setup": SETUP,
    "weather": """model = SlowMock([
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_weather", "arguments": {"city": "Rome"}}]},
    "It is 21 degrees in both Paris and Rome.",
])
result = weather(question="Weather in Paris and Rome?", tools=[get_weather], model=model)""",
    "same_cell": "result = weather(question='Again?', tools=[get_weather], model=gl.models.Mock('Sunny.'))\nresult",
    "later_cell": "result",
    "display_call": "display(result)",
    "paused": """chat = gl.Program('''{{#system~}}Be friendly.{{~/system}}
{{#user~}}{{await 'message'}}{{~/user}}
{{#assistant~}}{{gen 'reply'}}{{~/assistant}}''', model=SlowMock("Hello there!", first_token=0.2))
turn = chat()""",
    "resumed": 'turn = turn(message="Hi!")',
    "server_error": """server = ScriptedServer().start()
server.push({"status": 400, "error_message": "This model's maximum context length is 8 tokens."})
failing = gl.Program('''{{#user~}}Hi{{~/user}}
{{#assistant~}}{{gen 'answer'}}{{~/assistant}}''', model=gl.models.OpenAI("scripted-model", base_url=server.base_url))
failing()""",
    "missing_argument": "weather(tools=[get_weather], model=gl.models.Mock('x'))  # forgot question=",
    "syntax_error": """gl.Program('''{{#user~}}
Summarise: {{text}}
{{#if short}}In one line.{{~/user}}''')""",
    # the server answers after the interrupt, to a client that is gone
    "interrupted": """slow = ScriptedServer(latency=1.0).start()
interrupt_in(0.5)
weather(question="Weather in Oslo?", tools=[get_weather],
        model=gl.models.OpenAI("scripted-model", base_url=slow.base_url, max_retries=0))""",
    "after_interrupt": "time.sleep(1.0)\nprint('quiet')",
    "progress": """capitals = gl.Program('''{{#user~}}Capital of {{country}}?{{~/user}}
{{#assistant~}}{{gen 'capital'}}{{~/assistant}}''', model=gl.models.Mock("Paris"))
results = capitals.map([{"country": "France"}] * 3, progress=True)""",
}


@dataclass
class Cell:
    """What one cell sent: IOPub messages in order, and the outputs nbclient kept."""

    messages: list[dict] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)

    def renders(self) -> list[str]:
        """The HTML of every display and display update of a guidance_lite view, in order."""
        return [
            m["content"]["data"]["text/html"]
            for m in self.messages
            if m["msg_type"] in ("display_data", "update_display_data")
            and "gl-root" in m["content"]["data"].get("text/html", "")
        ]

    def error_text(self) -> str:
        errors = [o for o in self.outputs if o.output_type == "error"]
        assert len(errors) == 1, self.outputs
        return ANSI_ESCAPE.sub("", "\n".join(errors[0].traceback))

    def stream_text(self) -> str:
        return "".join(o.get("text", "") for o in self.outputs if o.output_type == "stream")


class RecordingClient(NotebookClient):
    """nbclient that also keeps every IOPub message (nbclient itself folds updates into the final output)."""

    recorded: dict[int, list[dict]]

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        self.recorded.setdefault(cell_index, []).append(
            {"msg_type": msg["header"]["msg_type"], "content": msg["content"]}
        )
        return super().process_message(msg, cell, cell_index)


@pytest.fixture(scope="module")
def cells(kernel_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cell]]:  # noqa: F811
    names = list(CELLS)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELLS[name]) for name in names])
    client = RecordingClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path_factory.mktemp("view"))}},
    )
    client.recorded = {}
    client.execute()
    yield {
        name: Cell(client.recorded.get(index, []), list(notebook.cells[index].outputs))
        for index, name in enumerate(names)
    }


def status_of(markup: str) -> str:
    statuses = parse(markup).root.find_all("gl-status")
    return statuses[0].text() if statuses else ""


def boxes(markup: str) -> list[Node]:
    return parse(markup).root.find_all("gl-msg")


def role(box: Node) -> str:
    return box.find_all("gl-role")[0].text().split()[0]


def footer(markup: str) -> str:
    return parse(markup).root.find_all("gl-footer")[0].text()


# ---- the live sequence ------------------------------------------------------------------------------------------


def test_one_output_updated_in_place(cells: dict[str, Cell]) -> None:
    kinds = [
        m["msg_type"] for m in cells["weather"].messages if m["msg_type"] in ("display_data", "update_display_data")
    ]
    assert kinds[0] == "display_data" and set(kinds[1:]) == {"update_display_data"} and len(kinds) >= 4
    ids = {m["content"]["transient"]["display_id"] for m in cells["weather"].messages if "transient" in m["content"]}
    assert len(ids) == 1
    displays = [o for o in cells["weather"].outputs if o.output_type == "display_data"]
    assert len(displays) == 1 and "text/plain" in displays[0].data
    plain = displays[0].data["text/plain"]
    assert "IPython" not in plain and "── user ──\nWeather in Paris and Rome?" in plain


def test_messages_appear_before_the_first_token(cells: dict[str, Cell]) -> None:
    renders = cells["weather"].renders()
    before_output = [r for r in renders if "get_weather" not in r and "It is 21" not in r]
    assert before_output, "no render before the model's first output"
    waiting = before_output[-1]
    assert status_of(waiting) == "Running…"
    shown = boxes(waiting)
    assert [role(b) for b in shown[:2]] == ["system", "user"] and "Weather in Paris and Rome?" in waiting
    for box in shown[2:]:  # the assistant block the model is about to write into
        assert role(box) == "assistant" and "writing" in box.text() and not box.find_all("gl-body")[0].text()
    assert footer(waiting) in ("no model calls yet", "1 model call running")


def test_tool_boxes_appear_after_the_tools_ran(cells: dict[str, Cell]) -> None:
    renders = cells["weather"].renders()
    after_tools = [r for r in renders if r.count("gl-tool-result") == 2 and "It is 21" not in r]
    assert after_tools, "the tool results were never shown before the answer"
    shown = after_tools[-1]
    assert status_of(shown) == "Running…"
    assert [role(b) for b in boxes(shown)][:5] == ["system", "user", "assistant", "tool", "tool"]


def test_streamed_text_grows_inside_its_message(cells: dict[str, Cell]) -> None:
    renders = cells["weather"].renders()
    streaming = [r for r in renders if "It is 21" in r and status_of(r) == "Running…"]
    assert streaming, "no render while the answer streamed"
    for markup in streaming:
        last = boxes(markup)[-1]
        assert role(last) == "assistant" and "writing" in last.find_all("gl-role")[0].text()
        assert "It is 21" in last.find_all("gl-body")[0].text()
        assert not parse(markup).root.find_all("gl-plain")  # no separate box outside the message
        # the call is running, or (a render between the call's end and the block's close, on a busy machine) counted
        assert ("1 running" in footer(markup) or "2 model calls" in footer(markup)) and "0 model calls" not in footer(
            markup
        )
    lengths = [len(boxes(r)[-1].find_all("gl-body")[0].text()) for r in streaming]
    assert lengths == sorted(lengths)


def test_the_final_render_is_complete(cells: dict[str, Cell]) -> None:
    final = cells["weather"].renders()[-1]
    assert status_of(final) == ""
    assert [role(b) for b in boxes(final)] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert "It is 21 degrees in both Paris and Rome." in final and "writing" not in final
    assert "2 model calls" in footer(final) and "2 tool calls" in footer(final)


# ---- showing a result again --------------------------------------------------------------------------------------


def test_the_cell_that_ran_it_shows_one_copy(cells: dict[str, Cell]) -> None:
    outputs = [o for o in cells["same_cell"].outputs if o.output_type in ("display_data", "execute_result")]
    assert len(outputs) == 1 and "Sunny." in outputs[0].data["text/html"]


@pytest.mark.parametrize("name", ["later_cell", "display_call"])
def test_a_result_shows_again_in_a_later_cell(cells: dict[str, Cell], name: str) -> None:
    outputs = [o for o in cells[name].outputs if o.output_type in ("display_data", "execute_result")]
    assert len(outputs) == 1
    markup = outputs[0].data["text/html"]
    assert "Sunny." in markup and status_of(markup) == "" and "── assistant ──\nSunny." in outputs[0].data["text/plain"]


# ---- final states ------------------------------------------------------------------------------------------------


def test_a_paused_program_says_so(cells: dict[str, Cell]) -> None:
    final = cells["paused"].renders()[-1]
    assert status_of(final) == "Paused: waiting for input"
    user = boxes(final)[-1]
    assert role(user) == "user" and "(waiting for input)" in user.text() and "writing" not in final
    assert "no model calls yet" in footer(final)


def test_resuming_shows_a_live_view_of_the_rest_of_the_run(cells: dict[str, Cell]) -> None:
    renders = cells["resumed"].renders()
    assert len(renders) >= 2 and status_of(renders[0]) == "Running…"
    final = renders[-1]
    assert status_of(final) == "" and "Hello there!" in final and "Hi!" in final
    assert [role(b) for b in boxes(final)] == ["system", "user", "assistant"]


def test_a_failed_run_says_failed_and_no_block_is_still_writing(cells: dict[str, Cell]) -> None:
    final = cells["server_error"].renders()[-1]
    assert status_of(final).startswith("Failed: ") and "context window" in status_of(final)
    assert "writing" not in final and "(unfinished)" in final and "no model call completed" in footer(final)


def test_an_interrupted_run_says_interrupted_and_nothing_lands_in_the_next_cell(cells: dict[str, Cell]) -> None:
    cell = cells["interrupted"]
    assert "KeyboardInterrupt" in cell.error_text()
    final = cell.renders()[-1]
    assert status_of(final) == "Interrupted" and "Running" not in final and "writing" not in final
    after = cells["after_interrupt"]
    assert after.stream_text() == "quiet\n", after.stream_text()  # no BrokenPipeError from the server


# ---- tracebacks --------------------------------------------------------------------------------------------------


def assert_short(text: str, limit: int) -> None:
    lines = text.strip().splitlines()
    assert len(lines) <= limit, f"{len(lines)} lines:\n{text}"
    assert "site-packages" not in text and "/guidance_lite/" not in text, text
    assert "asyncio" not in text and "concurrent" not in text, text


def test_a_server_error_shows_the_message_the_line_and_the_cause(cells: dict[str, Cell]) -> None:
    text = cells["server_error"].error_text()
    assert_short(text, 25)
    assert "TemplateRuntimeError" in text and "the context window of model 'scripted-model'" in text
    assert "(template line 2)" in text and "{{gen 'answer'}}" in text  # the template line, with a caret
    assert "BadRequestError" in text and "maximum context length is 8 tokens" in text  # the cause
    assert "failing()" in text  # the user's own line


def test_a_missing_argument_shows_the_message_and_the_hint(cells: dict[str, Cell]) -> None:
    text = cells["missing_argument"].error_text()
    assert_short(text, 15)
    assert "variable or helper 'question' is not defined (template line 3)" in text
    assert "hint: pass it as a program argument" in text and "forgot question=" in text


def test_a_syntax_error_shows_the_line_and_the_caret(cells: dict[str, Cell]) -> None:
    text = cells["syntax_error"].error_text()
    assert_short(text, 15)
    assert "TemplateSyntaxError" in text and "line 3" in text and "{{/if}}" in text
    assert "^" in text and "lark" not in text.lower()


def test_progress_bars_are_widgets_not_stderr(cells: dict[str, Cell]) -> None:
    cell = cells["progress"]
    widgets = [o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1
    assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
