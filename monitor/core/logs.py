"""Logging setup: structlog to stdout (or another stream), JSON when it is not a terminal.

Every line passes through `monitor.core.redact` after exceptions are rendered, so URLs,
secret-named values and the config's secrets are masked in messages, fields and
tracebacks alike. Tracebacks never carry frame locals (structlog's `dict_tracebacks`
shows them by default; a local may hold a token).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from monitor.core.redact import redact

__all__ = ["configure_logging"]


class _Stream:
    """Where log lines go now. Loggers are cached on first use, so they hold this object
    (and the processor list below), which `configure_logging` repoints in place."""

    def __init__(self) -> None:
        self.target: TextIO = sys.stdout

    def write(self, text: str) -> int:
        # A log line must never take the daemon down: a closed target falls back to
        # stdout, a broken one loses the line.
        try:
            return self.target.write(text)
        except ValueError:
            self.target = sys.stdout
        try:
            return self.target.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.target.flush()


_STREAM = _Stream()
_PROCESSORS: list[structlog.typing.Processor] = []


def _redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = redact(event)
    return cleaned


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Configures structlog and routes stdlib loggers (aiohttp, asyncio) through it."""
    out = sys.stdout if stream is None else stream
    if json is None:
        json = not out.isatty()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    exceptions: structlog.typing.Processor = (
        structlog.processors.ExceptionRenderer(
            ExceptionDictTransformer(show_locals=False, max_frames=20)
        )
        if json
        else structlog.processors.format_exc_info
    )
    tail: list[structlog.typing.Processor] = [exceptions, _redact_event, renderer]
    _STREAM.target = out
    _PROCESSORS[:] = [*shared, *tail]
    structlog.configure(
        processors=_PROCESSORS,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(_STREAM),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # urllib3 (under PyGithub) warns on every retry it makes; the check's own result says
    # what finally happened, once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
