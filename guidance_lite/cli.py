"""The ``guidance-lite`` command: ``run`` executes a template file, ``check`` parses it and prints what it needs
(the report of ``gl.analyze``).

Why a CLI at all: templates are files, and trying one against a model (or a scripted Mock) should not need a Python
script. Exit codes are part of the interface so shell scripts and CI can branch on them:
0 ok, 2 usage or template syntax errors, 3 runtime or model errors, 1 anything unexpected (a bug: traceback shown).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Optional

from . import nodes as n
from .analysis import analyze
from .errors import GuidanceLiteError
from .options import RESERVED_NAMES

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_RUNTIME = 3

PROG = "guidance-lite"


class UsageError(GuidanceLiteError):
    """Bad command-line input (exit 2); the message says what to change."""


class RuntimeFailure(GuidanceLiteError):
    """The program or model failed (exit 3); the message is ready to print."""


class _SyntaxFailure(GuidanceLiteError):
    """A template syntax error (exit 2), already formatted as ``path:line:col: message`` + caret + hint."""

    def __init__(self, text: str, error: Any) -> None:
        super().__init__(text)
        self.error = error


# ---- arguments ----------------------------------------------------------------------------------------------------
def parse_value(text: str) -> Any:
    """A ``--var`` value: JSON when it parses (``3``, ``true``, ``["a"]``), else the raw string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_var(item: str) -> tuple[str, Any]:
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--var takes NAME=VALUE (e.g. --var question='What is 2+2?'), got {item!r}")
    return name, parse_value(value)


