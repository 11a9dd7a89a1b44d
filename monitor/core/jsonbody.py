"""JSON from the network, where every failure to read it is a ValueError.

`json.loads` raises RecursionError on a body nested deeper than the interpreter's
recursion limit (200,000 `[` are 200 KB): callers that judge "not JSON" by catching
ValueError would otherwise crash on it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(text: str | bytes) -> Any:
    """`json.loads`, with nesting too deep to read reported as a ValueError that says so."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read (about 1,000 levels at most)") from None
