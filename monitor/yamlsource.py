"""YAML to plain Python values, remembering where every key and value came from.

`load_yaml` is pure: text in, data and a `SourceMap` out. Environment references
(`${VAR}`, `${VAR:-default}`, `$$` for a literal `$`) are expanded in string values
only, after parsing, so a reference in a comment is never evaluated and every error
still points at the line it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from monitor.errors import ConfigError, ConfigIssue

__all__ = ["Path", "SourceMap", "expand_env", "format_path", "load_yaml"]

Path = tuple[str | int, ...]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path) -> str:
    """`("checks", 3, "expect", "status")` → `checks[3].expect.status`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(slots=True)
class SourceMap:
    """Where each path of the document was written: 1-based (line, column)."""

    file: str
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

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


# libyaml's parser when PyYAML was built with it (about 10x faster on a 10,000-check file);
# its nodes carry the same marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(
    text: str, file: str, env: Mapping[str, str]
) -> tuple[Any, SourceMap, list[ConfigIssue]]:
    """Parses one YAML document into dicts, lists and scalars.

    Returns the data, where each part was written, and the issues found on the way
    (duplicate keys, missing environment variables), so the caller can report them
    together with its own.

    Raises:
        ConfigError: on a YAML syntax error, where nothing else can be checked.
    """
    source = SourceMap(file)
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            problem = exc.problem or exc.context or "invalid YAML"
            raise ConfigError(
                [ConfigIssue(file, line, col, "", f"YAML syntax: {problem}")]
            ) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigIssue(file, 1, 1, "", f"YAML: {exc}")]) from exc
        issues: list[ConfigIssue] = []
        data = {} if root is None else _Builder(loader, source, env, issues).build(root, ())
    finally:
        loader.dispose()
    return data, source, issues


class _Builder:
    """Walks the composed node tree, recording positions and expanding env references."""

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

    def build(self, node: Node, path: Path) -> Any:
        self.source.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self.active:
            self.issues.append(self.source.issue(path, "recursive YAML alias"))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if not isinstance(node, ScalarNode):
                raise TypeError(f"unexpected YAML node {node!r}")
            return self._scalar(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[Any, Any]:
        own = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        out: dict[Any, Any] = {}
        written: set[Any] = set()  # keys written in this mapping, not merged in
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                self.issues.append(self.source.issue(path, "mapping keys must be plain scalars"))
                continue
            child = (*path, key if isinstance(key, str | int) else str(key))
            if id(key_node) not in own:
                if key in out:
                    continue  # merged values never override: the first source wins
            elif key in written:
                mark = key_node.start_mark
                self.issues.append(
                    ConfigIssue(self.source.file, mark.line + 1, mark.column + 1,
                                format_path(child), f"duplicate key {key!r}")
                )  # fmt: skip
                continue
            else:
                written.add(key)
            self.source.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
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
