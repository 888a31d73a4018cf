"""A persistent cache of deterministic model requests (stdlib sqlite3), and the record a completion is stored as.

Why sqlite: one file, safe across threads (one connection behind a lock) and processes (WAL journal), no extra
dependency. Keys are sha256 digests of the canonical request JSON plus the base URL; credentials are never part of a
key or a value, so API keys can't end up on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional, Union

from .models.base import Choice, Completion, ToolCall, Usage

CACHE_DIR_ENV = "GUIDANCE_LITE_CACHE_DIR"
CACHE_FILE_NAME = "requests.sqlite"


def completion_to_record(completion: Completion) -> dict:
    """What the cache stores for a completion: choices (text, tool calls, finish reason) and usage, as JSON data."""
    usage = completion.usage
    return {
        "model": completion.model,
        "choices": [
            {
                "text": c.text,
                "finish_reason": c.finish_reason,
                "stop_text": c.stop_text,
                "tool_calls": [{"id": t.id, "name": t.name, "arguments": t.arguments_json} for t in c.tool_calls],
            }
            for c in completion.choices
        ],
        "usage": None
        if usage is None
        else {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "estimated": usage.estimated,
        },
    }


def completion_from_record(data: dict, *, cached: bool) -> Completion:
    """The completion a stored record describes (``cached`` marks it as replayed)."""
    choices = [
        Choice(
            c.get("text", ""),
            [ToolCall(t["id"], t["name"], t["arguments"]) for t in c.get("tool_calls", [])],
            c.get("finish_reason"),
            c.get("stop_text"),
        )
        for c in data.get("choices", [])
    ]
    usage = Usage(**data["usage"]) if data.get("usage") else None
    return Completion(choices, usage, data.get("model"), cached=cached)


def default_cache_path() -> Path:
    """``$GUIDANCE_LITE_CACHE_DIR/requests.sqlite``, else ``~/.cache/guidance_lite/requests.sqlite``."""
    directory = os.environ.get(CACHE_DIR_ENV)
    base = Path(directory).expanduser() if directory else Path.home() / ".cache" / "guidance_lite"
    return base / CACHE_FILE_NAME


class RequestCache:
    """Maps request keys to stored completions (JSON dicts)."""

    def __init__(self, path: Union[str, Path, None] = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn: Optional[sqlite3.Connection] = sqlite3.connect(
                str(self.path), check_same_thread=False, timeout=30.0, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )
        except (OSError, sqlite3.Error) as err:
            raise OSError(
                f"cannot open the request cache at {self.path}: {err}. Pass another path "
                f"(cache='/some/writable/file.sqlite') or set {CACHE_DIR_ENV}"
            ) from err
        self._lock = threading.Lock()

    @staticmethod
    def key(body: dict, base_url: str) -> str:
        """sha256 of canonical JSON (sorted keys, no whitespace) of the body and the server's base URL."""
        canonical = json.dumps(
            {"base_url": str(base_url), "body": body},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the request cache at {self.path} was closed")
        return self._conn

    def get(self, key: str) -> Optional[dict]:
        with self._lock:
            row = self._connection().execute("SELECT value FROM requests WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._connection().execute(
                "INSERT OR REPLACE INTO requests (key, value, created) VALUES (?, ?, ?)", (key, text, time.time())
            )

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    def clear(self) -> None:
        with self._lock:
            self._connection().execute("DELETE FROM requests")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r})"
