"""Errors the monitor raises on purpose.

Expected probe failures are never exceptions: they are `CheckResult` values. What is
left is raised as one of::

    MonitorError
    └── ConfigError          the config file cannot be used; carries every issue found
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigIssue", "MonitorError"]


class MonitorError(Exception):
    """Base of every error the monitor raises deliberately."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(MonitorError):
    """Raised when a config file is invalid; `issues` lists every problem, not the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
