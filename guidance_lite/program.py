"""Program (a parsed template plus defaults and options) and Execution (one run of it).

A run is an ``Execution``: an interpreter task on an event loop. ``await`` pauses it on a future, so resuming
continues from the saved position (nothing is parsed or rendered again). What a run produced is a ``Result``
(``result.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, Optional, Union, overload

from . import (
    batch,
    commands,  # noqa: F401 - registers the built-in commands and blocks before any template is parsed
)
from .delivery import Channel, EventChannel, ThreadChannel
from .display import COMPLETED, FAILED, INTERRUPTED, PAUSED, render_program_html
from .errors import GuidanceLiteError, TemplateRuntimeError, TemplateSyntaxError
from .events import Event, Finished, Paused
from .interpreter import Interpreter
from .limits import Limits, limits_from
from .live import LiveView, in_ipython
from .models.base import Model, ModelError
from .models.defaults import default as default_model
from .nodes import Template
from .observe import RunOutput, RunWatch
from .options import OPTION_NAMES, TEMPLATE_NAME, ProgramArgumentError, check_no_retired, pick_model
from .parser import parse
from .recorder import recorder_for
from .result import Result
from .results import Results
from .runner import background_loop, run_sync
from .state import ProgramState
from .tracebacks import for_user


class Execution:
    """One run of a program: state, interpreter, and the task that can pause and resume."""

    def __init__(self, program: Program, variables: dict, model: Any, options: dict) -> None:
        self.program = program
        self.state = ProgramState(variables)
        self.options = options
        limits = limits_from(options.get("limits"))

        def load(value: Any, name: str) -> tuple[Template, dict]:
            return load_template(value, name, limits)

        self.interp = Interpreter(self.state, model, program.source, options, pause=self.pause, load_template=load)
        self.watch = _watch(program, variables, model, options)
        self.interp.watch = self.watch
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.task: Optional[asyncio.Task] = None
        self._stopped: Optional[asyncio.Future] = None
        self._resume: Optional[asyncio.Future] = None
        self.paused_on: Optional[str] = None
        self.pauses = 0  # how many times the run has paused (identifies the current pause)
        self.done = False
        self.error: Optional[TemplateRuntimeError] = None

    # ---- called by the interpreter -------------------------------------------------------------------------
    async def pause(self, variable: str) -> None:
        """Stop here until ``resume`` is called with more variables."""
        assert self.loop is not None and self._stopped is not None
        self.paused_on = variable
        self.pauses += 1
        self._resume = self.loop.create_future()
        self.interp.emit(Paused(variable))
        if self.watch is not None:
            self.watch.run_paused(variable)
        if not self._stopped.done():
            self._stopped.set_result("paused")
        await self._resume
        self.paused_on = None

    # ---- driving -----------------------------------------------------------------------------------------------
    async def _main(self) -> None:
        try:
            if self.watch is not None:
                self.watch.run_started()
            await self.interp.run(self.program.template.body)
            self.done = True
        except TemplateRuntimeError as exc:
            self.error = exc
        except ModelError as exc:
            self.error = TemplateRuntimeError(str(exc), source=self.program.source)
        except Exception as exc:
            self.error = TemplateRuntimeError(f"{type(exc).__name__}: {exc}", source=self.program.source)
            self.error.__cause__ = exc
        finally:
            if self.watch is not None:
                self._report_end(self.watch)
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result("done")

    def _report_end(self, watch: RunWatch) -> None:
        """Tell the observers the run ended; an observer that fails (a trace that can't be written) fails the run."""
        try:
            watch.run_finished(self._output())
        except Exception as exc:
            if self.error is None:
                self.error = TemplateRuntimeError(f"{type(exc).__name__}: {exc}", source=self.program.source)
                self.error.__cause__ = exc

    def _output(self) -> RunOutput:
        """What the run produced, for its observers (an unfinished run without an error was abandoned)."""
        state, error = self.state, self.error
        message: Optional[str] = None
        error_type: Optional[str] = None
        if error is not None:  # named after what went wrong underneath (a ModelError, a tool's exception), if known
            message, error_type = error.message, type(error.__cause__ or error).__name__
        elif not self.done:
            message, error_type = "the run was abandoned", "CancelledError"
        return RunOutput(
            completed=self.done,
            variables=state.variables,
            messages=state.messages,
            text=state.text,
            usage=state.usage,
            tool_calls=state.tool_calls,
            paused_on=self.paused_on,
            error=message,
            error_type=error_type,
        )

    async def advance(self, new_variables: Optional[dict] = None) -> Result:
        """Start the run, or resume it with ``new_variables``; returns at its end or its next pause."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        elif self.loop is not loop:
            raise RuntimeError(
                "a paused program resumes on the event loop that started it: use result(...) for "
                "programs started synchronously and await result.aresume(...) for arun()"
            )
        self._stopped = loop.create_future()
        if self.task is None:
            self.task = loop.create_task(self._main())
        else:
            if new_variables:
                self.state.variables.update(new_variables)
            if self.watch is not None:
                self.watch.run_resumed(dict(new_variables or {}))
            resume, self._resume = self._resume, None
            assert resume is not None
            resume.set_result(None)
        try:
            await self._stopped
        except asyncio.CancelledError:
            if self.task is not None:
                self.task.cancel()
            raise
        result = Result(self, completed=self.done, snapshot=not (self.done or self.error))
        if self.error is not None:
            self.error.partial = Result(self, completed=False, error=self.error.message)
            raise self.error
        return result

    async def drive(self, new_variables: Optional[dict] = None) -> Result:
        """``advance``, shown live in a notebook (unless the run is silent): a first run and every resume get a view
        that updates while the run goes on and ends with its final status (completed, paused, failed, interrupted)."""
        live = _live_view(self)
        if live is None:
            return await self.advance(new_variables)
        listener = lambda event: live.update()  # noqa: E731
        self.interp.listeners.append(listener)
        live.update()
        try:
            result = await self.advance(new_variables)
        except TemplateRuntimeError as exc:
            live.close(FAILED, error=exc.message)
            raise
        except (asyncio.CancelledError, KeyboardInterrupt):
            live.close(INTERRUPTED)
            raise
        except BaseException as exc:
            live.close(FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.interp.listeners.remove(listener)
        live.close(COMPLETED if result.completed else PAUSED)
        result.live_cell = live.cell
        return result

    # ---- consumers of events ---------------------------------------------------------------------------------------
    def attach(self, channel: Channel) -> None:
        """Send this run's events to ``channel`` (a ``stream()``/``astream()`` consumer) until ``detach``."""
        self.interp.listeners.append(channel.put)
        self.interp.channel = channel

    def detach(self, channel: Channel) -> None:
        """Stop sending events to ``channel``: its consumer is gone (a paused run resumed later must not wait for
        it to take anything)."""
        if channel.put in self.interp.listeners:
            self.interp.listeners.remove(channel.put)
        if self.interp.channel is channel:
            self.interp.channel = None

    # ---- stopping ------------------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """End the suspended task (the run will never be resumed); thread-safe, a no-op once the task is done."""
        task, loop = self.task, self.loop
        if task is not None and loop is not None and not task.done() and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)

    def cancel_if_paused_at(self, pause: int) -> None:
        """Cancel only when the run still waits at pause number ``pause`` (its result was dropped unresumed)."""
        if self.pauses == pause and self.paused_on is not None:
            self.cancel()


