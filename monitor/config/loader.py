"""The config file: strict pydantic models, validated in one pass with every error located.

`parse_config(text, file, env)` is pure; `load_config(path)` only reads the file. A
check's config model lives beside the check (`checks/<kind>.py`); this module builds
the file model from the registry, so adding a kind never touches it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from monitor.checks import CHECKS
from monitor.config.yamlsource import MAX_BYTES, Path, SourceMap, load_yaml
from monitor.core.configtypes import (
    NAME_PATTERN,
    UNGROUPED,
    CheckConfigBase,
    Defaults,
    Duration,
    GroupConfig,
    PositiveDuration,
    StrictModel,
    clip_repr,
    format_duration,
)
from monitor.core.errors import ConfigError, ConfigIssue
from monitor.incidents.maintenance import MaintenanceWindow
from monitor.incidents.rules import SeverityRule
from monitor.notifiers import NOTIFIERS, load_plugins
from monitor.notifiers.base import NotifierConfigBase
from monitor.paging.escalation import EscalationConfig
from monitor.paging.heartbeat import HeartbeatConfig
from monitor.paging.oncall import OnCallConfig

__all__ = [
    "DaemonConfig",
    "LimitsConfig",
    "MonitorConfig",
    "RateLimit",
    "config_json_schema",
    "default_config_path",
    "load_config",
    "parse_config",
]

_NAME = re.compile(NAME_PATTERN.replace("*$", "{0,127}$"))
_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\s\[\]]+)):(?P<port>\d{1,5})$")


class DaemonConfig(StrictModel):
    """How the daemon itself runs."""

    listen: str = Field(
        default="127.0.0.1:9180",
        description="Address of the HTTP server (metrics, health): host:port or [v6]:port.",
    )
    shutdown_grace: Duration = Field(
        default=timedelta(seconds=10),
        description="On SIGTERM, how long in-flight runs may take before they are cancelled.",
    )
    user_agent: str = Field(default="", description="User-Agent of probes; empty: built in.")
    status_title: str = Field(
        default="Status",
        min_length=1,
        max_length=200,
        description="Heading of the status page (GET /).",
    )
    state_dir: str | None = Field(
        default=None,
        description="Directory of the SQLite store; default: $STATE_DIRECTORY (systemd), else ./state.",
    )
    store: SecretStr | None = Field(
        default=None,
        description=(
            "PostgreSQL store instead of SQLite: a postgresql:// URL, e.g. "
            "${MONITOR_DATABASE_URL:-} (empty: SQLite in state_dir). Never shown: it holds "
            "a password."
        ),
    )
    replica_beat: Duration = Field(
        default=timedelta(seconds=1),
        description=(
            "PostgreSQL store: how often a replica tells the database it is alive "
            "(check ownership follows the live set)."
        ),
    )
    replica_ttl: Duration = Field(
        default=timedelta(seconds=5),
        description=(
            "PostgreSQL store: a replica not heard from for this long is gone and its checks "
            "move; at least two beats. A replica that cannot beat stops running checks one "
            "beat before this runs out."
        ),
    )
    phase_histograms: bool | Literal["per_kind", "per_check"] = Field(
        default="per_kind",
        description=(
            "HTTP phase and run-duration histograms: per_kind (one per check kind), "
            "per_check (per check too: about 75 series a check), false (no phase "
            "histograms); true is per_check."
        ),
    )

    def resolved_state_dir(self, env: Mapping[str, str]) -> str:
        return self.state_dir or env.get("STATE_DIRECTORY") or "state"

    @property
    def store_dsn(self) -> str | None:
        """The PostgreSQL DSN, or None for the SQLite store."""
        dsn = self.store.get_secret_value() if self.store is not None else ""
        return dsn or None

    @field_validator("store")
    @classmethod
    def _store_ok(cls, value: SecretStr | None) -> SecretStr | None:
        dsn = value.get_secret_value() if value is not None else ""
        if dsn and not dsn.startswith(("postgresql://", "postgres://")):
            # The value itself is never repeated: it may hold a password.
            raise ValueError("expected a postgresql:// URL, or nothing for the SQLite store")
        return value

    @field_validator("replica_beat", "replica_ttl")
    @classmethod
    def _replica_time_ok(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(minutes=10):
            raise ValueError("expected a time between 100ms and 10m")
        return value

    @model_validator(mode="after")
    def _ttl_spans_beats(self) -> DaemonConfig:
        if self.replica_ttl < 2 * self.replica_beat:
            raise ValueError("replica_ttl must be at least two replica_beats")
        return self

    @field_validator("listen")
    @classmethod
    def _listen_ok(cls, value: str) -> str:
        m = _LISTEN.match(value)
        if not m or not 0 <= int(m.group("port")) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:9180, got {clip_repr(value)}")
        return value

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


def _split_listen(value: str) -> tuple[str, int]:
    m = _LISTEN.match(value)
    if m is None:
        raise ValueError(f"expected host:port such as 127.0.0.1:9180, got {clip_repr(value)}")
    return m.group("v6") or m.group("host"), int(m.group("port"))


class RateLimit(StrictModel):
    """At most `requests` requests per `per` to one upstream host."""

    host: str = Field(min_length=1)
    requests: int = Field(gt=0)
    per: PositiveDuration = timedelta(seconds=1)


class LimitsConfig(StrictModel):
    """Concurrency and request-rate bounds shared by every check."""

    max_concurrency: int = Field(default=512, ge=1, description="Runs in flight at once.")
    max_per_host: int = Field(default=8, ge=1, description="Runs in flight per target host.")
    rates: list[RateLimit] = Field(default_factory=list)
    start_rate: float = Field(
        default=100.0,
        gt=0,
        description=(
            "First runs per second at start-up: checks of longer intervals first run "
            "within max(10 s, checks / start_rate)."
        ),
    )


class ApiConfig(StrictModel):
    """The write API (ack, resolve, silences, reports): off unless a token is set."""

    token: SecretStr | None = Field(
        default=None, description="Bearer token for writes, e.g. ${MONITOR_API_TOKEN:-}."
    )

    @property
    def write_token(self) -> str | None:
        secret = self.token.get_secret_value() if self.token is not None else ""
        return secret or None


class IncidentsConfig(StrictModel):
    cooldown: Duration = Field(
        default=timedelta(minutes=30),
        description="A failure this soon after a resolve reopens the same incident.",
    )
    drill_duration: PositiveDuration = Field(
        default=timedelta(minutes=15), description="A drill resolves itself after this long."
    )


class _FileBase(StrictModel):
    defaults: Defaults = Field(default_factory=Defaults)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    severity: list[SeverityRule] = Field(
        default_factory=list, description="Ordered rules; the first that matches wins."
    )
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    oncall: OnCallConfig | None = None
    heartbeat: HeartbeatConfig = Field(default_factory=HeartbeatConfig)
    groups: dict[str, GroupConfig] = Field(
        default_factory=dict,
        description="Per group (a check's `group:`, else its first tag): what it has of its own.",
    )


@cache
def _file_model() -> type[_FileBase]:
    configs = tuple(kind.Config for kind in CHECKS.values())
    # A discriminated union over the registry, built at run time: one validation pass
    # reports every error of every check, and the JSON Schema gets a `oneOf` per kind.
    any_check = Annotated[Union[configs], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
    load_plugins()  # third-party notifier types must be known before the model is built
    channels = tuple(n.Config for n in NOTIFIERS.values())
    any_notifier = Annotated[Union[channels], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    model: type[_FileBase] = create_model(
        "MonitorsFile",
        __base__=_FileBase,
        checks=(list[any_check], Field(default_factory=list)),
        notifiers=(dict[str, any_notifier], Field(default_factory=dict)),
    )
    return model


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """A validated config: defaults are already applied to every check."""

    source: str
    defaults: Defaults
    daemon: DaemonConfig
    limits: LimitsConfig
    checks: tuple[CheckConfigBase, ...]
    api: ApiConfig = field(default_factory=ApiConfig)
    incidents: IncidentsConfig = field(default_factory=IncidentsConfig)
    severity: tuple[SeverityRule, ...] = ()
    maintenance: tuple[MaintenanceWindow, ...] = ()
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    oncall: OnCallConfig | None = None
    notifiers: dict[str, NotifierConfigBase] = field(default_factory=dict)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    # The checks that run, worked out once: asked for at every beat of a replica and by
    # every status request, and the same object for as long as this config is loaded.
    enabled_checks: tuple[CheckConfigBase, ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "enabled_checks", tuple(c for c in self.checks if c.enabled))

    def check(self, name: str) -> CheckConfigBase | None:
        return next((c for c in self.checks if c.name == name), None)

    def runbook_for(self, check: str | None, rule: str | None) -> str | None:
        """The runbook of an incident: its check's own, else its severity rule's."""
        found = self.check(check) if check else None
        if found is not None and found.runbook:
            return found.runbook
        for i, r in enumerate(self.severity):
            if rule is not None and (r.name or f"severity[{i}]") == rule:
                return r.runbook
        return None


def default_config_path(env: Mapping[str, str] | None = None) -> str:
    """`-c` wins; otherwise `MONITOR_CONFIG`, otherwise `./monitors.yaml`."""
    env = os.environ if env is None else env
    return env.get("MONITOR_CONFIG") or "monitors.yaml"


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> MonitorConfig:
    """Reads and parses a config file. Raises ConfigError, also when it cannot be read."""
    name = os.fspath(path)
    try:
        with FsPath(name).open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # a larger file is refused without reading it all
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, 1, 1, "", f"cannot read config: {exc}")]) from None
    if len(raw) > MAX_BYTES:
        message = f"the file is larger than {MAX_BYTES:,} bytes, the most a config may have"
        raise ConfigError([ConfigIssue(name, 1, 1, "", message)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"cannot read config: not UTF-8 (byte 0x{raw[exc.start]:02x})"
        raise ConfigError([ConfigIssue(name, line, column, "", message)]) from None
    return parse_config(text, name, os.environ if env is None else env)


def parse_config(text: str, file: str, env: Mapping[str, str]) -> MonitorConfig:
    """Parses and validates config text. Raises ConfigError listing every issue.

    Nothing else escapes: a fault of the validator itself (a bug, or memory or recursion
    exhausted) is still a ConfigError, reported at the file, so that neither `validate`
    nor a reload ever shows a traceback.
    """
    try:
        return _parse_config(text, file, env)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the boundary: every input gets an answer
        message = f"the config could not be validated ({type(exc).__name__}); please report this"
        raise ConfigError([ConfigIssue(file, 1, 1, "", message)]) from None


def _parse_config(text: str, file: str, env: Mapping[str, str]) -> MonitorConfig:
    data, source, issues = load_yaml(text, file, env)
    if not isinstance(data, dict):
        raise ConfigError(
            [source.issue((), "the config must be a mapping (defaults:, checks:, …)")]
        )
    issues += _cross_checks(data, source)
    if "checks" not in data:
        issues.append(
            source.issue((), "no checks defined: add a `checks:` list (an empty one runs nothing)")
        )
    try:
        parsed = _file_model().model_validate(data)
    except ValidationError as exc:
        # A missing variable already explains why its value fails validation.
        explained = {i.path for i in issues}
        issues += [i for i in _issues_from_validation(exc, data, source) if i.path not in explained]
    if issues:
        # Whatever produced a message, a value read from the environment is not in it.
        issues = [_masked(i, source.env_values) for i in issues]
        raise ConfigError(sorted(issues, key=lambda i: (i.line, i.column)))
    # Past validation the raw tree and its positions are garbage, and each check is
    # replaced by its resolved copy as it is made: a 1 MiB file's peak stays one set of
    # models, not three.
    del data, source
    return MonitorConfig(
        source=file,
        defaults=parsed.defaults,
        daemon=parsed.daemon,
        limits=parsed.limits,
        checks=_resolved(getattr(parsed, "checks", []), parsed.defaults),
        api=parsed.api,
        incidents=parsed.incidents,
        severity=tuple(parsed.severity),
        maintenance=tuple(parsed.maintenance),
        escalation=parsed.escalation,
        oncall=parsed.oncall,
        notifiers=dict(getattr(parsed, "notifiers", {})),
        heartbeat=parsed.heartbeat,
        groups=dict(parsed.groups),
    )


def _resolved(checks: list[CheckConfigBase], defaults: Defaults) -> tuple[CheckConfigBase, ...]:
    """Each check with the defaults it inherits; `checks` is emptied as it goes."""
    checks.reverse()  # popped from the end, in file order
    out = []
    while checks:
        out.append(checks.pop().resolved(defaults))
    return tuple(out)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors (yaml-language-server)."""
    schema = _file_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "monitors.yaml"
    return schema


