"""`kind: http`: a URL answers with the expected status, body and latency.

Redirects are followed by default and the chain is recorded; assertions run on the
final response. The body is read up to `max_body` and never further.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator
from yarl import URL

from monitor.checks.base import Check, CheckContext, LastGood, classify_exception, pick, when
from monitor.checks.http.httpclient import PhaseTimer, default_user_agent
from monitor.checks.http.probe import (
    ProbeError,
    Prober,
    ProbeResponse,
    check_headers,
    unverified_context,
)
from monitor.core import jsonbody
from monitor.core.configtypes import (
    ByteSize,
    CheckConfigBase,
    PositiveDuration,
    StrictModel,
    compile_regex,
)
from monitor.core.model import FailureKind, Observation, Outcome

__all__ = [
    "HttpCheck",
    "HttpCheckConfig",
    "HttpExpect",
    "HttpRecord",
    "JsonAssertion",
    "parse_json_path",
]

_STATUS_CLASS = re.compile(r"^[1-5]xx$")


def _status_spec(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if _STATUS_CLASS.match(text):
            return text
        if text.isdigit() and 100 <= int(text) <= 599:
            return int(text)
    raise ValueError(f"expected a status code (100-599) or a class such as 2xx, got {value!r}")


StatusSpec = Annotated[
    int | str,
    BeforeValidator(_status_spec),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^[1-5]xx$"},
            ]
        }
    ),
]

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """`status.indicator`, `items[0].name`, `$.a.b` → keys and indices."""
    text = path.removeprefix("$").removeprefix(".")
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "." and parts:
            pos += 1
        m = _PATH_PART.match(text, pos)
        if not m:
            raise ValueError(f"invalid JSON path {path!r}: use a.b[0].c")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts:
        raise ValueError(f"invalid JSON path {path!r}: empty")
    return tuple(parts)


class JsonAssertion(StrictModel):
    """An assertion on one value of a JSON body: equality, comparison or presence."""

    path: str = Field(description="Dotted path with [n] indices, e.g. status.indicator")
    equals: Any = None
    not_equals: Any = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    exists: bool | None = None

    @field_validator("path")
    @classmethod
    def _path_ok(cls, value: str) -> str:
        parse_json_path(value)
        return value

    @model_validator(mode="after")
    def _one_test(self) -> JsonAssertion:
        if not self.model_fields_set - {"path"}:
            raise ValueError("give a test: equals, not_equals, gt, ge, lt, le or exists")
        return self


class HttpExpect(StrictModel):
    """What the final response must look like."""

    status: list[StatusSpec] = Field(default_factory=lambda: list[int | str](["2xx"]), min_length=1)
    final_url: str | None = Field(default=None, description="Exact URL after redirects.")
    body_contains: list[str] = Field(default_factory=list)
    body_not_contains: list[str] = Field(default_factory=list)
    body_regex: list[str] = Field(default_factory=list)
    json_: list[JsonAssertion] = Field(default_factory=list, alias="json")

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @field_validator("body_regex")
    @classmethod
    def _regex_ok(cls, values: list[str]) -> list[str]:
        for value in values:
            compile_regex(value)
        return values


class HttpRecord(StrictModel):
    """A value read from every good response (a deployed version, a build id) and kept as
    the last known good. Exactly one of `header`, `json`, `regex` (its first group, or
    the whole match)."""

    header: str | None = Field(default=None, min_length=1)
    json_: str | None = Field(default=None, alias="json", description="e.g. build.version")
    regex: str | None = None

    model_config = StrictModel.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _exactly_one(self) -> HttpRecord:
        given = [k for k in ("header", "json_", "regex") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of header, json, regex")
        if self.json_ is not None:
            parse_json_path(self.json_)
        if self.regex is not None:
            compile_regex(self.regex)
        return self

    @property
    def source(self) -> str:
        if self.header is not None:
            return f"header {self.header}"
        if self.json_ is not None:
            return f"JSON {self.json_}"
        return f"body /{self.regex}/"


class HttpCheckConfig(CheckConfigBase):
    """An HTTP(S) endpoint."""

    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://[^\s/$.?#][^\s]*$")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers_ok(cls, value: dict[str, str]) -> dict[str, str]:
        check_headers(value)
        return value

    body: str | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=50)
    tls_verify: bool = True
    tls_ca_file: str | None = Field(default=None, description="PEM bundle of trusted CAs.")

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file_loads(cls, value: str | None) -> str | None:
        # Loaded now, so that a missing or broken bundle is a located config error
        # instead of a check that cannot be built when the daemon starts or reloads.
        if value is not None:
            try:
                _ssl_context(value)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise ValueError(f"cannot load the CA bundle: {reason}") from None
        return value

    tls_min_days: int | None = Field(
        default=None, ge=0, description="Degraded when the certificate expires sooner."
    )
    max_latency: PositiveDuration | None = Field(
        default=None, description="Degraded (slow) when the whole request takes longer."
    )
    max_body: ByteSize = Field(default=1024 * 1024, description="Bytes of body read at most.")
    expect: HttpExpect = Field(default_factory=HttpExpect)
    record: HttpRecord | None = Field(
        default=None, description="A value kept from good responses (last known good)."
    )


@cache
def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """One context per CA bundle, shared by every check that names it."""
    return ssl.create_default_context(cafile=ca_file)


class HttpCheck(Check[HttpCheckConfig]):
    """Requests the URL once per run and judges the final response."""

    Config = HttpCheckConfig
    bounds_itself = True  # `run()` is one asyncio.timeout(timeout) around the request

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        return pick(details, "status", "final_url", "recorded", "recorded_from")

    @classmethod
    def good_text(cls, good: LastGood, failing: Mapping[str, Any]) -> str:
        v = good.values
        status = f"HTTP {v['status']}" if v.get("status") else "a good response"
        recorded = (
            f", {v['recorded_from']} was {v['recorded']!r}"
            if v.get("recorded") is not None and v.get("recorded_from")
            else ""
        )
        return f"last good response: {status} at {when(good.at)}{recorded}"

    def __init__(self, config: HttpCheckConfig, ctx: CheckContext) -> None:
        super().__init__(config, ctx)
        self._url = URL(config.url)
        self._timeout_s = config.timeout_s
        self._prober = Prober(
            self._url,
            method=config.method,
            headers=config.headers,
            body=config.body.encode() if config.body is not None else None,
            user_agent=ctx.session.headers.get("User-Agent") or default_user_agent(),
            tls=_ssl_context(config.tls_ca_file) if config.tls_verify else unverified_context(),
            follow_redirects=config.follow_redirects,
            max_redirects=config.max_redirects,
            max_body=config.max_body,
            record_header=config.record.header if config.record is not None else None,
        )
        expect = config.expect
        self._codes = frozenset(s for s in expect.status if isinstance(s, int))
        self._classes = frozenset(int(s[0]) for s in expect.status if isinstance(s, str))
        self._status_text = " or ".join(str(s) for s in expect.status)
        self._regexes = tuple(re.compile(r) for r in expect.body_regex)
        self._json = tuple((parse_json_path(a.path), a) for a in expect.json_)
        self._needs_text = bool(
            expect.body_contains or expect.body_not_contains or self._regexes or self._json
        )
        self._max_latency_s = config.max_latency.total_seconds() if config.max_latency else None
        record = config.record
        self._record_header = record.header if record is not None else None
        self._record_json = (
            parse_json_path(record.json_) if record is not None and record.json_ else None
        )
        self._record_regex = (
            re.compile(record.regex) if record is not None and record.regex else None
        )

    @property
    def target(self) -> str:
        return self._url.host or self.config.url

    async def run(self) -> Observation:
        timer = PhaseTimer()
        # The latency judged against `max_latency` is clock time: the injected clock's.
        started = self.ctx.clock.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                with timer:
                    response = await self._request(timer)
        except TimeoutError:
            return self._timed_out(timer)
        except ProbeError as exc:
            return Observation(
                Outcome.DOWN, exc.failure, exc.message, {"url": self.config.url}, timer.as_dict()
            )
        except (OSError, ValueError) as exc:
            failure, message = classify_exception(exc)
            return Observation(
                Outcome.DOWN, failure, message, {"url": self.config.url}, timer.as_dict()
            )
        elapsed = self.ctx.clock.monotonic() - started
        return self._judge(response, elapsed, timer)

    async def _request(self, timer: PhaseTimer) -> ProbeResponse:
        return await self._prober.fetch(timer)

    def _timed_out(self, timer: PhaseTimer) -> Observation:
        message = f"no complete response within {self._timeout_s:g}s (timed out {timer.stage})"
        return Observation(
            Outcome.DOWN, FailureKind.TIMEOUT, message, {"url": self.config.url}, timer.as_dict()
        )

    def _judge(self, r: ProbeResponse, elapsed: float, timer: PhaseTimer) -> Observation:
        details: dict[str, Any] = {"url": self.config.url, "status": r.status, "final_url": r.url}
        if r.chain:
            details["redirects"] = [{"status": s, "url": u} for s, u in r.chain]
        if r.truncated:
            details["body_truncated_at"] = len(r.body)
        if r.not_after is not None:
            details["tls_not_after"] = r.not_after
        phases = timer.as_dict()

        failure = self._assert(r)
        if failure is not None:
            return Observation(Outcome.DOWN, failure[0], failure[1], details, phases)
        if self.config.record is not None:
            recorded = self._recorded(r)
            if recorded is not None:
                details["recorded"] = recorded
                details["recorded_from"] = self.config.record.source
        expect_days = self.config.tls_min_days
        if expect_days is not None and r.not_after is not None:
            left = r.not_after - self.ctx.clock.now()
            if left < timedelta(days=expect_days):
                message = (
                    f"TLS certificate expires {r.not_after:%Y-%m-%d %H:%M}Z, "
                    f"under tls_min_days {expect_days}"
                )
                details = {**details, "tls_days_left": left.days}
                return Observation(
                    Outcome.DEGRADED, FailureKind.TLS_EXPIRING, message, details, phases
                )
        if self._max_latency_s is not None and elapsed > self._max_latency_s:
            message = f"slower than max_latency {self._max_latency_s:g}s"
            details = {**details, "elapsed_s": round(elapsed, 3)}
            return Observation(Outcome.DEGRADED, FailureKind.SLOW, message, details, phases)
        return Observation(
            Outcome.UP, None, f"{r.status} {r.reason} in {elapsed * 1000:.0f} ms", details, phases
        )

    def _recorded(self, r: ProbeResponse) -> str | None:
        """The `record` value of a response that passed its assertions, if present."""
        if self._record_header is not None:
            return r.header
        text = r.body.decode(r.charset or "utf-8", errors="replace")
        if self._record_regex is not None:
            m = self._record_regex.search(text)
            if m is None:
                return None
            found = m.group(1) if m.groups() and m.group(1) is not None else m.group(0)
            return found[:200]
        try:
            value = _lookup(jsonbody.loads(text), self._record_json or ())
        except ValueError:
            return None
        if value is _MISSING or isinstance(value, dict | list):
            return None
        return str(value)[:200]

    def _assert(self, r: ProbeResponse) -> tuple[FailureKind, str] | None:
        if r.status not in self._codes and r.status // 100 not in self._classes:
            got = f"{r.status} {r.reason}".strip()
            if r.location and not self.config.follow_redirects:
                got += f" → {r.location}"
            return FailureKind.HTTP_STATUS, f"expected status {self._status_text}, got {got}"
        expect = self.config.expect
        if expect.final_url is not None and r.url != expect.final_url:
            return FailureKind.CONTENT, f"expected to end at {expect.final_url}, ended at {r.url}"
        if not self._needs_text:
            return None
        text = r.body.decode(r.charset or "utf-8", errors="replace")
        scope = f"the first {len(r.body):,} bytes" if r.truncated else f"{len(r.body):,} bytes"
        for needle in expect.body_contains:
            if needle not in text:
                return (
                    FailureKind.CONTENT,
                    f"expected body to contain {needle!r}, not found in {scope}",
                )
        for needle in expect.body_not_contains:
            if needle in text:
                return FailureKind.CONTENT, f"body contains {needle!r}, which must not appear"
        for regex in self._regexes:
            if not regex.search(text):
                return (
                    FailureKind.CONTENT,
                    f"expected body to match /{regex.pattern}/, no match in {scope}",
                )
        if self._json:
            return _check_json(text, self._json)
        return None


_MISSING = object()


def _check_json(
    text: str, tests: tuple[tuple[tuple[str | int, ...], JsonAssertion], ...]
) -> tuple[FailureKind, str] | None:
    try:
        doc = jsonbody.loads(text)
    except ValueError as exc:
        return FailureKind.CONTENT, f"expected a JSON body, could not parse it: {exc}"
    for path, test in tests:
        value = _lookup(doc, path)
        fields = test.model_fields_set
        if test.exists is not None and (value is not _MISSING) != test.exists:
            state = "absent" if test.exists else "present"
            return (
                FailureKind.CONTENT,
                f"expected {test.path} to {'exist' if test.exists else 'be absent'}, it is {state}",
            )
        if value is _MISSING:
            if fields - {"path", "exists"}:
                return FailureKind.CONTENT, f"expected {test.path} in the JSON body, it is absent"
            continue
        if "equals" in fields and value != test.equals:
            return FailureKind.CONTENT, f"expected {test.path} == {test.equals!r}, got {value!r}"
        if "not_equals" in fields and value == test.not_equals:
            return (
                FailureKind.CONTENT,
                f"expected {test.path} != {test.not_equals!r}, got {value!r}",
            )
        for op in ("gt", "ge", "lt", "le"):
            bound = getattr(test, op)
            if bound is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return FailureKind.CONTENT, f"expected {test.path} to be a number, got {value!r}"
            if not _COMPARE[op](value, bound):
                return (
                    FailureKind.CONTENT,
                    f"expected {test.path} {_SYMBOL[op]} {bound:g}, got {value!r}",
                )
    return None


_COMPARE = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_SYMBOL = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _lookup(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(doc, dict):
            if not isinstance(part, str) or part not in doc:
                return _MISSING
            doc = doc[part]
        elif isinstance(doc, list) and isinstance(part, int) and -len(doc) <= part < len(doc):
            doc = doc[part]
        else:
            return _MISSING
    return doc
