"""Building blocks of the config models: durations, sizes and the fields every check has.

They live apart from `config.py` so that check modules can import them without an
import cycle (config imports the check registry, checks import these).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

__all__ = [
    "ByteSize",
    "CheckConfigBase",
    "Defaults",
    "Duration",
    "PositiveDuration",
    "StrictModel",
    "format_duration",
    "parse_byte_size",
    "parse_duration",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
DURATION_PATTERN = _DURATION.pattern


def parse_duration(value: object) -> timedelta:
    """Parses `30s`, `5m`, `1h30m`, `2d`, `250ms`, `1w` into a timedelta.

    A bare number is refused: `30` could mean seconds or minutes, so the unit is required.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"expected a duration with a unit such as 30s, 5m, 1h30m or 2d, got {value!r}"
        )
    text = value.strip()
    if not _DURATION.match(text):
        raise ValueError(
            f"invalid duration {value!r}: use a number and a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 5m, 1h30m, 2d"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Formats a timedelta the way config writes it: `90s` → `1m30s`."""
    total_ms = round(delta.total_seconds() * 1000)
    if total_ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        n, total_ms = divmod(total_ms, size)
        if n:
            parts.append(f"{n}{unit}")
    if total_ms:
        parts.append(f"{total_ms}ms")
    return "".join(parts)


_SIZE = re.compile(r"^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$")
_SIZE_UNITS = {
    None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2,
    "GB": 1000**3, "GiB": 1024**3,
}  # fmt: skip


def parse_byte_size(value: object) -> int:
    """Parses a byte count: an integer, or `512KiB`, `1MiB`, `10MB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _SIZE.match(value.strip())):
        return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise ValueError(f"invalid size {value!r}: use bytes or a unit, e.g. 65536, 512KiB, 1MiB")


_DURATION_SCHEMA = {
    "type": "string",
    "pattern": DURATION_PATTERN,
    "description": "A duration: a number and a unit (ms, s, m, h, d, w), e.g. 30s, 5m, 1h30m.",
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    Field(ge=timedelta(0)),
    WithJsonSchema(_DURATION_SCHEMA),
]
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    Field(gt=timedelta(0)),
    WithJsonSchema(_DURATION_SCHEMA),
]
ByteSize = Annotated[
    int,
    BeforeValidator(parse_byte_size),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": _SIZE.pattern},
            ],
            "description": "A size in bytes, or with a unit: 512KiB, 1MiB, 10MB.",
        }
    ),
]


class StrictModel(BaseModel):
    """Config models refuse unknown keys and are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class Defaults(StrictModel):
    """Values every check inherits unless it sets its own."""

    interval: PositiveDuration = timedelta(minutes=1)
    timeout: PositiveDuration = timedelta(seconds=10)
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay: Duration = timedelta(seconds=1)
    failure_threshold: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=2, ge=1)


class CheckConfigBase(StrictModel):
    """Fields every check kind has. A kind's config subclasses this and narrows `kind`.

    Scheduling fields left out fall back to `defaults`; `resolved()` fills them in.
    """

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    kind: str
    description: str = ""
    runbook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    retry_delay: Duration | None = None
    failure_threshold: int | None = Field(default=None, ge=1)
    success_threshold: int | None = Field(default=None, ge=1)
    depends_on: list[str] = Field(
        default_factory=list,
        description="Checks this one needs: while one of them is down, its incidents do not page.",
    )
    dedup_key: str | None = Field(
        default=None, description="Incidents of checks sharing a key merge; default: the name."
    )
    upstream_status: str | None = Field(
        default=None,
        description="Name of a statuspage check; this check's failures say its state.",
    )

    def resolved(self, defaults: Defaults) -> Self:
        """Returns a copy with every unset scheduling field taken from `defaults`."""
        inherited = {
            key: getattr(defaults, key)
            for key in Defaults.model_fields
            if getattr(self, key) is None
        }
        return self.model_copy(update=inherited) if inherited else self

    # Seconds, for the scheduler: valid on a resolved config, where nothing is None.
    @property
    def interval_s(self) -> float:
        return _seconds(self.interval)

    @property
    def timeout_s(self) -> float:
        return _seconds(self.timeout)

    @property
    def retry_delay_s(self) -> float:
        return _seconds(self.retry_delay)


def _seconds(value: timedelta | None) -> float:
    if value is None:
        raise RuntimeError("check config used before resolved(defaults)")
    return value.total_seconds()