def _watch(program: Program, variables: dict, model: Any, options: dict) -> Optional[RunWatch]:
    """The run's observers: every attached one (``observe.add_observer``) plus a recorder for ``record=``; None (no
    reporting at all) when there are none."""
    recorder = recorder_for(options.get("record"))
    return RunWatch.for_run(
        [recorder] if recorder is not None else [],
        name=program.template_name,
        template=program.source,
        inputs=variables,
        options={key: value for key, value in options.items() if key != "record"},
        model=model.name if isinstance(model, Model) else None,
    )


def load_template(value: Any, name: str, limits: Optional[Limits] = None) -> tuple[Template, dict]:
    """What ``{{>partial}}`` and ``{{parse}}`` run: a Program (its template and defaults) or a template string
    (parsed under ``name`` with the run's nesting limit, no defaults)."""
    if isinstance(value, Program):
        return value.template, value.defaults
    if isinstance(value, str):
        return parse(value, name=name, max_depth=limits_from(limits).max_nesting_depth), {}
    raise TypeError(f"a partial must be a Program or a template string, got {type(value).__name__}")


class Program:
    """A template ready to run. Parsing happens here (cached by text), so syntax errors surface at creation.

    Keyword arguments are template variables (defaults a call can override), except the model (``model=``, or
    ``llm=`` as in guidance 0.0.64), ``template_name=`` (names the template in errors and displays) and the run
    options, which a call takes too (``options.py`` lists them)."""

    def __init__(
        self,
        template: str,
        model: Optional[Model] = None,
        *,
        llm: Optional[Model] = None,
        template_name: Optional[str] = None,
        await_missing: bool = False,
        on_tool_call: Optional[Callable] = None,
        tool_errors: str = "feedback",
        tool_timeout: Optional[float] = None,
        silent: Optional[bool] = None,
        caching: Optional[bool] = None,
        stream: Optional[bool] = None,
        limits: Optional[Limits] = None,
        record: Any = None,
        **defaults: Any,
    ) -> None:
        check_no_retired(defaults)
        if isinstance(template, Program):
            template = template.source
        self.source: str = template
        self.template_name = template_name
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        try:
            self.template: Template = parse(
                template, name=template_name, max_depth=limits_from(limits).max_nesting_depth
            )
        except TemplateSyntaxError as exc:
            raise for_user(exc) from None
        self._model = pick_model({"model": model, "llm": llm})
        self.options = _checked_options(
            {
                "await_missing": await_missing,
                "on_tool_call": on_tool_call,
                "tool_errors": tool_errors,
                "tool_timeout": tool_timeout,
                "silent": silent,
                "caching": caching,
                "stream": stream,
                "limits": limits_from(limits),
                "record": recorder_for(record),  # one recorder for all of this program's runs (a batch: one file)
            }
        )
        self.defaults = defaults

    @classmethod
    def from_file(cls, path: str | Path, model: Optional[Model] = None, **kwargs: Any) -> Program:
        p = Path(path)
        kwargs.setdefault(TEMPLATE_NAME, p.name)
        return cls(p.read_text(encoding="utf-8"), model, **kwargs)

    @property
    def model(self) -> Model:
        """The model given, or ``gl.models.default()`` (looked up on first use)."""
        if self._model is None:
            self._model = default_model()
        return self._model

    def _execution(self, kwargs: dict) -> Execution:
        check_no_retired(kwargs)
        if TEMPLATE_NAME in kwargs:
            raise ProgramArgumentError(
                f"{TEMPLATE_NAME}= names the template when it is parsed: give it to Program(…), not to a call"
            )
        options = dict(self.options)
        for key in OPTION_NAMES:
            if key in kwargs:
                options[key] = kwargs.pop(key)
        model = pick_model(kwargs) or self._model or (lambda: self.model)
        variables = {**self.defaults, **kwargs}
        return Execution(self, variables, model, _checked_options(options))

    def _streams(self, kwargs: dict) -> bool:
        """Whether a call asks for events (``stream=True``, given to the call or to the Program)."""
        return bool(kwargs.get("stream", self.options["stream"]))

    # ---- running ------------------------------------------------------------------------------------------------
    @overload
    def __call__(self, *, stream: Literal[True], **kwargs: Any) -> Iterator[Event]: ...

    @overload
    def __call__(self, **kwargs: Any) -> Result: ...

    def __call__(self, **kwargs: Any) -> Union[Result, Iterator[Event]]:
        """Run to the end (or a pause) and return the Result, shown live in notebooks unless silent; with
        ``stream=True`` (guidance 0.0.64's way to watch a run) return the events as they happen instead, as
        ``program.stream(...)`` does."""
        __tracebackhide__ = True
        check_no_retired(kwargs)  # now, not when the events are first asked for
        if self._streams(kwargs):
            kwargs.pop("stream", None)
            return self.stream(**kwargs)
        try:
            return run_sync(self._execution(kwargs).drive())
        except GuidanceLiteError as exc:
            raise for_user(exc) from exc.__cause__

    async def arun(self, **kwargs: Any) -> Result:
        __tracebackhide__ = True
        if self._streams(kwargs):
            raise ProgramArgumentError(
                "stream=True makes a call return events: from async code iterate `async for event in "
                "program.astream(...)` instead of awaiting arun"
            )
        try:
            return await self._execution(kwargs).drive()
        except GuidanceLiteError as exc:
            raise for_user(exc) from exc.__cause__

    async def astream(self, **kwargs: Any) -> AsyncIterator[Event]:
        """Typed events in order, ending with ``Finished(result)`` (errors raise after the events so far)."""
        execution = self._execution(kwargs)
        channel = EventChannel()
        execution.attach(channel)
        runner = asyncio.ensure_future(execution.advance())
        try:
            while True:
                event = channel.take()
                if event is not None:
                    yield event
                elif runner.done():
                    break
                else:
                    await channel.wait(runner)
            execution.detach(channel)
            try:
                result = runner.result()  # raises TemplateRuntimeError with .partial
            except GuidanceLiteError as exc:
                __tracebackhide__ = True
                raise for_user(exc) from exc.__cause__
            yield Finished(result)
        finally:
            execution.detach(channel)
            if not runner.done():
                runner.cancel()

    def stream(self, **kwargs: Any) -> Iterator[Event]:
        """Sync iterator over the same events as ``astream`` (runs on the background loop)."""
        __tracebackhide__ = True
        loop = background_loop()
        channel = ThreadChannel(loop)

        async def run() -> None:
            try:
                execution = self._execution(kwargs)
                execution.attach(channel)
                try:
                    result = await execution.advance()
                except GuidanceLiteError as exc:
                    raise for_user(exc) from exc.__cause__
                finally:
                    execution.detach(channel)
                channel.put(Finished(result))
            except BaseException as exc:
                channel.end(exc)
            else:
                channel.end()

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            while True:
                kind, value = channel.get()
                if kind == "event":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            future.cancel()

    def map(
        self,
        inputs: list,
        *,
        concurrency: int = 16,
        progress: bool = False,
        return_exceptions: bool = True,
        processes: Optional[int] = None,
    ) -> Results:
        """Run many instances concurrently on one event loop (or ``processes`` worker processes); results in input
        order (a table in notebooks)."""
        __tracebackhide__ = True
        try:
            return run_sync(
                self.amap(
                    inputs,
                    concurrency=concurrency,
                    progress=progress,
                    return_exceptions=return_exceptions,
                    processes=processes,
                )
            )
        except GuidanceLiteError as exc:
            raise for_user(exc) from exc.__cause__

    async def amap(
        self,
        inputs: list,
        *,
        concurrency: int = 16,
        progress: bool = False,
        return_exceptions: bool = True,
        processes: Optional[int] = None,
    ) -> Results:
        """``map`` from async code: the same batch, awaited on the running loop."""
        return await batch.amap(
            self,
            inputs,
            concurrency=concurrency,
            progress=progress,
            return_exceptions=return_exceptions,
            processes=processes,
        )

    # ---- display -----------------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        label = f" {self.template_name!r}" if self.template_name else ""
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"<Program{label}: {len(self.source.splitlines())} lines, starts {first[:60]!r}>"

    def _repr_html_(self) -> str:
        return render_program_html(self.source, self.template_name)


def _checked_options(options: dict) -> dict:
    """The run options, refused here when malformed (not at the first gen, minutes later)."""
    if options["tool_errors"] not in ("feedback", "raise"):
        raise ValueError(f"tool_errors must be 'feedback' or 'raise', not {options['tool_errors']!r}")
    for key in ("caching", "stream"):
        if options[key] is not None and not isinstance(options[key], bool):
            raise ProgramArgumentError(f"{key}= takes True, False or None, not {options[key]!r}")
    return options


def _live_view(execution: Execution) -> Optional[LiveView]:
    """A live notebook view of the run (None outside IPython or when silent)."""
    if execution.options.get("silent") or not in_ipython():
        return None
    return LiveView(execution.state)
