"""Recording runs to a trace file (``record="run.jsonl"``): an observer that writes each event as it happens.

Why line by line: a run that pauses at an ``{{await}}``, fails or is interrupted still leaves everything up to that
point on disk, and a batch's runs interleave safely. The format is ``tracefile``'s (versioned, documented there).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Optional, Union

from . import tracefile
from .observe import ModelCallInfo, Observer, RunInfo, RunOutput, ToolCallInfo

__all__ = ["Recorder", "recorder_for"]


class Recorder(Observer):
    """Writes the runs it observes to ``path`` as JSON Lines. The file is replaced when the recorder writes its first
    event; every run it then observes is appended (``Program(..., record=path)`` shares one recorder between the
    program's runs, so a batch lands in one file)."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._started = False
        self._runs: dict[str, int] = {}  # RunInfo.id -> the run's number in this file

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r})"

    # ---- writing ---------------------------------------------------------------------------------------------------
    def _write(self, event: dict) -> None:
        line = tracefile.dumps(event) + "\n"
        with self._lock:
            if not self._started:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "w", encoding="utf-8") as file:
                    file.write(tracefile.dumps(tracefile.header()) + "\n")
                self._started = True
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(line)

    def _event(self, kind: str, run: RunInfo, **fields: Any) -> None:
        self._write({"event": kind, "run": self._runs[run.id], **fields})

    # ---- the observer hooks ------------------------------------------------------------------------------------------
    def run_started(self, run: RunInfo) -> None:
        with self._lock:
            self._runs[run.id] = len(self._runs) + 1
        self._event(
            "run_start",
            run,
            time=run.started,
            name=run.name,
            model=run.model,
            template=run.template,
            inputs=tracefile.to_json(run.inputs),
            options=tracefile.to_json(run.options),
        )

    def run_paused(self, run: RunInfo, variable: str) -> None:
        self._event("run_paused", run, variable=variable)

    def run_resumed(self, run: RunInfo, variables: dict) -> None:
        self._event("run_resumed", run, variables=tracefile.to_json(variables))

    def run_finished(self, run: RunInfo, output: RunOutput) -> None:
        error = None if output.error is None else {"type": output.error_type, "message": output.error}
        self._event(
            "run_end",
            run,
            completed=output.completed,
            paused_on=output.paused_on,
            error=error,
            duration=output.duration,
            variables=tracefile.to_json(output.variables),
            messages=tracefile.to_json(output.messages),
            text=output.text,
            usage=tracefile.usage_document(output.usage),
            tool_calls=[tracefile.record_document(record) for record in output.tool_calls],
        )

    def model_call_started(self, call: ModelCallInfo) -> None:
        self._event(
            "model_call_start",
            call.run,
            call=call.index,
            time=call.started,
            model=call.model,
            variable=call.variable,
            request=tracefile.request_document(call.request),
        )

    def model_call_finished(self, call: ModelCallInfo) -> None:
        outcome: dict[str, Any]
        if call.completion is not None:
            outcome = {"response": tracefile.completion_document(call.completion)}
        else:
            outcome = {"error": tracefile.error_document(call.error or RuntimeError("no response"))}
        self._event(
            "model_call_end",
            call.run,
            call=call.index,
            duration=call.duration,
            chunks=[tracefile.chunk_document(chunk) for chunk in call.chunks],
            **outcome,
        )

    def tool_call_started(self, call: ToolCallInfo) -> None:
        self._event(
            "tool_call_start",
            call.run,
            tool=call.index,
            time=call.started,
            id=call.call.id,
            name=call.call.name,
            arguments=call.call.arguments_json,
            variable=call.variable,
        )

    def tool_call_finished(self, call: ToolCallInfo) -> None:
        outcome: dict[str, Any]
        if call.record is not None:
            record = tracefile.record_document(call.record)
            record["variable"] = call.variable
            outcome = {"record": record}
        else:
            outcome = {"error": tracefile.error_document(call.error or RuntimeError("no record"))}
        self._event("tool_call_end", call.run, tool=call.index, ran=call.ran, **outcome)


def recorder_for(value: Any) -> Optional[Recorder]:
    """The recorder a ``record=`` option asks for: None/False for none, a Recorder as is, a path for a new one."""
    if value is None or value is False:
        return None
    if isinstance(value, Recorder):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Recorder(value)
    raise TypeError(f"record= takes a file path or a gl.Recorder, not {type(value).__name__}")