def load_variables(vars_json: Optional[str], items: Sequence[str]) -> dict[str, Any]:
    """Program arguments from ``--vars-json FILE`` (a JSON object), overridden by each ``--var``."""
    variables: dict[str, Any] = {}
    if vars_json is not None:
        try:
            data = json.loads(Path(vars_json).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--vars-json: cannot read {vars_json}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UsageError(f"--vars-json: {vars_json} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(
                f"--vars-json: {vars_json} must hold a JSON object of variable names to values, "
                f"not a {type(data).__name__}"
            )
        variables.update(data)
    for item in items:
        name, value = parse_var(item)
        variables[name] = value
    for name in variables:
        if name in RESERVED_NAMES:
            raise UsageError(
                f"{name!r} is a program option, not a template variable: rename the variable in the "
                f"template (e.g. {name}_)"
            )
    return variables


def recover_template(args: argparse.Namespace) -> str:
    """The template file of ``run``, also when a many-valued option took it: argparse gives ``--var city=Paris
    prog.hbs`` and ``--mock x prog.hbs`` all the words, so the file is the ``--var`` word without ``=`` (no variable
    has that form), else the last ``--mock`` word."""
    if args.template is not None:
        return args.template
    loose = [item for item in args.var if "=" not in item]
    if loose:
        args.var.remove(loose[-1])
        return loose[-1]
    if args.mock:
        return args.mock.pop()
    raise UsageError("the following arguments are required: TEMPLATE_FILE")


def read_template(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such template file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a template file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def make_model(args: argparse.Namespace) -> Any:
    """The model the flags ask for: --mock, --base-url, --model/--api-key, else ``gl.models.default()``."""
    from . import models
    from .models.base import ModelError
    from .models.defaults import DEFAULT_OPENAI_MODEL

    try:
        if args.mock is not None:
            return models.Mock(list(args.mock) or None)
        if args.base_url is not None:
            return models.OpenAI(args.model or "default", base_url=args.base_url, api_key=args.api_key)
        if args.model is not None or args.api_key is not None:
            name = args.model or os.environ.get("GUIDANCE_LITE_MODEL", DEFAULT_OPENAI_MODEL)
            return models.OpenAI(name, api_key=args.api_key)
        return models.default()
    except (ModelError, ValueError, ImportError, OSError) as exc:
        raise RuntimeFailure(f"could not set up the model: {exc}") from exc


# ---- output -------------------------------------------------------------------------------------------------------
def compact_repr(value: Any) -> str:
    """One line per variable: ``repr`` with any line breaks escaped."""
    return repr(value).replace("\r", "\\r").replace("\n", "\\n")


def result_document(result: Any) -> dict:
    """The ``--json`` document of a (possibly partial) Result."""
    return {
        "variables": dict(result.variables),
        "messages": list(result.messages),
        "text": result.text,
        "usage": dataclasses.asdict(result.usage),
        "tool_calls": [record.to_dict() for record in result.tool_calls],
        "completed": bool(result.completed),
    }


def dump_json(document: Any, out: IO[str]) -> None:
    out.write(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")
    out.flush()


def use_color(choice: str, stream: IO[str]) -> bool:
    """``--color``: 'always', 'never', or 'auto' (colour only on a terminal, and not when ``NO_COLOR`` is set)."""
    if choice != "auto":
        return choice == "always"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def syntax_error_text(path: str, exc: Any, source: str, color: bool = False) -> str:
    """``path:line:col: message``, the source line with a caret (highlighted when ``color``), and the hint."""
    from .errors import source_excerpt
    from .highlight import highlighted_excerpt

    parts = [f"{path}:{exc.line}:{exc.col}: {exc.message}"]
    excerpt = (highlighted_excerpt if color else source_excerpt)(source, exc.line, exc.col)
    if excerpt:
        parts.append(excerpt)
    if exc.hint:
        parts.append(f"hint: {exc.hint}")
    return "\n".join(parts)


def runtime_error_text(path: str, exc: Any) -> str:
    from .errors import source_excerpt
    from .expressions import MissingVariable

    where = f"{path}:{exc.line}:{exc.col}" if exc.line else path
    parts = [f"{where}: error: {exc.message}"]
    excerpt = source_excerpt(exc.source, exc.line, exc.col) if exc.source and exc.line else ""
    if excerpt:
        parts.append(excerpt)
    if exc.hint:
        parts.append(f"hint: {exc.hint}")
    missing = exc.__context__
    if isinstance(missing, MissingVariable) and missing.name and missing.name not in RESERVED_NAMES:
        parts.append(f"hint: on the command line: --var {missing.name.lstrip('@')}=VALUE")
    return "\n".join(parts)


class StreamPrinter:
    """Writes generated text as it arrives (choice 0), ends the line when a generation ends, and notes tool calls."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.at_line_start = True

    def write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.at_line_start = text.endswith("\n")

    def end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")

    def handle(self, event: Any) -> None:
        from .events import TextDelta, ToolCallReady, ToolResult

        if isinstance(event, TextDelta):
            if event.choice == 0:
                self.write(event.text)
            return
        self.end_line()  # any other event means the generation in progress (if any) has ended
        if isinstance(event, ToolCallReady):
            self.write(f"[tool call] {event.call.name}({event.call.arguments_json})\n")
        elif isinstance(event, ToolResult):
            record = event.record
            outcome = f"error: {record.error}" if record.error else record.content
            self.write(f"[tool result] {record.name}: {compact_repr(outcome)[1:-1]}\n")


# ---- commands -----------------------------------------------------------------------------------------------------
def parse_template(path: str, source: str, color: bool = False) -> n.Template:
    from .errors import TemplateSyntaxError
    from .parser import parse

    try:
        return parse(source, name=path)
    except TemplateSyntaxError as exc:
        raise _SyntaxFailure(syntax_error_text(path, exc, source, color), exc) from None


def cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from .errors import TemplateRuntimeError
    from .program import Program

    args.template = recover_template(args)
    source = read_template(args.template)
    variables = load_variables(args.vars_json, args.var)
    try:
        parse_template(args.template, source)  # syntax errors before building (maybe loading) a model
    except _SyntaxFailure as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    try:
        model = make_model(args)
    except RuntimeFailure as exc:
        err.write(f"{args.template}: error: {exc}\n")
        return EXIT_RUNTIME
    program = Program(source, model, template_name=args.template, silent=True, record=args.record)
    try:
        if args.stream:
            result = _stream(program, variables, StreamPrinter(err if args.json else out))
        else:
            result = program(**variables)
        if not result.completed:
            _abandon(result)
    except TemplateRuntimeError as exc:
        err.write(runtime_error_text(args.template, exc) + "\n")
        if args.json and exc.partial is not None:
            dump_json(
                {
                    **result_document(exc.partial),
                    "error": {"message": exc.message, "line": exc.line, "col": exc.col, "hint": exc.hint},
                },
                out,
            )
        return EXIT_RUNTIME
    finally:
        _close_model(model, err)
    if args.json:
        dump_json(result_document(result), out)
    else:
        for name, value in result.variables.items():
            out.write(f"{name} = {compact_repr(value)}\n")
        out.flush()
    if not result.completed:
        err.write(
            f"{args.template}: error: the program paused waiting for {result.paused_on!r} "
            f"(an {{{{await}}}} with no value): pass it with --var {result.paused_on}=VALUE\n"
        )
        return EXIT_RUNTIME
    return EXIT_OK


def _stream(program: Any, variables: dict, printer: StreamPrinter) -> Any:
    """Run ``program`` printing its events as they come; the Result."""
    from .events import Finished

    result = None
    try:
        for event in program.stream(**variables):
            if isinstance(event, Finished):
                result = event.result
            else:
                printer.handle(event)
    finally:
        printer.end_line()
    if result is None:
        raise RuntimeError("the event stream ended without a Finished event")
    return result


def _abandon(result: Any) -> None:
    """Cancel a paused run the CLI will never resume (else its task is reported as destroyed while pending)."""
    result.cancel()


def _close_model(model: Any, err: IO[str]) -> None:
    """Release the model's HTTP clients on the loop that used them (quiet exit, no unclosed-socket warnings)."""
    from .models.base import ModelError
    from .runner import run_sync

    try:
        run_sync(model.aclose())
    except (ModelError, OSError, RuntimeError) as exc:
        err.write(f"{PROG}: warning: closing the model failed: {exc}\n")


def cmd_replay(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Replay each run of a trace (answers and tool results from the trace) and print it as ``run`` would: the
    transcript and the variables, or the ``--json`` document (a list of them for a trace of several runs)."""
    from .errors import TemplateRuntimeError
    from .trace import Trace, TraceError

    try:
        trace = Trace(args.trace)
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    documents = []
    for run in trace.runs:
        label = run.name or f"{args.trace} run {run.number}"
        try:
            if args.stream:
                printer = StreamPrinter(err if args.json else out)
                result = _stream(run.program(tools=args.tools), run.arguments({"silent": True}), printer)
            else:
                result = run.replay(tools=args.tools, silent=True)
            if not result.completed:
                _abandon(result)
        except TraceError as exc:
            err.write(f"{label}: error: {exc}\n")
            return EXIT_RUNTIME
        except TemplateRuntimeError as exc:
            err.write(runtime_error_text(label, exc) + "\n")
            return EXIT_RUNTIME
        if args.json:
            documents.append(result_document(result))
            continue
        if len(trace.runs) > 1:
            out.write(f"== run {run.number}{f' ({run.name})' if run.name else ''}\n")
        if not args.stream:
            out.write(result.text + "\n")
        for name, value in result.variables.items():
            out.write(f"{name} = {compact_repr(value)}\n")
        out.flush()
    if args.json:
        dump_json(documents[0] if len(documents) == 1 else documents, out)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from . import highlight as hl

    source = read_template(args.template)
    try:
        template = parse_template(args.template, source, use_color(args.color, err))
    except _SyntaxFailure as exc:
        err.write(f"{exc}\n")
        if args.json:
            e = exc.error
            dump_json(
                {
                    "file": args.template,
                    "ok": False,
                    "error": {"message": e.message, "line": e.line, "col": e.col, "hint": e.hint},
                },
                out,
            )
        return EXIT_USAGE
    report = analyze(template)
    if args.json:
        dump_json({"file": args.template, "ok": True, **report.to_dict()}, out)
        return EXIT_OK
    color = use_color(args.color, out)
    out.write(f"{args.template}: ok\n")
    for label, names in (
        ("variables", report.variables),
        ("sets", report.sets),
        ("commands", report.commands),
        ("blocks", report.blocks),
    ):
        if color and label in ("commands", "blocks"):  # in the colours the template's highlighting gives them
            names = [hl.paint(hl.name_kind(name, block=label == "blocks"), name) for name in names]
        out.write(f"{label}: {', '.join(names) if names else '(none)'}\n")
    out.flush()
    return EXIT_OK


# ---- entry point --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run and check guidance_lite templates.",
        epilog="exit codes: 0 ok, 2 usage or syntax error, 3 runtime or model error, 1 unexpected error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run a template and print its variables",
        description="Run a template file. Model: --mock, else --base-url (an OpenAI-compatible "
        "server), else --model (OpenAI), else the default model.",
    )
    run.add_argument("template", metavar="TEMPLATE_FILE", nargs="?")  # required: see recover_template
    run.add_argument("--model", metavar="NAME", help="model name (OpenAI unless --base-url is given)")
    run.add_argument("--base-url", metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    run.add_argument("--api-key", metavar="KEY", help="API key (default: $OPENAI_API_KEY)")
    run.add_argument(
        "--var",
        metavar="NAME=VALUE",
        action="extend",
        nargs="+",
        default=[],
        help='a program argument; VALUE is parsed as JSON when it can be (3, true, ["a"]), else taken as a string',
    )
    run.add_argument("--vars-json", metavar="FILE", help="a JSON object of program arguments (--var overrides)")
    run.add_argument("--stream", action="store_true", help="print generated text as it arrives")
    run.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document: variables, messages, text, usage, tool_calls, completed",
    )
    run.add_argument(
        "--mock",
        metavar="REPLY",
        nargs="*",
        help="use a Mock model answering these replies in order (none: numbered mock outputs)",
    )
    run.add_argument("--record", metavar="TRACE_FILE", help="write a trace of the run (JSON Lines) to replay it later")
    run.set_defaults(handler=cmd_run)

    replay = sub.add_parser(
        "replay",
        help="replay a recorded trace and print it",
        description="Replay the runs of a trace written by `run --record` or record=…: the model's answers and the "
        "tools' results come from the trace (no server, no key, no side effects).",
    )
    replay.add_argument("trace", metavar="TRACE_FILE")
    replay.add_argument("--json", action="store_true", help="print the JSON document `run --json` prints")
    replay.add_argument("--stream", action="store_true", help="print generated text as the replay streams it")
    replay.add_argument(
        "--tools",
        choices=("recorded", "live"),
        default="recorded",
        help="'recorded' (default) replays tool results; 'live' would call the tools (only tools given again run)",
    )
    replay.set_defaults(handler=cmd_replay)

    check = sub.add_parser("check", help="report syntax errors, or the variables and commands a template uses")
    check.add_argument("template", metavar="TEMPLATE_FILE")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight template source and names (auto: only on a terminal, and not when NO_COLOR is set)",
    )
    check.set_defaults(handler=cmd_check)
    return parser


def _tolerant_output(stream: IO[str]) -> None:
    """Model text may hold characters the terminal encoding can't show: escape them instead of crashing."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to ``sys.exit``)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here, with argparse's message
    out, err = sys.stdout, sys.stderr
    _tolerant_output(out)
    _tolerant_output(err)
    try:
        return args.handler(args, out, err)
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:  # piped into e.g. `head`, which stopped reading: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush doesn't fail again
        return EXIT_OK
    except Exception:
        err.write(f"{PROG}: unexpected error (please report it):\n{traceback.format_exc()}")
        return EXIT_UNEXPECTED


__all__ = [
    "main",
    "build_parser",
    "parse_value",
    "load_variables",
    "result_document",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "EXIT_RUNTIME",
]
