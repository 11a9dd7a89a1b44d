"""Building blocks of the config models: durations, sizes and the fields every check has.

They live apart from `config.py` so that check modules can import them without an
import cycle (config imports the check registry, checks import these).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

__all__ = [
    "ByteSize",
    "CheckConfigBase",
    "Defaults",
    "Duration",
    "HeaderMap",
    "PositiveDuration",
    "SloConfig",
    "StrictModel",
    "check_headers",
    "clip_repr",
    "compile_regex",
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
    if len(text) > 64 or not _DURATION.match(text):
        raise ValueError(
            f"invalid duration {clip_repr(value)}: use a number and a unit (ms, s, m, h, d, w), "
            "e.g. 30s, 5m, 1h30m, 2d"
        )
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if not seconds <= MAX_DURATION_S:
        raise ValueError(f"duration {clip_repr(value)} is too long: at most 3650d (ten years)")
    return timedelta(seconds=seconds)


MAX_DURATION_S = 3650 * 86400.0
"""Longest duration any setting takes: ten years, far inside what timedelta holds."""


def clip_repr(value: object, limit: int = 40) -> str:
    """`repr(value)` cut to `limit` characters with an ellipsis: messages stay one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


_SIZE = re.compile(r"^(\d{1,15})\s*(B|KB|KiB|MB|MiB|GB|GiB)?$")
MAX_BYTE_SIZE = 1024**3
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
    raise ValueError(
        f"invalid size {clip_repr(value)}: use bytes or a unit, e.g. 65536, 512KiB, 1MiB"
    )


MAX_REGEX_LENGTH = 1000
MAX_REGEX_REPEAT = 1000
MAX_REGEX_NESTING = 20
_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compiles a regular expression from config, within limits the `re` module lacks.

    Counted repetition is bounded (`a{4294967296}` raises OverflowError in `re`, and
    large counts make matching slow), so are the length and the nesting of groups
    (thousands of them raise RecursionError). Every refusal is a ValueError that
    says which limit.
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(
            f"regular expression of {len(pattern):,} characters; at most {MAX_REGEX_LENGTH:,}"
        )
    for m in _REPEAT.finditer(pattern):
        counts = [int(g) if len(g) < 10 else MAX_REGEX_REPEAT + 1 for g in m.groups() if g]
        if max(counts) > MAX_REGEX_REPEAT:
            raise ValueError(
                f"repetition {m.group()} in a regular expression: counts go up to "
                f"{MAX_REGEX_REPEAT}"
            )
    if _group_depth(pattern) > MAX_REGEX_NESTING:
        raise ValueError(f"regular expression nests groups deeper than {MAX_REGEX_NESTING}")
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError, MemoryError, ValueError) as exc:
        raise ValueError(f"invalid regular expression {clip_repr(pattern)}: {exc}") from None


def _group_depth(pattern: str) -> int:
    """How deep `(` groups nest, skipping escapes and character classes."""
    depth = deepest = 0
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1  # `[]...]`: a leading `]` is part of the class
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
        i += 1
    return deepest


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """HTTP header names must be tokens and values one line of at most 8 KiB: a line
    break could never be sent (and would split the request). Values are not echoed:
    headers carry credentials."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"header name {clip_repr(name)} is not a valid HTTP header name")
        if len(value) > 8192 or any(c in value for c in "\r\n\x00"):
            raise ValueError(
                f"the value of header {name} must be one line without NUL, at most 8 KiB"
            )
    return headers


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
    Field(gt=0, le=MAX_BYTE_SIZE),
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


HeaderMap = Annotated[dict[str, str], AfterValidator(check_headers)]


class StrictModel(BaseModel):
    """Config models refuse unknown keys and are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


MAX_CONFIRM = 5  # `confirm:` at most: this replica and four others


class Defaults(StrictModel):
    """Values every check inherits unless it sets its own."""

    interval: PositiveDuration = timedelta(minutes=1)
    timeout: PositiveDuration = timedelta(seconds=10)
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay: Duration = timedelta(seconds=1)
    failure_threshold: int = Field(default=2, ge=1, le=1000)
    success_threshold: int = Field(default=2, ge=1, le=1000)
    confirm: int = Field(
        default=1,
        ge=1,
        le=MAX_CONFIRM,
        description="Replicas in all (this one included) that must see a check fail before"
        " it goes down; 1: this one alone.",
    )


