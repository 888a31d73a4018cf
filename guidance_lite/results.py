"""Results: what ``program.map`` returns, a list (one slot per input, in input order) that also reads as a table.

Why a list subclass: code that indexes, iterates or compares the results of a batch keeps working (a failed slot
still holds its exception), while a notebook shows the batch as one table (an input per row: its arguments, the
variables the run captured, status, tokens, time) under a summary line, and ``to_records`` / ``to_pandas`` give the
same rows to code. Every value is escaped (display's ``escape``); big batches show ``max_rows`` rows and cut long
values to ``max_cell_chars`` with the full value in the cell's tooltip, so a 100,000-input batch renders as fast as
a small one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional

from .display import CSS, escape
from .models.base import Usage
from .result import Result

OK, ERROR, PAUSED = "ok", "error", "paused"
_TITLE_LIMIT = 10_000  # characters of a value kept in a cell's tooltip

_TABLE_CSS = """
.gl-root .gl-summary{font-weight:600;margin:0 0 6px 0}
.gl-root .gl-summary .gl-bad{color:#dc2626}
.gl-root table.gl-results{border-collapse:collapse;font-size:12.5px}
.gl-root table.gl-results th,.gl-root table.gl-results td{border:1px solid rgba(128,128,128,.3);padding:2px 6px;
 text-align:left;vertical-align:top;white-space:pre-wrap;word-break:break-word;max-width:32em}
.gl-root table.gl-results th{background:rgba(128,128,128,.1);font-weight:600}
.gl-root table.gl-results th.gl-group{text-align:center;font-size:11px;text-transform:uppercase;letter-spacing:.04em}
.gl-root table.gl-results td.gl-num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.gl-root table.gl-results td.gl-ok{color:#059669}
.gl-root table.gl-results td.gl-failed{color:#dc2626;background:rgba(220,38,38,.06)}
.gl-root table.gl-results td.gl-paused{color:#a16207}
.gl-root table.gl-results td.gl-more{font-style:italic;opacity:.7}
"""


class Results(list):
    """The results of a batch, in input order: a ``gl.Result`` per input, or the exception of an input that failed.

    ``inputs`` are the argument dicts, ``seconds`` each run's duration, ``wall_time`` the whole batch's (None when
    not measured). In Jupyter it shows as a table; ``to_records()`` and ``to_pandas()`` give its rows. Slot ``i``
    belongs to ``inputs[i]``: list methods that reorder or add items (``sort``, ``append``) do not move the inputs
    along (an added item shows with no inputs).
    """

    max_rows = 50  # rows a table shows (the rest are counted in a last row)
    max_cell_chars = 80  # characters a cell shows (the full value is in its tooltip)

    def __init__(
        self,
        items: Iterable[Any] = (),
        *,
        inputs: Optional[Sequence[dict]] = None,
        seconds: Optional[Sequence[Optional[float]]] = None,
        wall_time: Optional[float] = None,
        defaults: Optional[dict] = None,
    ) -> None:
        super().__init__(items)
        self.inputs: list[dict] = list(inputs) if inputs is not None else [{} for _ in self]
        self.seconds: list[Optional[float]] = list(seconds) if seconds is not None else [None for _ in self]
        self.wall_time = wall_time
        self.defaults: dict = dict(defaults or {})  # the program's defaults: not outputs unless the run changed them
        if len(self.inputs) != len(self) or len(self.seconds) != len(self):
            raise ValueError(
                f"Results needs one input and one duration per item: {len(self)} items, {len(self.inputs)} inputs, "
                f"{len(self.seconds)} durations"
            )

    # ---- reading one slot -----------------------------------------------------------------------------------------
    def input_of(self, index: int) -> dict:
        """The arguments of run ``index`` (empty for an item added to the list later)."""
        return self.inputs[index] if index < len(self.inputs) else {}

    def seconds_of(self, index: int) -> Optional[float]:
        """How long run ``index`` took (None when not measured)."""
        return self.seconds[index] if index < len(self.seconds) else None

    def outputs(self, index: int) -> dict:
        """The variables run ``index`` captured: its variables less its arguments and the program's unchanged
        defaults (for a failed run, what it captured before failing)."""
        result = _result_of(self[index])
        if result is None:
            return {}
        given = self.input_of(index)
        return {
            name: value
            for name, value in result.variables.items()
            if name not in given and not (name in self.defaults and self.defaults[name] is value)
        }

    def status(self, index: int) -> tuple[str, Optional[str]]:
        """(``'ok'`` | ``'error'`` | ``'paused'``, what went wrong: the error's class and first line, or the variable
        a paused run waits for)."""
        item = self[index]
        if isinstance(item, BaseException):
            return ERROR, _error_line(item)
        if isinstance(item, Result) and not item.completed:
            return PAUSED, f"waiting for {item.paused_on!r}"
        return OK, None

    def usage(self, index: int) -> Optional[Usage]:
        result = _result_of(self[index])
        return result.usage if result is not None and isinstance(result.usage, Usage) else None

    # ---- as data -------------------------------------------------------------------------------------------------
    def to_records(self) -> list[dict]:
        """One flat dict per input, in order: ``inputs.<name>`` for each argument, ``outputs.<name>`` for each
        captured variable, then ``status``, ``error``, ``tokens`` and ``seconds`` (the prefixes keep an argument,
        a variable and these fields apart whatever they are called)."""
        records = []
        for index in range(len(self)):
            status, problem = self.status(index)
            usage = self.usage(index)
            record = {f"inputs.{name}": value for name, value in self.input_of(index).items()}
            record.update({f"outputs.{name}": value for name, value in self.outputs(index).items()})
            record.update(
                status=status,
                error=problem if status == ERROR else None,
                tokens=usage.total_tokens if usage is not None else None,
                seconds=self.seconds_of(index),
            )
            records.append(record)
        return records

    def to_pandas(self) -> Any:
        """The records as a ``pandas.DataFrame`` (pandas is optional: ``pip install 'guidance_lite[pandas]'``)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "Results.to_pandas() needs pandas: pip install 'guidance_lite[pandas]' (or pip install pandas); "
                "Results.to_records() gives the same rows as plain dicts"
            ) from None
        return pandas.DataFrame.from_records(self.to_records(), columns=self._columns())

    def _columns(self) -> list[str]:
        """Every record's keys in first-seen order (records of different inputs may have different names)."""
        inputs = _union(self.input_of(index) for index in range(len(self)))
        outputs = _union(self.outputs(index) for index in range(len(self)))
        return (
            [f"inputs.{name}" for name in inputs]
            + [f"outputs.{name}" for name in outputs]
            + ["status", "error", "tokens", "seconds"]
        )

    # ---- summary and table ----------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: how many runs, ok / failed / paused, total tokens, wall time."""
        return "".join(text for text, _ in self.summary_pieces())

    def summary_pieces(self) -> list[tuple[str, bool]]:
        """The summary line in pieces, each marked when it reports a problem (the HTML makes those stand out)."""
        counts = {OK: 0, ERROR: 0, PAUSED: 0}
        tokens, estimated = 0, False
        for index in range(len(self)):
            counts[self.status(index)[0]] += 1
            usage = self.usage(index)
            if usage is not None:
                tokens += usage.total_tokens
                estimated = estimated or usage.estimated
        pieces = [(f"{len(self):,} run{'' if len(self) == 1 else 's'}: {counts[OK]:,} ok, ", False)]
        pieces.append((f"{counts[ERROR]:,} failed", counts[ERROR] > 0))
        if counts[PAUSED]:
            pieces.append((f", {counts[PAUSED]:,} paused", True))
        pieces.append((f" · {'~' if estimated else ''}{tokens:,} tokens", False))
        if self.wall_time is not None:
            pieces.append((f" · wall time {_duration(self.wall_time)}", False))
        return pieces

    def _repr_html_(self) -> str:
        return render_results_html(self)


def render_results_html(results: Results) -> str:
    """The batch as one self-contained HTML fragment: the summary line, then a table of at most ``max_rows`` rows."""
    shown = range(min(len(results), max(results.max_rows, 0)))
    inputs = _union(results.input_of(index) for index in shown)
    outputs = _union(results.outputs(index) for index in shown)
    limit = max(results.max_cell_chars, 1)
    out = ['<div class="gl-root"><style>', CSS, _TABLE_CSS, "</style>", _summary_html(results)]
    out.append('<table class="gl-results"><thead><tr><th rowspan="2">#</th>')
    if inputs:
        out.append(f'<th class="gl-group" colspan="{len(inputs)}">inputs</th>')
    if outputs:
        out.append(f'<th class="gl-group" colspan="{len(outputs)}">outputs</th>')
    out.append('<th rowspan="2">status</th><th rowspan="2">tokens</th><th rowspan="2">time</th></tr><tr>')
    out.extend(f"<th>{escape(name)}</th>" for name in (*inputs, *outputs))
    out.append("</tr></thead><tbody>")
    for index in shown:
        given, captured = results.input_of(index), results.outputs(index)
        out.append(f'<tr><td class="gl-num">{index}</td>')
        out.extend(_cell(given, name, limit) for name in inputs)
        out.extend(_cell(captured, name, limit) for name in outputs)
        out.append(_status_cell(results, index, limit))
        usage = results.usage(index)
        tokens = f"{'~' if usage.estimated else ''}{usage.total_tokens:,}" if usage is not None else ""
        seconds = results.seconds_of(index)
        out.append(f'<td class="gl-num">{tokens}</td>')
        out.append(f'<td class="gl-num">{_duration(seconds)}</td></tr>')
    hidden = len(results) - len(shown)
    if hidden:
        width = 4 + len(inputs) + len(outputs)
        out.append(
            f'<tr><td class="gl-more" colspan="{width}">… {hidden:,} more row{"" if hidden == 1 else "s"} '
            "(all of them: .to_records() or .to_pandas())</td></tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _summary_html(results: Results) -> str:
    pieces = (
        f'<span class="gl-bad">{escape(text)}</span>' if problem else escape(text)
        for text, problem in results.summary_pieces()
    )
    return f'<div class="gl-summary">{"".join(pieces)}</div>'


def _cell(values: dict, name: str, limit: int) -> str:
    if name not in values:
        return "<td></td>"
    value = values[name]
    return _text_cell(value if isinstance(value, str) else repr(value), limit)


def _text_cell(text: str, limit: int, css: str = "", title: Optional[str] = None) -> str:
    """A cell showing at most ``limit`` characters of ``text`` (line breaks as ⏎); a cut value is whole in the
    tooltip (``title`` replaces it)."""
    shown = text.replace("\r\n", "\n").replace("\n", "⏎")
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
        title = text if title is None else title
    attrs = f' class="{css}"' if css else ""
    if title is not None:
        if len(title) > _TITLE_LIMIT:
            title = title[:_TITLE_LIMIT] + f"… ({len(title) - _TITLE_LIMIT:,} more characters)"
        attrs += f' title="{escape(title)}"'
    return f"<td{attrs}>{escape(shown)}</td>"


def _status_cell(results: Results, index: int, limit: int) -> str:
    status, problem = results.status(index)
    if status == OK:
        return '<td class="gl-ok">ok</td>'
    if status == PAUSED:
        return _text_cell(f"paused: {problem}", limit, "gl-paused")
    item = results[index]
    return _text_cell(problem or "", limit, "gl-failed", title=f"{type(item).__name__}: {item}")


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _result_of(item: Any) -> Optional[Any]:
    """The Result of a slot: the run's, or the partial run of a failure (``TemplateRuntimeError.partial``)."""
    if isinstance(item, Result):
        return item
    partial = getattr(item, "partial", None) if isinstance(item, BaseException) else None
    return partial if partial is not None and hasattr(partial, "variables") else None


def _error_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _union(dicts: Iterable[dict]) -> list[str]:
    names: dict[str, None] = {}
    for values in dicts:
        for name in values:
            names.setdefault(name, None)
    return list(names)


__all__ = ["Results", "render_results_html"]
