"""Hypothesis material for parser fuzzing: any JSON value, and real documents made wrong."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["ANY_JSON", "WRONG_VALUES", "mutate"]

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)
WRONG_VALUES = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    | st.lists(st.none(), max_size=2) | st.dictionaries(st.text(max_size=3), st.none(), max_size=2)
)  # fmt: skip


def mutate(data: st.DataObject, doc: Any) -> Any:
    """Walks to a random container of `doc` and deletes or replaces one entry (in place)."""
    node = doc
    for _ in range(data.draw(st.integers(0, 5))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        child = node[data.draw(st.sampled_from(keys))]
        if not isinstance(child, dict | list):
            break
        node = child
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        key = data.draw(st.sampled_from(keys))
        if data.draw(st.booleans()):
            del node[key]
        else:
            node[key] = data.draw(WRONG_VALUES)
    return doc
