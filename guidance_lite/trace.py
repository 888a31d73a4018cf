"""``gl.Trace``: a recorded trace file as runs you can replay, print or look at.

Replaying a run re-runs its template with its recorded inputs against ``gl.models.Replay`` (the model's answers and
the tools' results come from the trace), so a replayed run is a real ``Result``: it streams, shows live and renders
in a notebook exactly as the recorded run did.

Inputs JSON could not hold come back as follows: a function offered as a tool becomes a ``Tool`` with its recorded
definition and no implementation (its recorded results are replayed); an ``on_tool_call`` hook is replaced by the
recorded decisions (denials and edited arguments). Anything else (a helper function, an object) must be passed
again: ``trace.replay(helper=helper)``.
"""

from __future__ import annotations

import html
import os
from typing import Any, Optional, Union

from .display import FAILED, render_html
from .errors import TemplateRuntimeError
from .models.replay import Replay
from .program import Program
from .result import Result
from .tools import Tool, ToolCall, make_tool
from .tracefile import TOOL_KEY, RecordedRun, Recording, TraceError, is_marker, read

__all__ = ["Trace", "TraceRun", "TraceError"]


class TraceRun:
    """One recorded run: its template, inputs and outputs as recorded, and :meth:`replay`."""

    def __init__(self, recording: Recording, run: RecordedRun) -> None:
        self.recording = recording
        self.recorded = run
        start = run.start
        self.number: int = run.number
        self.name: Optional[str] = start.get("name")
        self.template: str = start.get("template", "")
        self.inputs: dict = start.get("inputs") or {}
        self.options: dict = start.get("options") or {}
        self.output: Optional[dict] = run.end  # the ``run_end`` event (None if the file stops before the run ended)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        state = "no end" if self.output is None else "completed" if self.output.get("completed") else "not completed"
        return (
            f"<TraceRun {self.number}{label}: {len(self.recorded.model_calls)} model call(s), "
            f"{len(self.recorded.tool_calls)} tool call(s), {state}>"
        )

    def arguments(self, overrides: dict) -> dict:
        """The program arguments and options of a replay: the recorded ones rebuilt, ``overrides`` winning."""
        arguments = {name: _rebuilt(value, name) for name, value in self.inputs.items() if name not in overrides}
        for option in ("await_missing", "tool_errors", "tool_timeout"):
            if option in self.options and option not in overrides:
                arguments[option] = self.options[option]
        if self.options.get("on_tool_call") is not None and "on_tool_call" not in overrides:
            arguments["on_tool_call"] = self._recorded_decisions
        return {**arguments, **overrides}

    def _recorded_decisions(self, call: ToolCall) -> Any:
        """Stands in for the recorded run's ``on_tool_call``: deny what it denied, use the arguments it let run."""
        for tool in self.recorded.tool_calls:
            if tool.id == call.id and tool.name == call.name and tool.record is not None:
                if tool.record.get("error_type") == "denied":
                    return False
                if tool.ran and isinstance(tool.record.get("arguments"), dict):
                    return dict(tool.record["arguments"])
        return True

    def program(self, *, tools: str = "recorded", model: Any = None) -> Program:
        """The recorded template as a Program answered by a ``Replay`` of this trace (or by ``model``)."""
        return Program(
            self.template, model if model is not None else Replay(self.recording, tools=tools), template_name=self.name
        )

    def replay(self, *, tools: str = "recorded", model: Any = None, **overrides: Any) -> Result:
        """Run the recorded template again with the recorded inputs (``overrides`` replace some) against a
        ``Replay`` of this trace (or ``model``), resuming it with what the recorded run was resumed with."""
        result = self.program(tools=tools, model=model)(**self.arguments(overrides))
        for variables in self.recorded.resumes:
            if result.completed:
                break
            result = result(**variables)
        return result

    def _repr_html_(self) -> str:
        """The run as the live view showed it (replayed silently); the recorded transcript if it can't be."""
        try:
            return self.replay(silent=True)._repr_html_()
        except TemplateRuntimeError as exc:
            if isinstance(exc.partial, Result):
                return render_html(exc.partial.state, status=FAILED, error=exc.message)
            return _fallback_html(self, exc.message)
        except TraceError as exc:
            return _fallback_html(self, str(exc))


class Trace:
    """A trace file written by ``record=`` (see ``tracefile`` for the format): ``runs``, and ``replay()``."""

    def __init__(self, path: Union[str, os.PathLike, Recording]) -> None:
        self.recording = path if isinstance(path, Recording) else read(path)
        self.path = self.recording.path
        self.runs = [TraceRun(self.recording, run) for run in self.recording.runs]

    def __repr__(self) -> str:
        return f"<Trace {self.path!r}: {len(self.runs)} run(s), {len(self.recording.model_calls)} model call(s)>"

    def __len__(self) -> int:
        return len(self.runs)

    def replay(self, *, tools: str = "recorded", **overrides: Any) -> Result:
        """Replay the trace's run (see :meth:`TraceRun.replay`); a trace of several runs: ``trace.runs[i].replay()``."""
        if len(self.runs) != 1:
            raise TraceError(f"{self.path} holds {len(self.runs)} runs: replay one of them with trace.runs[i].replay()")
        return self.runs[0].replay(tools=tools, **overrides)

    def _repr_html_(self) -> str:
        return "".join(run._repr_html_() for run in self.runs)


def _rebuilt(value: Any, where: str) -> Any:
    """A recorded input as a program argument again: a function offered as a tool becomes a Tool without an
    implementation; any other value JSON could not hold must be passed to the replay."""
    if is_marker(value):
        if isinstance(value.get(TOOL_KEY), dict):
            return _stand_in(value[TOOL_KEY])
        name = where.split("[")[0].split(".")[0]
        raise TraceError(
            f"the recorded input {where} was {value['__repr__']}, which a trace can't hold: pass it to the replay "
            f"(trace.replay({name}=…))"
        )
    if isinstance(value, dict):
        return {key: _rebuilt(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_rebuilt(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def _stand_in(definition: dict) -> Tool:
    """A Tool with a recorded definition and no implementation (a replay answers its calls from the trace)."""
    return make_tool(definition)


def _fallback_html(run: TraceRun, problem: str) -> str:
    text = (run.output or {}).get("text", "")
    return (
        '<div class="gl-root"><div class="gl-status gl-status-error">'
        f"Trace run {run.number} can't be replayed: {html.escape(problem)}</div>"
        f'<pre style="white-space:pre-wrap">{html.escape(text)}</pre></div>'
    )
