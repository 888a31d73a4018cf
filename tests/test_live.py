"""Live view: displays once, then updates the same output, throttled; nothing at all outside IPython."""

from __future__ import annotations

import asyncio
import sys
import warnings

import pytest

import guidance_lite.live as live
from guidance_lite.display import FAILED, INTERRUPTED, PAUSED
from guidance_lite.live import LiveView, in_ipython
from guidance_lite.state import GEN, ProgramState


@pytest.fixture
def shell(monkeypatch, tmp_path):
    """A real IPython shell whose display publisher records every display/update instead of printing."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # the shell replaces __main__
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    instance = InteractiveShell.instance(config=config)
    instance.display_pub = CapturingDisplayPublisher()
    yield instance
    InteractiveShell.clear_instance()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(live, "_clock", fake)
    return fake


def chat_state() -> ProgramState:
    state = ProgramState()
    opened = state.open_role("user", {})
    state.append("What is 2+2?")
    state.close_role(opened, {"role": "user", "content": "What is 2+2?"})
    state.open_role("assistant", {})
    return state


def outputs(shell) -> list[dict]:
    return shell.display_pub.outputs


def html_of(output: dict) -> str:
    return output["data"]["text/html"]


def test_not_in_ipython_in_plain_pytest_and_nothing_displays(capsys):
    import IPython  # installed and imported is not the same as running inside a shell

    assert IPython.get_ipython() is None
    assert in_ipython() is False
    view = LiveView(chat_state())
    assert view.active is False
    view.update()
    view.update(force=True)
    view.close()
    assert view.renders == 0
    assert capsys.readouterr().out == ""


def test_in_ipython_inside_a_running_shell(shell):
    assert in_ipython() is True
    assert LiveView(ProgramState()).active is True


def test_terminal_ipython_gets_no_html_view(monkeypatch):
    terminal_shell = type("TerminalInteractiveShell", (), {"__module__": "IPython.terminal.interactiveshell"})()
    monkeypatch.setattr(live, "_running_shell", lambda: terminal_shell)
    assert in_ipython() is True
    view = LiveView(ProgramState())
    view.update(force=True)
    assert view.active is False and view.renders == 0


def test_first_update_displays_once_then_updates_the_same_output(shell, clock):
    state = chat_state()
    view = LiveView(state, title="demo")
    view.update()
    assert len(outputs(shell)) == 1
    first = outputs(shell)[0]
    assert first["update"] is False
    display_id = first["transient"]["display_id"]
    assert "What is 2+2?" in html_of(first) and "Running" in html_of(first) and "demo" in html_of(first)
    state.append("4", GEN, "answer")
    clock.now += 0.5
    view.update()
    assert len(outputs(shell)) == 2
    second = outputs(shell)[1]
    assert second["update"] is True and second["transient"]["display_id"] == display_id
    assert "gl-gen" in html_of(second)


def test_rapid_updates_are_throttled_by_min_interval(shell, clock):
    state = chat_state()
    view = LiveView(state, min_interval=0.1)
    for step in range(100):  # 100 token arrivals, 10 ms apart: one second of streaming
        state.append(f"tok{step} ", GEN, "answer")
        view.update()
        clock.now += 0.01
    assert 9 <= view.renders <= 11
    assert len(outputs(shell)) == view.renders
    assert sum(1 for o in outputs(shell) if not o["update"]) == 1  # displayed once, updated after


def test_rapid_updates_with_the_real_clock_render_far_fewer_times(shell):
    state = chat_state()
    view = LiveView(state, min_interval=0.1)
    for step in range(2000):
        state.append(f"t{step}", GEN, "answer")
        view.update()
    assert 1 <= view.renders <= 200


def test_unchanged_state_is_not_rerendered_but_force_always_is(shell, clock):
    state = chat_state()
    view = LiveView(state)
    view.update()
    clock.now += 5
    view.update()  # nothing changed since the last render
    assert view.renders == 1
    view.update(force=True)  # same instant, same state: still renders
    view.update(force=True)
    assert view.renders == 3


def test_close_always_renders_the_final_state_and_stops_updates(shell, clock):
    state = chat_state()
    view = LiveView(state)
    view.update()
    state.append("The answer is 4.", GEN, "answer")
    view.close()  # immediately after a render, inside the throttle window
    assert view.renders == 2
    final = html_of(outputs(shell)[-1])
    assert "The answer is 4." in final and "Running" not in final and "gl-footer" in final
    clock.now += 10
    state.append(" more")
    view.update()
    view.update(force=True)
    view.close()
    assert view.renders == 2


def test_close_without_any_earlier_update_displays_once(shell, clock):
    state = chat_state()
    state.append("done", GEN, "answer")
    view = LiveView(state)
    view.close()
    assert len(outputs(shell)) == 1 and outputs(shell)[0]["update"] is False
    assert "done" in html_of(outputs(shell)[0])


def test_close_shows_failure_pause_or_interruption_and_the_open_block_stops_writing(shell, clock):
    failed = LiveView(chat_state())
    failed.update()
    assert "(writing…)" in html_of(outputs(shell)[-1])
    failed.close(FAILED, error="ModelError: <b>boom</b>")
    final = html_of(outputs(shell)[-1])
    assert "gl-status-failed" in final and "Failed: ModelError: &lt;b&gt;boom&lt;/b&gt;" in final
    assert "(unfinished)" in final and "writing" not in final and "Running" not in final
    paused = LiveView(chat_state())
    paused.close(PAUSED)
    final = html_of(outputs(shell)[-1])
    assert "gl-status-paused" in final and "(waiting for input)" in final and "no model calls yet" in final
    interrupted = LiveView(chat_state())
    interrupted.update()
    interrupted.close(INTERRUPTED)
    final = html_of(outputs(shell)[-1])
    assert "gl-status-interrupted" in final and ">Interrupted<" in final and "writing" not in final
    assert outputs(shell)[-1]["data"]["text/plain"].startswith("Interrupted\n")


def test_the_plain_text_form_of_the_view_is_the_transcript(shell, clock):
    state = chat_state()
    state.append("4", GEN, "answer")
    view = LiveView(state)
    view.update()
    running = outputs(shell)[-1]["data"]["text/plain"]
    assert running.startswith("Running…\n") and "── user ──\nWhat is 2+2?" in running and "(writing…)" in running
    view.close()
    final = outputs(shell)[-1]["data"]["text/plain"]
    assert "IPython" not in final and "── assistant" in final and "4" in final and "Running" not in final


def test_a_throttled_update_is_drawn_later_by_a_trailing_render(shell):
    """Never drop the last state: an update inside the throttle window arms one timer that draws it."""

    async def scenario() -> list[str]:
        state = chat_state()
        view = LiveView(state, min_interval=0.05)
        view.update()  # drawn at once
        state.append("The answer", GEN, "answer")
        view.update()  # too soon: not drawn now...
        state.append(" is 4.", GEN, "answer")
        view.update()  # ...nor this one, but a trailing render is armed for the latest state
        assert view.renders == 1 and view.pending
        await asyncio.sleep(0.2)  # the program waits (a slow model): nothing else calls update
        assert not view.pending
        return [html_of(o) for o in outputs(shell)]

    rendered = asyncio.run(scenario())
    assert len(rendered) == 2 and "The answer is 4." in rendered[-1] and "Running" in rendered[-1]


def test_close_cancels_the_trailing_render(shell):
    async def scenario() -> LiveView:
        state = chat_state()
        view = LiveView(state, min_interval=0.05)
        view.update()
        state.append("x", GEN, "answer")
        view.update()
        assert view.pending
        view.close()
        await asyncio.sleep(0.15)
        return view

    view = asyncio.run(scenario())
    assert view.renders == 2 and not view.pending and "Running" not in html_of(outputs(shell)[-1])


def test_a_broken_frontend_disables_the_view_with_a_warning(shell):
    class BrokenPublisher(type(shell.display_pub)):
        def publish(self, *args, **kwargs):
            raise RuntimeError("frontend gone")

    shell.display_pub = BrokenPublisher()
    view = LiveView(chat_state())
    with pytest.warns(RuntimeWarning, match="frontend gone"):
        view.update()
    assert view.active is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        view.update(force=True)
        view.close()
    assert view.renders == 0


def test_a_run_shown_live_is_not_displayed_twice_in_its_cell_but_again_in_a_later_one(shell):
    import guidance_lite as gl

    program = gl.Program("Hello {{name}}", model=gl.models.Mock())
    shown = program(name="you")
    assert shown.live_cell == shell.execution_count
    live_outputs = len(outputs(shell))
    assert live_outputs >= 1 and "you" in html_of(outputs(shell)[-1])
    shown._ipython_display_()
    assert len(outputs(shell)) == live_outputs  # the live view already shows this run in this cell
    quiet = program(name="again", silent=True)
    assert quiet.live_cell is None and len(outputs(shell)) == live_outputs
    quiet._ipython_display_()
    assert len(outputs(shell)) == live_outputs + 1 and "again" in html_of(outputs(shell)[-1])
    shell.execution_count += 1  # the next cell: `result` or display(result) shows the run again
    shown._ipython_display_()
    assert len(outputs(shell)) == live_outputs + 2 and "you" in html_of(outputs(shell)[-1])
    assert "Running" not in html_of(outputs(shell)[-1])


def test_negative_interval_is_rejected():
    with pytest.raises(ValueError, match="min_interval"):
        LiveView(ProgramState(), min_interval=-1)


def test_throttled_update_is_far_cheaper_than_a_render(shell, monkeypatch):
    state = chat_state()
    for i in range(500):
        state.append(f"chunk {i} ", GEN, "answer")
    view = LiveView(state, min_interval=3600)
    view.update()  # the one real render + display
    work: list[str] = []  # what the throttled updates do: neither render nor even look at the state
    real_render, real_fingerprint = live.render_html, LiveView._fingerprint
    monkeypatch.setattr(live, "render_html", lambda *a, **k: work.append("render") or real_render(*a, **k))
    monkeypatch.setattr(LiveView, "_fingerprint", lambda self: work.append("fingerprint") or real_fingerprint(self))
    for _ in range(2000):
        view.update()
    assert view.renders == 1
    assert work == []


@pytest.mark.notebook
def test_live_view_in_a_real_kernel_updates_one_output_in_place(tmp_path):
    """End to end in ipykernel: in_ipython() is True there, and all updates land in a single display output."""
    import nbformat
    from nbclient import NotebookClient

    code = "\n".join(
        [
            f"import sys; sys.path.insert(0, {str(live.__file__).rsplit('/guidance_lite/', 1)[0]!r})",
            "from guidance_lite.live import LiveView, in_ipython",
            "from guidance_lite.state import GEN, ProgramState",
            "state = ProgramState()",
            "state.open_role('assistant', {})",
            "view = LiveView(state, min_interval=0.0)",
            "for i in range(5):",
            "    state.append(f'token{i} ', GEN, 'answer')",
            "    view.update()",
            "view.close()",
            "print(in_ipython(), view.renders)",
        ]
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(
        notebook, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    cell_outputs = notebook.cells[0].outputs
    displays = [o for o in cell_outputs if o.output_type == "display_data"]
    assert len(displays) == 1
    final = displays[0].data["text/html"]
    assert "token4" in final and "Running" not in final
    printed = "".join(o.get("text", "") for o in cell_outputs if o.output_type == "stream")
    assert printed.strip() == "True 6"
