"""Hypothesis material for config fuzzing: the bundled monitors.yaml mutated as text,
and documents shaped by monitors.schema.json with hostile values planted in them.

Used by tests/test_config_fuzz.py and bench/config_fuzz.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from monitor.config.loader import parse_config
from monitor.core.errors import ConfigError

__all__ = ["BUNDLED", "DOCUMENTS", "ENV", "Verdict", "judge"]

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = (ROOT / "monitors.yaml").read_text()
SCHEMA: dict[str, Any] = json.loads((ROOT / "monitors.schema.json").read_text())
ENV = {"NPM_TOKEN": "npm_s3cr3t", "GITHUB_TOKEN": "ghp_s3cr3t", "MONITOR_API_TOKEN": "api-s3cr3t"}

# Text that has broken the loader or the validators, or could.
SNIPPETS = [
    '!!int "abc"', "!!python/name:os.system ''", "!!python/object/apply:os.system ['id']",
    "!custom foo", '!!float "x"', '!!bool "maybe"', '!!timestamp "2020-13-45"', "!!binary aGk=",
    "!!set {a: null}", "{<<: 5}", "<<: *a", "&a ", "*a", "*nope", "? [a]\n: 1", "\x00", "\x07",
    "\ufeff", "\t", "\r\n", "---\n", "...\n", "%YAML 1.1\n", "99999999999999w",
    "9" * 400 + "s", "9" * 4400, "a{4294967296}", "(" * 300, ")" * 300, "[" * 100, "{" * 100,
    "${NPM_TOKEN}", "${UNSET}", "${X:-5s}", "$$", '"a\\nb"', "'\\r\\n'", "- ", ": ", "#", "|",
    ">-", "'", '"', "\\", "\U0001f600", "\ud800x", ".inf", ".nan", "-0", "0x1F", "0o17", "1e309",
    "null", "~", "true", "on", "-1", "2147483648", "9223372036854775808",
]  # fmt: skip


def _mutate_text(text: str, edits: list[tuple[int, int, int, str]]) -> str:
    for pos, op, span, snippet in edits:
        at = pos % (len(text) + 1)
        if op == 0:
            text = text[:at] + snippet + text[at:]
        elif op == 1:
            text = text[:at] + text[at + span :]
        else:
            text = text[:at] + snippet + text[at + span :]
    return text


_EDIT = st.tuples(
    st.integers(0, 1 << 20),
    st.integers(0, 2),
    st.integers(0, 40),
    st.sampled_from(SNIPPETS) | st.text(max_size=8),
)
MUTATED = st.lists(_EDIT, min_size=1, max_size=6).map(lambda edits: _mutate_text(BUNDLED, edits))

# Values planted in schema-shaped documents, in place of what the schema asks for.
HOSTILE_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        "99999999999999w", "9" * 400 + "s", 10**30, -(10**30), 2**63, 1e308, float("inf"),
        "a{4294967296}", "(" * 500 + ")" * 500, "a\nb", "x\r\nInjected: 1", "\x00", "",
        "${NPM_TOKEN}", "http://u:${GITHUB_TOKEN}@h/", [], {}, [[[[]]]], {"a": {"b": {}}},
        None, True, "nosuch", "1" * 5000, "ééé", "\U0001f600" * 50,
    ]
) | st.text(max_size=20) | st.integers() | st.floats()  # fmt: skip

_DURATIONS = st.sampled_from(["30s", "5m", "1h30m", "2d", "250ms", "1w", "0s", "1.5s"])
_SAMPLES = {
    "uri": st.sampled_from(["https://example.org/", "http://127.0.0.1:9/x?y=1", "mailto:a@b"]),
    "name": st.from_regex(r"\A[a-z][a-z0-9_-]{0,10}\Z"),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = SCHEMA["$defs"][ref.rsplit("/", 1)[1]]
    return resolved


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values shaped like `schema`, sometimes with a hostile value in place of one."""
    schema = _resolve(schema)
    shaped = st.deferred(lambda: _shaped(schema, depth))
    return st.one_of(shaped, shaped, shaped, HOSTILE_VALUES)


def _shaped(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if depth > 6:
        return st.none()
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            return st.one_of([from_schema(s, depth + 1) for s in schema[combinator]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        if not props:
            extra = schema.get("additionalProperties")
            values = from_schema(extra, depth + 1) if isinstance(extra, dict) else st.none()
            return st.dictionaries(_SAMPLES["name"], values, max_size=3)
        fields = {k: from_schema(v, depth + 1) for k, v in props.items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "array":
        items = schema.get("items", {})
        return st.lists(from_schema(items, depth + 1) if items else st.none(), max_size=3)
    if kind == "string":
        pattern = schema.get("pattern", "")
        if "ms|s|m|h|d|w" in pattern:
            return _DURATIONS
        if schema.get("format") == "uri" or "http" in pattern:
            return _SAMPLES["uri"]
        return _SAMPLES["name"] | st.text(max_size=12)
    if kind == "integer":
        return st.integers(schema.get("minimum", -5), schema.get("maximum", 100))
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return HOSTILE_VALUES


def _dump(doc: Any, flow: bool) -> str:
    try:
        return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True, width=1000)
    except yaml.YAMLError:
        return json.dumps(doc)


SHAPED = st.builds(_dump, _shaped(SCHEMA, 0), st.booleans())
DOCUMENTS = st.one_of(MUTATED, SHAPED)


class Verdict:
    """What one document did: ok, located errors, or something it must never do."""

    def __init__(self, outcome: str, seconds: float, detail: str = "") -> None:
        self.outcome = outcome  # "ok" | "errors" | "unlocated" | "internal" | "traceback"
        self.seconds = seconds
        self.detail = detail


def judge(text: str, parse: Callable[..., Any] = parse_config) -> Verdict:
    """Parses `text` and classifies the answer; never raises."""
    started = time.process_time()
    try:
        parse(text, "m.yaml", ENV)
    except ConfigError as exc:
        seconds = time.process_time() - started
        for issue in exc.issues:
            if issue.file != "m.yaml" or issue.line < 1 or issue.column < 1 or not issue.message:
                return Verdict("unlocated", seconds, str(issue))
            if "could not be validated" in issue.message:
                return Verdict("internal", seconds, str(issue))
            if any(secret in str(issue) for secret in ENV.values()):
                return Verdict("secret", seconds, str(issue))
        return Verdict("errors", seconds)
    except BaseException as exc:
        return Verdict("traceback", time.process_time() - started, repr(exc)[:500])
    return Verdict("ok", time.process_time() - started)
