"""Running the calls a model asked for: concurrently, only offered tools, every fault turned into a record the model
can read (unknown tool, bad JSON, bad arguments, an exception, a timeout, a refusal) instead of ending the program."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Optional

from ..observe import ToolCallInfo, ToolWatch, observed
from .call import ToolCall
from .errors import MissingImplementation, ToolArgumentError, ToolDefinitionError, ToolExecutionError
from .records import (
    DENIED,
    EXCEPTION,
    INVALID_ARGUMENTS,
    INVALID_JSON,
    TIMEOUT,
    UNKNOWN_TOOL,
    ToolCallRecord,
    format_result,
)
from .tool import Tool, make_toolset

ERROR_MODES = ("feedback", "raise")
DEFAULT_TOOL_TIMEOUT = 120.0  # seconds a call may run when no tool_timeout= is given; math.inf waits forever
DENIED_MESSAGE = "the user denied this call"

HookResult = Any  # True / None (run), False (deny), dict (replacement arguments)
# a call and its arguments -> the recorded record whose outcome to use instead of running the tool (None: run it)
ReplayedOutcome = Callable[[ToolCall, dict], Optional[ToolCallRecord]]


async def _ask_hook(hook: Callable[[ToolCall], HookResult | Awaitable[HookResult]], call: ToolCall) -> HookResult:
    answer = hook(call)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer


async def _observed_call(
    call: ToolCall,
    tools: Mapping[str, Tool],
    timeout: Optional[float],
    hook: Optional[Callable],
    overrides: Mapping[str, Any],
    watch: ToolWatch,
    replayed: Optional[ReplayedOutcome],
) -> ToolCallRecord:
    """``_run_call`` reported to the run's observers (start, then the record or the error that stopped it)."""
    info = watch.tool_call_started(call)
    return await observed(
        info, _run_call(call, tools, timeout, hook, overrides, replayed, info), watch.tool_call_finished
    )


async def _run_call(
    call: ToolCall,
    tools: Mapping[str, Tool],
    timeout: Optional[float],
    hook: Optional[Callable],
    overrides: Mapping[str, Any],
    replayed: Optional[ReplayedOutcome] = None,
    info: Optional[ToolCallInfo] = None,
) -> ToolCallRecord:
    record = ToolCallRecord(
        id=call.id, name=call.name, arguments=None, arguments_json=call.arguments_json, started_at=time.perf_counter()
    )
    chosen = tools.get(call.name)
    if chosen is None:
        available = ", ".join(tools) or "none"
        return record.fail(UNKNOWN_TOOL, f"unknown tool {call.name!r}; available: {available}")
    try:
        arguments = call.arguments
    except json.JSONDecodeError as exc:
        return record.fail(INVALID_JSON, f"arguments are not valid JSON: {exc}", exc)
    except ValueError as exc:  # valid JSON, but not an object
        return record.fail(INVALID_ARGUMENTS, str(exc), exc)
    if hook is not None:
        try:
            answer = await _ask_hook(hook, call)
        except Exception as exc:  # a failing hook fails this call only, as data
            return record.fail(EXCEPTION, f"{type(exc).__name__}: {exc}", exc)
        if answer is False:
            record.arguments = arguments
            return record.fail(DENIED, DENIED_MESSAGE)
        if isinstance(answer, dict):
            arguments = dict(answer)
        elif answer is not True and answer is not None:
            return record.fail(
                EXCEPTION,
                f"on_tool_call returned {type(answer).__name__}; it must return True or "
                f"None (run), False (deny) or a dict of replacement arguments",
            )
    if overrides:
        arguments = {**arguments, **overrides}
    record.arguments = arguments
    if info is not None:
        info.ran = True
    if replayed is not None:
        outcome = replayed(call, arguments)
        if outcome is not None:
            return record.take_outcome(outcome)
    record.started_at = time.perf_counter()
    limit = DEFAULT_TOOL_TIMEOUT if timeout is None else timeout
    try:
        if math.isinf(limit):
            value = await chosen.invoke(arguments)
        else:
            value = await asyncio.wait_for(chosen.invoke(arguments), limit)
    except ToolArgumentError as exc:
        return _finish(record).fail(INVALID_ARGUMENTS, str(exc), exc)
    except asyncio.TimeoutError as exc:
        hint = " (the default tool_timeout; pass tool_timeout=seconds to allow more)" if timeout is None else ""
        return _finish(record).fail(TIMEOUT, f"timed out after {limit:g}s{hint}", exc)
    except MissingImplementation as exc:
        return _finish(record).fail(EXCEPTION, str(exc), exc)
    except Exception as exc:  # the tool's own failure is reported to the model, not raised
        return _finish(record).fail(EXCEPTION, f"{type(exc).__name__}: {exc}", exc)
    _finish(record)
    record.result = value
    try:
        record.content = format_result(value)
    except Exception as exc:  # e.g. a __str__ that raises: the call still fails as data
        return record.fail(EXCEPTION, f"could not turn the result into text: {type(exc).__name__}: {exc}", exc)
    return record


