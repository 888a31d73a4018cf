"""Loops: ``{{#each}}`` over lists and dicts, ``{{#while}}`` (guidance 0.0.64's ``{{#while True}}``), and
``{{#geneach}}``, which lets the model decide how many items.

Writes into the item (``{{gen 'this.y'}}``, ``{{set 'this.z' …}}``) copy the item rather than change the caller's
data; when the loop runs over a variable (``{{#each xs}}``, ``{{#each obj.xs}}``) the copy is written back into the
run's copy of that variable, so ``result['xs']`` and later tags see what the loop wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

from ..context import RunContext
from ..control import BreakLoop, ContinueLoop
from ..errors import TemplateRuntimeError
from ..nodes import Block, Text, path_of
from ..registry import CallSite, Effects, block
from ..state import Span
from .select import choose


def _frame(item: Any, index: int, count: Optional[int], key: Any = None, item_name: str = "this") -> dict:
    frame = {"this": item, "@index": index, "@first": index == 0, "@last": count is not None and index == count - 1}
    if key is not None:
        frame["@key"] = key
    if item_name != "this":
        frame[item_name] = item
    return frame


def _each_names(site: CallSite) -> Effects:
    """The body sees ``item_name`` (and ``this``, ``@index`` …, which ``check`` always treats as bound)."""
    return Effects(scoped=(site.string(None, "item_name"),))


def _geneach_names(site: CallSite) -> Effects:
    """The list's name is set before the first item is generated; the body sees ``item_name``."""
    return Effects(sets=(site.string(0, "name"),), scoped=(site.string(None, "item_name"),))


@block("each", separators=("else",), binds=_each_names, usage="{{#each items}}…{{/each}}")
async def each(
    interp: RunContext,
    node: Block,
    items: Any,
    *,
    item_name: str = "this",
    hidden: bool = False,
    parallel: bool = False,
) -> None:
    frames = _frames(items, item_name)
    if not len(frames):
        if node.branches:  # {{else}} renders for an empty collection
            await interp.render(node.branches[0].body)
        return
    source = path_of(node.args[0]) if node.args and isinstance(items, (list, Mapping)) else None
    items_back = _WriteBack(interp, source, item_name, frames)
    with interp.state.hidden(hidden):
        if parallel:
            await _each_parallel(interp, node, frames, items_back)
        else:
            await _each_in_order(interp, node, frames, items_back)


class _WriteBack:
    """Puts an item the body wrote into (so it was copied) back into the run's copy of the looped-over variable."""

    def __init__(self, interp: RunContext, source: Optional[str], item_name: str, frames: _Frames) -> None:
        self.interp, self.source, self.item_name, self.frames = interp, source, item_name, frames

    def __call__(self, index: int, frame: dict) -> None:
        if self.source is None:
            return
        key, original = self.frames.pairs[index]
        slot = str(index) if not self.frames.keyed else key if isinstance(key, str) and key and "." not in key else None
        if slot is None:
            return
        for name in (self.item_name, "this"):
            value = frame.get(name, original)
            if value is not original:
                self.interp.assign(f"{self.source}.{slot}", value)
                return


class _Frames:
    """The frames of an each loop, made one at a time as the loop reaches them (a loop over a million items never
    holds a million frames)."""

    def __init__(self, pairs: Sequence[tuple[Any, Any]], item_name: str, keyed: bool = False) -> None:
        self.pairs = pairs  # (key or None, item)
        self.item_name = item_name
        self.keyed = keyed  # a dict's items (slots are keys) rather than a sequence's (slots are indices)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[dict]:
        count = len(self.pairs)
        for index, (key, item) in enumerate(self.pairs):
            yield _frame(item, index, count, key, self.item_name)


def _frames(items: Any, item_name: str) -> _Frames:
    if isinstance(items, Mapping):
        return _Frames(list(items.items()), item_name, keyed=True)
    if isinstance(items, range):
        return _Frames(_Unkeyed(items), item_name)
    try:
        seq = list(items)
    except TypeError:
        raise TypeError(f"{{{{#each}}}} needs a list, dict or other iterable, got {type(items).__name__}") from None
    return _Frames(_Unkeyed(seq), item_name)


