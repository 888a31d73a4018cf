"""``python -m guidance_lite …``: the same as the ``guidance-lite`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