def _cross_checks(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """What no single model sees: uniqueness across the file. Runs on the raw data, so
    these issues are reported together with the schema's."""
    issues = []
    for section, key, what in (
        ("checks", "name", "check name"),
        ("limits.rates", "host", "rate limit host"),
        ("severity", "name", "rule name"),
        ("maintenance", "name", "maintenance window name"),
    ):
        items: Any = data
        for part in section.split("."):
            items = items.get(part) if isinstance(items, dict) else None
        if not isinstance(items, list):
            continue
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            value = item.get(key) if isinstance(item, dict) else None
            if not isinstance(value, str):
                continue
            if value in seen:
                path: Path = (*section.split("."), i, key)
                first = f"{section}[{seen[value]}]"
                issues.append(
                    source.issue(
                        path, f"duplicate {what} {clip_repr(value)} (first used by {first})"
                    )
                )
            seen.setdefault(value, i)
    notifiers = data.get("notifiers")
    for name in notifiers if isinstance(notifiers, dict) else ():
        if not isinstance(name, str) or not _NAME.match(name):
            issues.append(
                source.issue(
                    ("notifiers", name if isinstance(name, str | int) else str(name)),
                    "a notifier name is letters, digits and _.:- (it goes into "
                    "Idempotency-Key headers), starting with a letter or digit, "
                    "at most 128 characters",
                    key=True,
                )
            )
    issues += _dangling(data, source)
    issues += _unused_groups(data, source)
    issues += _unknown_rule_kinds(data, source)
    issues += _escalation_refs(data, source)
    issues += _unrouted_severities(data, source)
    return issues


def _unused_groups(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """A `groups:` entry that no check falls into is a typo: its settings would apply to
    nothing."""
    groups = data.get("groups")
    checks = data.get("checks")
    if not isinstance(groups, dict) or not isinstance(checks, list):
        return []
    used: set[object] = set()
    for c in checks:
        if not isinstance(c, dict):
            continue
        tags, group = c.get("tags"), c.get("group")
        first = tags[0] if isinstance(tags, list) and tags else UNGROUPED
        name = group or first
        if isinstance(name, str):  # anything else is the schema's error, reported there
            used.add(name)
    issues = []
    for name in groups:
        if not isinstance(name, str) or not _NAME.match(name):
            issues.append(
                source.issue(
                    ("groups", str(name)),
                    "a group name is letters, digits and _.:-, starting with a letter or digit",
                    key=True,
                )
            )
        elif name not in used:
            issues.append(
                source.issue(
                    ("groups", name),
                    f"group {clip_repr(name)} has no "
                    "checks (a check is in the group of its `group:`, else "
                    "of its first tag)",
                    key=True,
                )
            )
    return issues  # fmt: skip


def _unrouted_severities(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """Once there are escalation policies, every severity the rules can yield (and P2,
    what a failure no rule matches gets) must reach one: else its incidents page nobody."""
    esc = data.get("escalation")
    policies = esc.get("policies") if isinstance(esc, dict) else None
    if not isinstance(policies, dict) or not policies:
        return []  # no paging set up: incidents are recorded and shown, nobody is paged
    named = esc.get("severities") if isinstance(esc, dict) else None
    named = named if isinstance(named, dict) else {}

    def unrouted(severity: object) -> bool:
        # A severity named in `severities` reaches its policy (or is reported missing).
        return (
            severity in ("P0", "P1", "P2") and severity not in named and "default" not in policies
        )

    why = "escalation.severities names no policy for it and there is no `default` policy"
    issues = []
    rules = data.get("severity")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        label = f"rule {rule['name']!r}" if isinstance(rule.get("name"), str) else f"severity[{i}]"
        yields: list[tuple[Path, object]] = [(("severity", i, "severity"), rule.get("severity"))]
        raises = rule.get("raise_after")
        yields += [
            (("severity", i, "raise_after", j, "severity"), step.get("severity"))
            for j, step in enumerate(raises if isinstance(raises, list) else [])
            if isinstance(step, dict)
        ]
        issues += [
            source.issue(path, f"{label} yields {level}, which reaches no escalation policy "
                               f"({why}): its incidents would page nobody")
            for path, level in yields
            if unrouted(level)
        ]  # fmt: skip
    if unrouted("P2"):
        issues.append(
            source.issue(("escalation", "policies"), "a failure no rule matches is P2, which "
                         f"reaches no escalation policy ({why}): its incidents would page nobody",
                         key=True)
        )  # fmt: skip
    return issues


def _escalation_refs(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """Escalation names notifiers and people: each must exist."""
    esc = data.get("escalation")
    if not isinstance(esc, dict):
        return []
    notifiers = data.get("notifiers")
    known = set(notifiers) if isinstance(notifiers, dict) else {"console"}
    oncall = data.get("oncall")
    people_list = oncall.get("people") if isinstance(oncall, dict) else None
    people = (
        {
            p.get("name")
            for p in people_list
            if isinstance(p, dict) and isinstance(p.get("name"), str)
        }
        if isinstance(people_list, list)
        else set()
    )
    refs: list[tuple[Path, Any, set[Any], str]] = []
    if isinstance(esc.get("channel"), str):
        refs.append((("escalation", "channel"), esc["channel"], known, "notifier"))
    page_via = esc.get("page_via")
    for j, name in enumerate(page_via if isinstance(page_via, list) else []):
        refs.append((("escalation", "page_via", j), name, known, "notifier"))
    policies = esc.get("policies")
    for pname, policy in policies.items() if isinstance(policies, dict) else []:
        steps = policy.get("steps") if isinstance(policy, dict) else None
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            if not isinstance(step, dict):
                continue
            at: Path = ("escalation", "policies", pname, "steps", i)
            if isinstance(step.get("post"), str):
                refs.append(((*at, "post"), step["post"], known, "notifier"))
            if isinstance(step.get("page"), list):
                refs += [
                    ((*at, "page", k), who, people, "person in oncall.people")
                    for k, who in enumerate(step["page"])
                ]
    return [
        source.issue(path, f"no {what} named {clip_repr(ref)}")
        for path, ref, names, what in refs
        if isinstance(ref, str) and ref not in names
    ]


def _unknown_rule_kinds(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """`severity[i].match.kinds` must name check kinds that exist (or `group`, in a rule
    on SLO burns)."""
    rules = data.get("severity")
    issues = []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        match = rule.get("match") if isinstance(rule, dict) else None
        kinds = match.get("kinds") if isinstance(match, dict) else None
        for j, kind in enumerate(kinds if isinstance(kinds, list) else []):
            if kind == "group" and isinstance(match, dict) and match.get("burn_rate"):
                continue  # a group's SLO burns as kind `group` (engine.slo)
            if isinstance(kind, str) and kind not in CHECKS:
                known = ", ".join(sorted(CHECKS))
                path: Path = ("severity", i, "match", "kinds", j)
                issues.append(
                    source.issue(path, f"unknown kind {clip_repr(kind)} (known kinds: {known})")
                )
    return issues


# (field, kind the referenced check must have); None: any kind.
_REFERENCES: tuple[tuple[str, str | None], ...] = (
    ("upstream_status", "statuspage"),
    ("depends_on", None),
)


def _dangling(data: dict[str, Any], source: SourceMap) -> list[ConfigIssue]:
    """References from one check to another must name a check of the right kind."""
    checks = data.get("checks")
    if not isinstance(checks, list):
        return []
    kinds = {
        c["name"]: c.get("kind")
        for c in checks
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    }
    issues = []
    for i, check in enumerate(checks):
        if not isinstance(check, dict):
            continue
        for key, kind in _REFERENCES:
            value = check.get(key)
            refs: list[tuple[Path, Any]] = (
                [((*("checks", i, key), j), r) for j, r in enumerate(value)]
                if isinstance(value, list)
                else [(("checks", i, key), value)]
            )
            for path, ref in refs:
                if not isinstance(ref, str):
                    continue
                if ref not in kinds:
                    issues.append(source.issue(path, f"no check named {clip_repr(ref)}"))
                elif ref == check.get("name"):
                    issues.append(source.issue(path, "a check cannot refer to itself"))
                elif kind is not None and kinds[ref] != kind:
                    issues.append(
                        source.issue(
                            path, f"{clip_repr(ref)} is a {kinds[ref]!s:.40} check, not {kind}"
                        )
                    )
    return issues


def _issues_from_validation(
    exc: ValidationError, data: dict[str, Any], source: SourceMap
) -> list[ConfigIssue]:
    issues = []
    env_values = tuple(source.env_values)
    for err in exc.errors(include_url=False):
        path = _data_path(data, err["loc"])
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            message = f"unknown key {clip_repr(path[-1])}" + _suggest(data, path)
            issues.append(source.issue(path, message, key=True))
            continue
        if kind == "missing":
            message = f"missing required key {path[-1]!r}"
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            # The discriminator: `kind` of checks, `type` of notifiers.
            tag = str(ctx.get("discriminator", "'kind'")).strip("'")
            path = (*path, tag)
            what = "notifier types" if tag == "type" else "kinds"
            known = ", ".join(sorted(NOTIFIERS if tag == "type" else CHECKS))
            if kind == "union_tag_invalid":
                message = f"unknown {tag} {clip_repr(ctx.get('tag'))} (known {what}: {known})"
            else:
                message = f"missing required key {tag!r} (one of: {known})"
        else:
            message = _TIMEDELTA.sub(_readable_timedelta, err["msg"].removeprefix("Value error, "))
            value = err.get("input")
            shown = isinstance(value, str | int | float | bool) and clip_repr(value) not in message
            if shown and not _may_be_secret(path, source) and not _USERINFO.search(str(value)):
                message += f" (got {clip_repr(value)})"
        if _may_be_secret(path, source):
            message = _without(message, err.get("input"), env_values)
        issues.append(source.issue(path, message))
    return issues


# Values under keys with these words are never repeated in an error: a mistyped webhook
# URL or token would otherwise end up in a terminal or a CI log.
_SECRET_WORDS = re.compile(
    r"token|key|secret|password|passwd|auth|sig|credential|session|headers|url", re.IGNORECASE
)


_USERINFO = re.compile(r"//[^/@\s]*@")  # a URL with a user (and password) in it


def _may_be_secret(path: tuple[str | int, ...], source: SourceMap) -> bool:
    """Whether the value at `path` may hold a secret: anything a notifier is given, any
    key whose name says so, and every value that had a `${VAR}` in it (that is how
    secrets reach the file)."""
    if not path:
        return False
    if path[0] == "notifiers" or any(isinstance(p, str) and _SECRET_WORDS.search(p) for p in path):
        return True
    return any(path[:n] in source.from_env for n in range(1, len(path) + 1)) or any(
        p[: len(path)] == path for p in source.from_env
    )


def _masked(issue: ConfigIssue, env_values: set[str]) -> ConfigIssue:
    if not env_values:
        return issue
    message = _without(issue.message, None, tuple(env_values))
    return issue if message == issue.message else dataclasses.replace(issue, message=message)


def _without(message: str, value: Any, env_values: tuple[str, ...]) -> str:
    """`message` with the input value and every environment value it may contain masked."""
    hidden = [repr(value), str(value)] if isinstance(value, str | int | float) else []
    hidden += [v for v in env_values if len(v) >= 4]
    for text in sorted(hidden, key=len, reverse=True):
        if text:
            message = message.replace(text, "[hidden]")
    return message


_TIMEDELTA = re.compile(r"datetime\.timedelta\(([^)]*)\)")


def _readable_timedelta(m: re.Match[str]) -> str:
    """pydantic prints bounds as `datetime.timedelta(seconds=1)`; config says `1s`."""
    kwargs = {
        k.strip(): int(v)
        for k, _, v in (p.partition("=") for p in m.group(1).split(",") if "=" in p)
    }
    return format_duration(timedelta(**kwargs))


def _data_path(data: Any, loc: tuple[int | str, ...]) -> Path:
    """Maps a pydantic error location onto the document, dropping union tags."""
    path: list[str | int] = []
    cursor: Any = data
    for part in loc:
        if isinstance(cursor, dict):
            if part in cursor:
                cursor = cursor[part]
            elif part in (cursor.get("kind"), cursor.get("type")):
                continue  # the discriminated union's tag, not a key of the document
            else:
                cursor = None
            path.append(part)
        elif isinstance(cursor, list) and isinstance(part, int) and 0 <= part < len(cursor):
            cursor = cursor[part]
            path.append(part)
        elif cursor is None:
            path.append(part)
        # otherwise: a validator-internal step (e.g. a union member name): skip it
    return tuple(path)


def _suggest(data: Any, path: Path) -> str:
    allowed = _allowed_keys(data, path[:-1])
    key = str(path[-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if allowed else []
    return f"; did you mean {close[0]!r}?" if close else ""


def _allowed_keys(data: dict[str, Any], path: Path) -> list[str]:
    """The keys the model accepts at `path`, for did-you-mean hints."""
    model: type[BaseModel] | None = _file_model()
    rest = path
    if path[:1] == ("checks",) and len(path) >= 2:
        checks, index = data.get("checks"), path[1]
        item = checks[index] if isinstance(checks, list) and isinstance(index, int) else None
        kind = CHECKS.get(str(item.get("kind"))) if isinstance(item, dict) else None
        model, rest = (kind.Config if kind else None), path[2:]
    for part in rest:
        if isinstance(part, int):
            continue  # a list item: the model is the list's item model
        fields = {(f.alias or name): f for name, f in model.model_fields.items()} if model else {}
        info = fields.get(str(part))
        model = _model_in(info.annotation) if info else None
    return [f.alias or name for name, f in model.model_fields.items()] if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, dict, Union, types.UnionType, Annotated):
        for arg in typing.get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None
