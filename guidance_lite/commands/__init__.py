"""Built-in commands and blocks, one module per concern. Importing this package registers them all in
``guidance_lite.registry`` (each module declares its commands with ``registry.command`` / ``registry.block``).
"""

from __future__ import annotations

from . import flow, gen, helpers, loops, roles, select, tool_def, variables  # noqa: F401 - imported to register