MAX_SLO_WINDOW = timedelta(days=90)  # hour rollups are kept 90 days
MIN_SLO_WINDOW = timedelta(hours=1)


def parse_target(value: object) -> float:
    """An SLO target as a ratio: `99.9%` (a string with a percent sign) or `0.999`. A bare
    number above 1 is refused: `99.9` without `%` is a likely slip, not a ratio."""
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(
                f"invalid target {clip_repr(value)}: write a percentage (99.9%) or a ratio (0.999)"
            )
        try:
            number = float(text[:-1])
        except ValueError:
            raise ValueError(
                f"invalid target {clip_repr(value)}: write a percentage (99.9%) or a ratio (0.999)"
            ) from None
        ratio = round(number / 100, 12)  # 99.9% is 0.999, not 0.9990000000000001
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = float(value)
        if ratio > 1:
            raise ValueError(
                f"target {value!r} is above 1: write {value}% for a percentage, or a ratio such as 0.999"
            )
    else:
        raise ValueError(
            f"invalid target {clip_repr(value)}: write a percentage (99.9%) or a ratio (0.999)"
        )
    if not 0 < ratio <= 1:  # also refuses NaN
        raise ValueError(f"target {clip_repr(value)} must be above 0 % and at most 100 %")
    return ratio


class SloConfig(StrictModel):
    """A service level objective (`slo:` on a check or a group): the share of runs that
    must find the asset up or degraded over a rolling window; blind runs do not count."""

    target: Annotated[
        float,
        BeforeValidator(parse_target),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?%\s*$"},
                    {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                ],
                "description": "99.9% or 0.999: above 0 %, at most 100 %.",
            }
        ),
    ]
    window: PositiveDuration = Field(
        default=timedelta(days=30), description="Rolling window, 1h to 90d (default 30d)."
    )

    @field_validator("window")
    @classmethod
    def _window_kept(cls, value: timedelta) -> timedelta:
        if not MIN_SLO_WINDOW <= value <= MAX_SLO_WINDOW:
            raise ValueError(
                f"window {format_duration(value)} is outside 1h to 90d (hour rollups are "
                "kept 90 days)"
            )
        return value

    @property
    def budget(self) -> float:
        """The error budget: the share of runs that may find the asset down."""
        return 1.0 - self.target

    def describe(self) -> str:
        return f"{self.target * 100:g}% over {format_duration(self.window)}"


class CheckConfigBase(StrictModel):
    """Fields every check kind has. A kind's config subclasses this and narrows `kind`.

    Scheduling fields left out fall back to `defaults`; `resolved()` fills them in.
    """

    name: str = Field(pattern=NAME_PATTERN, max_length=128)
    kind: str
    description: str = ""
    runbook: str | None = Field(default=None, pattern=r"^https?://\S+$")
    tags: list[str] = Field(default_factory=list)
    group: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        max_length=128,
        description="Where the check is listed on the status page; default: its first tag.",
    )
    enabled: bool = True
    interval: PositiveDuration | None = None
    timeout: PositiveDuration | None = None
    retries: int | None = Field(default=None, ge=0, le=10)
    retry_delay: Duration | None = None
    failure_threshold: int | None = Field(default=None, ge=1, le=1000)
    success_threshold: int | None = Field(default=None, ge=1, le=1000)
    confirm: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONFIRM,
        description="Replicas in all (this one included) that must see it fail before it"
        " goes down; default: defaults.confirm (1).",
    )
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
    slo: SloConfig | None = Field(
        default=None, description="A service level objective: target and window (SLOs)."
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


class GroupConfig(StrictModel):
    """What a group of checks (`group:` on a check, else its first tag) has of its own."""

    description: str = Field(default="", max_length=1000)
    slo: SloConfig | None = Field(
        default=None, description="An objective for the group's checks taken together."
    )


UNGROUPED = "other"  # the group of a check with neither `group:` nor tags


def group_of(check: CheckConfigBase) -> str:
    """The group a check is listed under: its `group:`, else its first tag, else
    `UNGROUPED`."""
    if check.group:
        return check.group
    return check.tags[0] if check.tags else UNGROUPED


def _seconds(value: timedelta | None) -> float:
    if value is None:
        raise RuntimeError("check config used before resolved(defaults)")
    return value.total_seconds()