def _finish(record: ToolCallRecord) -> ToolCallRecord:
    record.duration = time.perf_counter() - record.started_at
    return record


async def dispatch(
    calls: Sequence[ToolCall],
    tools: Mapping[str, Tool],
    *,
    timeout: Optional[float] = None,
    errors: str = "feedback",
    on_tool_call: Optional[Callable] = None,
    overrides: Optional[Mapping[str, Any]] = None,
    watch: Optional[ToolWatch] = None,
    replayed: Optional[ReplayedOutcome] = None,
) -> list[ToolCallRecord]:
    """Run every call concurrently; return one record per call, in call order.

    Only tools in ``tools`` can run. Faults become error records (``error``/``error_type`` set and the message
    in ``content``); with ``errors='raise'`` a ToolExecutionError for the first failed call is raised after
    all calls have finished. ``on_tool_call(call)`` (sync or async; asked only about calls to an offered tool
    whose arguments parse) may approve (True/None), deny (False) or replace the arguments (dict); ``overrides``
    replace/add argument keys of every call (after the hook, before validation). ``timeout`` bounds each call's
    validation + run, not the hook (a person may take a while to answer); None means ``DEFAULT_TOOL_TIMEOUT``
    (read when the calls run), ``math.inf`` no limit. ``watch`` reports each call to the run's observers;
    ``replayed(call, arguments)`` may give a call's recorded outcome, used instead of running the tool (a replay
    answers from its trace; None runs it).
    """
    if errors not in ERROR_MODES:
        raise ValueError(
            f"errors={errors!r} is not supported; use 'feedback' (faults go back to the model as "
            f"tool results) or 'raise'"
        )
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise ValueError(
            f"timeout must be a positive number of seconds (math.inf: no limit) or None (the default, "
            f"{DEFAULT_TOOL_TIMEOUT:g}s), got {timeout!r}"
        )
    if not isinstance(tools, Mapping):
        tools = make_toolset(tools)
    bad = [name for name, value in tools.items() if not isinstance(value, Tool)]
    if bad:
        raise ToolDefinitionError(
            f"dispatch needs Tool objects by name (see make_toolset); not a Tool: {', '.join(map(repr, bad))}"
        )
    overrides = dict(overrides or {})
    if watch is None:
        runs = [_run_call(call, tools, timeout, on_tool_call, overrides, replayed) for call in calls]
    else:
        runs = [_observed_call(call, tools, timeout, on_tool_call, overrides, watch, replayed) for call in calls]
    records = list(await asyncio.gather(*runs))
    if errors == "raise":
        failed = next((r for r in records if r.error is not None), None)
        if failed is not None:
            raise ToolExecutionError(failed, records) from failed.exception
    return records