class _Unkeyed(Sequence):
    """A sequence's items as (None, item) pairs, without copying it."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: Any) -> Any:
        return None, self.items[index]


async def _each_in_order(interp: RunContext, node: Block, frames: _Frames, items_back: _WriteBack) -> None:
    for index, frame in enumerate(frames):
        interp.count_iteration(node)
        finished = await _render_item(interp, node, frame)
        items_back(index, frame)
        if not finished:
            break


async def _render_item(interp: RunContext, node: Block, frame: dict) -> bool:
    """Render the loop body once in ``frame``; False when it ran ``{{break}}`` (``{{continue}}`` ends it early)."""
    interp.scopes.append(frame)
    try:
        await interp.render(node.body)
    except ContinueLoop:
        pass
    except BreakLoop:
        return False
    finally:
        interp.scopes.pop()
    return True


async def _each_parallel(interp: RunContext, node: Block, frames: _Frames, items_back: _WriteBack) -> None:
    """Run iterations concurrently on interpreter forks, at most ``Limits.max_parallel`` at a time; each continues
    the text before the loop, and their text is written in order once all have run."""
    interp.budget.reserve_iterations(len(frames), f"the parallel loop on line {node.line}")
    numbered = enumerate(frames)  # shared by the workers: each takes the next iteration when it is free
    captured: dict[int, list[Span]] = {}

    async def worker() -> None:
        for index, frame in numbered:
            fork = interp.fork(frame)
            try:
                await fork.render(node.body)
            except (ContinueLoop, BreakLoop):
                pass
            items_back(index, frame)
            captured[index] = fork.captures[0]

    workers = [asyncio.ensure_future(worker()) for _ in range(min(interp.limits.max_parallel, len(frames)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:  # one iteration failed: stop the others
            task.cancel()
    for index in range(len(frames)):
        interp.replay(captured.pop(index, []))


@block("while", usage="{{#while condition max_iterations=100}}…{{/while}}")
async def while_loop(interp: RunContext, node: Block, condition: Any, *, max_iterations: int = 100) -> None:
    """Run the body while ``condition`` (evaluated again before each iteration) is true; ``{{break}}`` and
    ``{{continue}}`` work as in ``each``. A runaway loop is an error, never a silent stop: when the condition is still
    true after ``max_iterations`` iterations, a TemplateRuntimeError names the loop's line and the limit."""
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 0:
        raise ValueError(f"max_iterations must be a whole number >= 0, got {max_iterations!r}")
    for index in range(max_iterations + 1):
        if index:
            (condition,), _ = await interp.evaluate_at(node, node.args_fn)
        if not condition:
            return
        if index == max_iterations:
            raise TemplateRuntimeError(
                f"{{{{#while}}}} ran {max_iterations} iterations and its condition is still true "
                f"(max_iterations={max_iterations})",
                line=node.line,
                col=node.col,
                source=interp.source,
                hint="make the condition false or {{break}} out of the loop, or raise max_iterations=…",
            )
        interp.count_iteration(node)  # the run's loop budget (Limits.max_loop_iterations) counts these too
        if not await _render_item(interp, node, {"@index": index, "@first": index == 0}):
            return


@block("geneach", binds=_geneach_names, generates=True, usage="{{#geneach 'items' num_iterations=3}}…{{/geneach}}")
async def geneach(
    interp: RunContext,
    node: Block,
    name: Any,
    *,
    stop: Any = None,
    num_iterations: Optional[int] = None,
    max_iterations: int = 100,
    min_iterations: int = 0,
    hidden: bool = False,
    join: str = "",
    item_name: str = "this",
) -> None:
    """Generate a list: run the body once per item, letting the model choose when to stop (or a fixed count)."""
    if not isinstance(name, str):
        raise TypeError("geneach needs the list's variable name as a string, e.g. {{#geneach 'items'}}")
    items: list = interp.owned.new([])
    interp.assign(name, items)
    limit = num_iterations if num_iterations is not None else max_iterations
    with interp.state.hidden(hidden):
        for index in range(limit):
            asks_model = num_iterations is None and index >= min_iterations and stop is not False
            if asks_model and not await _model_continues(interp, node, stop, index):
                break
            interp.count_iteration(node)
            if index > 0 and join:
                interp.write(join)
            frame = _frame(interp.owned.new({}), index, num_iterations, None, item_name)
            finished = await _render_item(interp, node, frame)
            items.append(frame[item_name])
            if not finished:
                break


async def _model_continues(interp: RunContext, node: Block, stop: Any, index: int) -> bool:
    """Ask the model to choose between starting another item (the body's leading text) and stopping."""
    start = _leading_text(node)
    if not start:
        raise ValueError(
            "geneach needs num_iterations=…, stop=False (loop until max_iterations or {{break}}, e.g. "
            "a chat driven by {{await}}), or a body that starts with literal text so the model can "
            "choose between another item and the end"
        )
    end = stop if isinstance(stop, str) and stop else "<|end|>"
    chosen = await choose(interp, node, [start, end], variable=None)
    return chosen == start


def _leading_text(node: Block) -> str:
    """The body's first non-blank literal text ("" when a tag or block comes first)."""
    for child in node.body:
        if not isinstance(child, Text):
            return ""
        if child.text.strip():
            return child.text
    return ""


__all__ = ["each", "while_loop", "geneach"]
