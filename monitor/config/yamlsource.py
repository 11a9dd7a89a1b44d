"""YAML to plain Python values, remembering where every key and value came from.

`load_yaml` is pure: text in, data and a `SourceMap` out. Environment references
(`${VAR}`, `${VAR:-default}`, `$$` for a literal `$`) are expanded in string values
only, after parsing, so a reference in a comment is never evaluated and every error
still points at the line it came from.

Every document gets data or a located `ConfigError`, within bounds on its size, its
nesting, its node count and what its aliases and merge keys expand to (`MAX_*` below),
and only YAML's own tags are read: nothing in a file can crash, hang or exhaust the
process that reads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from monitor.core.errors import ConfigError, ConfigIssue

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "Path",
    "SourceMap",
    "expand_env",
    "format_path",
    "load_yaml",
]

Path = tuple[str | int, ...]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path) -> str:
    """`("checks", 3, "expect", "status")` → `checks[3].expect.status`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            out += f"[{_short(part)}]"  # a key with spaces, line breaks or quotes
        else:
            out += f".{part}" if out else part
    return out


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_:-]{0,63}$")


@dataclass(slots=True)
class SourceMap:
    """Where each path of the document was written: 1-based (line, column)."""

    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    from_env: set[Path] = field(default_factory=set)  # values that had a `${VAR}` expanded
    env_values: set[str] = field(default_factory=set)  # what those variables held

    def locate(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The position of `path`, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if key and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return (1, 1)

    def issue(self, path: Path, message: str, *, key: bool = False) -> ConfigIssue:
        line, column = self.locate(path, key=key)
        return ConfigIssue(self.file, line, column, format_path(path), message)


def expand_env(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.

    Returns the expanded text and the names of variables that were missing with no
    default (each replaced by an empty string).
    """
    missing: list[str] = []

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _ENV.sub(replace, text), missing


# libyaml's parser when PyYAML was built with it (about 10x faster on a 10,000-check file).
# Only its events are used: the node tree is composed here, iteratively, because both
# PyYAML composers recurse (libyaml's crashes the process on 100,000 nested `[`).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_BYTES = 1024 * 1024
"""Largest config file, in UTF-8 bytes (10,000 checks take about 600 KiB)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists, aliases included (the schema needs 8)."""
MAX_NODES = 250_000
"""Most nodes (keys, values, lists, mappings) a document may have, and most values it
may produce once aliases and merge keys are expanded: an alias is counted every time
it is used, as go-yaml and Kubernetes do, so a "billion laughs" document is refused
after reading this many, not after expanding it. 10,000 checks of eight keys are
about 170,000 nodes."""
MAX_ALIAS_NODES = 100_000
"""Most of those values that may come from aliases and merge keys."""

# What YAML allows in a stream (YAML 1.1 printable set); the rest is located here
# instead of by the reader, which gives only an offset.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {
    f"{_TAG}{name}": f"!!{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
}
_SCALAR, _SEQ, _MAP = 0, 1, 2  # kinds of composed nodes (see `_compose`)
_COLLECTION_TAGS = {f"{_TAG}map": _MAP, f"{_TAG}seq": _SEQ}
_MERGE = f"{_TAG}merge"
_STR = f"{_TAG}str"
_INT64 = 2**63


class _Refused(Exception):
    """Ends reading a document: one located issue, nothing else can be checked."""

    def __init__(self, issue: ConfigIssue) -> None:
        self.issue = issue


def load_yaml(
    text: str, file: str, env: Mapping[str, str]
) -> tuple[Any, SourceMap, list[ConfigIssue]]:
    """Parses one YAML document into dicts, lists and scalars.

    Returns the data, where each part was written, and the issues found on the way
    (duplicate keys, missing environment variables, values that are not plain data),
    so the caller can report them together with its own.

    Raises:
        ConfigError: when the document cannot be read at all (syntax, size, nesting,
            alias expansion); the single issue says where.
    """
    source = SourceMap(file)
    try:
        _precheck(text, file)
        loader = _Loader(text)
        try:
            root = _compose(loader, file)
            issues: list[ConfigIssue] = []
            data = {} if root is None else _Builder(loader, source, env, issues).build(root, ())
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ConfigError([exc.issue]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([ConfigIssue(file, line, col, "", f"YAML syntax: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "", f"YAML: {exc}")]) from None
    return data, source, issues


def _precheck(text: str, file: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise _Refused(
            ConfigIssue(
                file, 1, 1, "", f"the file is {size:,} bytes; at most {MAX_BYTES:,} are read"
            )
        )
    if m := _NOT_PRINTABLE.search(text):
        line = text.count("\n", 0, m.start()) + 1
        column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        raise _Refused(
            ConfigIssue(
                file, line, column, "",
                f"YAML syntax: character U+{ord(m.group()):04X} is not allowed in YAML",
            )
        )  # fmt: skip


def _at(file: str, mark: Any, message: str) -> _Refused:
    return _Refused(ConfigIssue(file, mark.line + 1, mark.column + 1, "", message))


# A composed node is a plain tuple, (kind, line, column, tag, value), 1-based positions:
# a scalar's value is its text, a sequence's a list of nodes, a mapping's a list of
# (key, value) node pairs. Lighter than PyYAML's node objects and their marks: a 1 MiB
# document of short scalars stays within tens of megabytes.
_Node = tuple[Any, ...]


def _compose(loader: Any, file: str) -> _Node | None:
    """The node tree of the stream's single document, built from parser events without
    recursion. Aliases share the node they name, as in PyYAML's own composer."""
    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        return None
    loader.get_event()  # DocumentStartEvent
    anchors: dict[str, _Node] = {}
    # Collections being filled, each with the key node waiting for its value (mappings).
    stack: list[tuple[_Node, list[_Node]]] = []
    get_event, resolve = loader.get_event, loader.resolve
    count = 0
    while True:
        event: Any = get_event()
        cls = type(event)
        node: _Node
        count += 1
        if count > MAX_NODES:
            raise _at(file, event.start_mark, f"the document has more than {MAX_NODES:,} nodes")
        if cls is yaml.ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":
                implicit = event.implicit
                tag = resolve(ScalarNode, event.value, implicit) if implicit[0] else _STR
            mark = event.start_mark
            node = (_SCALAR, mark.line + 1, mark.column + 1, tag, event.value)
            if event.anchor is not None:
                anchors[event.anchor] = node
        elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
            node = stack.pop()[0]
        elif cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise _at(file, event.start_mark, f"nested deeper than {MAX_DEPTH} levels")
            seq = cls is yaml.SequenceStartEvent
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(SequenceNode if seq else MappingNode, None, event.implicit)
            mark = event.start_mark
            node = (_SEQ if seq else _MAP, mark.line + 1, mark.column + 1, tag, [])
            if event.anchor is not None:
                anchors[event.anchor] = node
            stack.append((node, []))
            continue
        elif cls is yaml.AliasEvent:
            if event.anchor not in anchors:
                raise _at(file, event.start_mark, f"YAML syntax: unknown alias *{event.anchor}")
            node = anchors[event.anchor]
        else:  # pragma: no cover - the parser emits nothing else inside a document
            raise _at(file, event.start_mark, f"YAML syntax: unexpected {cls.__name__}")
        if not stack:
            root = node
            break
        parent, pending = stack[-1]
        if parent[0] == _SEQ:
            parent[4].append(node)
        elif pending:
            parent[4].append((pending.pop(), node))
        else:
            pending.append(node)
    loader.get_event()  # DocumentEndEvent
    if not loader.check_event(yaml.StreamEndEvent):
        event = loader.peek_event()
        raise _at(file, event.start_mark, "YAML syntax: expected one document, found another")
    return root


class _Builder:
    """Walks the composed node tree, recording positions and expanding env references.

    Every value it produces is counted, aliases each time they are used, and the walk
    stops past `MAX_NODES`, `MAX_ALIAS_NODES` or `MAX_DEPTH`: a document that expands
    beyond them is refused before it can take the time or memory.
    """

    def __init__(
        self,
        loader: yaml.SafeLoader,
        source: SourceMap,
        env: Mapping[str, str],
        issues: list[ConfigIssue],
    ) -> None:
        self.loader = loader
        self.source = source
        self.env = env
        self.issues = issues
        self.active: set[int] = set()  # nodes on the current path: catches recursive aliases
        self.seen: set[int] = set()  # nodes built once: a second use is an alias
        self.nodes = 0
        self.aliased = 0
        self.alias_depth = 0  # > 0 while building what an alias or merge key refers to

    def build(self, node: _Node, path: Path, depth: int = 0) -> Any:
        kind, line, column, tag, value = node
        self.source.values[path] = (line, column)
        if kind == _SCALAR:  # most values: no recursion to watch for
            self._count(path, depth)
            if tag != _STR or "$" in value:
                return self._scalar(node, path)
            return value
        if id(node) in self.active:
            self.issues.append(self.source.issue(path, "recursive YAML alias"))
            return None
        again = id(node) in self.seen
        self.seen.add(id(node))
        self.alias_depth += again
        self.active.add(id(node))
        try:
            self._count(path, depth)
            if _COLLECTION_TAGS.get(tag) != kind:
                self.issues.append(self.source.issue(path, _tag_message(tag)))
                return None
            if kind == _MAP:
                return self._mapping(value, path, depth)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(value)]
        finally:
            self.active.discard(id(node))
            self.alias_depth -= again

    def _count(self, path: Path, depth: int) -> None:
        self.nodes += 1
        if self.alias_depth:
            self.aliased += 1
        if depth <= MAX_DEPTH and self.aliased <= MAX_ALIAS_NODES and self.nodes <= MAX_NODES:
            return
        if depth > MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"
        elif self.aliased > MAX_ALIAS_NODES:
            problem = f"aliases and merge keys expand to more than {MAX_ALIAS_NODES:,} values"
        else:
            problem = f"the document has more than {MAX_NODES:,} values"
        raise _Refused(self.source.issue(path, problem))

    def _mapping(self, pairs: list[tuple[_Node, _Node]], path: Path, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in pairs:
            kind, line, column, tag, text = key_node
            if tag == _MERGE:
                self._merge(value_node, path, depth, merged)
                continue
            if kind != _SCALAR or tag not in _SCALAR_TAGS:
                self.issues.append(self.source.issue(path, "mapping keys must be plain scalars"))
                continue
            key = text if tag == _STR else self._construct(key_node, path)
            if key is _INVALID:
                continue
            child = (*path, key if isinstance(key, str | int) else str(key))
            if key in out:
                self.issues.append(
                    ConfigIssue(self.source.file, line, column, format_path(child),
                                f"duplicate key {_short(key)}")
                )  # fmt: skip
                continue
            self.source.keys[child] = (line, column)
            out[key] = self.build(value_node, child, depth + 1)
        # Keys written in the mapping win over merged ones; of merged mappings the first wins.
        return {**{k: v for k, v in merged.items() if k not in out}, **out}

    def _merge(self, value: _Node, path: Path, depth: int, into: dict[Any, Any]) -> None:
        """`<<: *anchor` or `<<: [*a, *b]`: the mappings' keys, unless already there."""
        sources = value[4] if value[0] == _SEQ else [value]
        for source in sources:
            if source[0] != _MAP:
                self.issues.append(
                    self.source.issue(
                        path, "a merge key (<<) takes a mapping or a list of mappings"
                    )
                )
                continue
            written = self.source.values[path]
            self.alias_depth += 1
            try:
                built = self.build(source, path, depth)
            finally:
                self.alias_depth -= 1
                self.source.values[path] = written  # the mapping stays where it is written
            for k, v in (built or {}).items():
                into.setdefault(k, v)

    def _construct(self, node: _Node, path: Path) -> Any:
        """A scalar as Python: only YAML's own scalar types, each checked to fit."""
        _, _, _, tag, text = node
        if tag not in _SCALAR_TAGS:
            self.issues.append(self.source.issue(path, _tag_message(tag)))
            return _INVALID
        try:
            value = self.loader.yaml_constructors[tag](self.loader, ScalarNode(tag, text))
        except Exception:  # noqa: BLE001 - any constructor failure is the document's
            what = _SCALAR_TAGS[tag]
            if what == "!!int" and sum(c.isdigit() for c in text) > 18:
                message = "integer out of range (64 bits at most)"  # Python refuses > 4,300 digits
            else:
                message = f"{_short(text)} is not a valid {what}"
            self.issues.append(self.source.issue(path, message))
            return _INVALID
        if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
            self.issues.append(self.source.issue(path, "integer out of range (64 bits at most)"))
            return _INVALID
        if isinstance(value, float) and not math.isfinite(value):
            self.issues.append(self.source.issue(path, "numbers must be finite"))
            return _INVALID
        return value

    def _scalar(self, node: _Node, path: Path) -> Any:
        value = self._construct(node, path)
        if value is _INVALID:
            return None
        if isinstance(value, str) and "$" in value:
            if "${" in value:
                self.source.from_env.add(path)
                for m in _ENV.finditer(value):
                    if m.group(1) in self.env:
                        self.source.env_values.add(self.env[m.group(1)])
            value, missing = expand_env(value, self.env)
            for name in missing:
                self.issues.append(
                    self.source.issue(
                        path,
                        f"environment variable {name} is not set "
                        f"(set it, or give a default: ${{{name}:-value}})",
                    )
                )
        return value


_INVALID: Any = object()


def _tag_message(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
    allowed = ", ".join([*_SCALAR_TAGS.values(), "!!map", "!!seq"])
    return f"tag {_short(shown)} is not allowed here (allowed: {allowed})"


def _short(value: object, limit: int = 40) -> str:
    """`repr` of a value, cut to `limit` characters: messages stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
