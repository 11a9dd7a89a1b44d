"""One redaction layer for every surface: logs (both formats), the API, the status page,
CLI output, notifier payloads and post-mortems.

What is masked (replaced by `***`):

- the userinfo of any URL (`https://***@host/…`);
- the values of query parameters and headers whose names look secret (they contain
  token, key, secret, password, passwd, pwd, auth, sig, signature, credential, session or
  cookie), in URLs, in `name=value` and `Name: value` text, and in mappings of headers;
- every secret the config holds (`SecretStr` fields such as notifier URLs and tokens, the
  heartbeat URL and `api.token`, secret-named headers of checks, userinfo and secret query
  values of check URLs), wherever it appears verbatim: `remember_config()` collects them
  at start.

Functions here never raise: a value they cannot parse is masked whole rather than shown.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

__all__ = [
    "MASK",
    "forget_all",
    "redact",
    "redact_text",
    "redact_url",
    "remember",
    "remember_config",
    "secret_name",
]

MASK = "***"
_MASKED = frozenset({MASK, "<redacted>"})  # masked already (the notifiers' own marker)
MIN_SECRET = 4  # shorter literals are not remembered: masking them would mask everything

_WORDS = ("token", "key", "secret", "password", "passwd", "pwd", "auth", "sig", "signature",
          "credential", "session", "cookie")  # fmt: skip
_PREFIXES = tuple(w for w in _WORDS if len(w) > 3)  # "signal" and "keyboard" are no secrets
_PARTS = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s\"'<>`]+")
# name=value, name: value and "name": "value" (query strings, headers, env lines, JSON)
_PAIR = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z0-9_.-]{0,63})(?P<sep>=|:[ \t]*|\"[ \t]*:[ \t]*\"?)"
    r"(?P<value>(?:Bearer |Basic |token )?[^\s&\"',;]+)",
    re.I,
)
# Names with a secret-looking word that name no secret: incident, dedup and idempotency
# keys, authors.
_NOT_SECRET = frozenset({"key", "dedup_key", "idempotency_key", "sort_key", "keys", "author",
                         "authors", "keyword", "keywords"})  # fmt: skip

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


_SCALARS = (int, float, bool, timedelta, datetime, Enum, re.Pattern)


@functools.lru_cache(maxsize=4096)
def secret_name(name: str) -> bool:
    """Whether a query parameter, header or field called `name` holds a secret: one of its
    words (split at punctuation and camelCase) starts or ends with a secret word."""
    if name.lower() in _NOT_SECRET:
        return False
    for part in _PARTS.split(name):
        low = part.lower()
        if any(low.endswith(w) for w in _WORDS) or any(low.startswith(w) for w in _PREFIXES):
            return True
    return False


def remember(values: Iterable[str]) -> None:
    """Adds literal secrets to mask wherever they appear."""
    global _pattern
    added = {v for v in values if len(v) >= MIN_SECRET}
    if added - _known:
        _known.update(added)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: no partial leftovers
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def forget_all() -> None:
    """Drops every remembered literal (tests)."""
    global _pattern
    _known.clear()
    _pattern = None


def remember_config(config: object) -> None:
    """Remembers every secret a config holds: `SecretStr` values, secret-named fields and
    headers, and the secret parts of URLs (userinfo, secret query values)."""
    found: list[str] = []
    _collect(config, "", found, depth=0)
    remember(found)


def _collect(value: Any, name: str, found: list[str], depth: int) -> None:
    if depth > 20 or value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        found.append(secret)
        found.extend(_url_secrets(secret))
        if "://" in secret:  # a secret URL (a webhook): its token is a long path segment
            with contextlib.suppress(ValueError):
                found.extend(p for p in urlsplit(secret).path.split("/") if len(p) >= 16)
    elif isinstance(value, str):
        if name and secret_name(name):
            found.append(value)
        if "@" in value or "?" in value:
            found.extend(_url_secrets(value))
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            _collect(getattr(value, field, None), field, found, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, str(key), found, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _collect(item, name, found, depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for key, item in vars(value).items():
            _collect(item, key, found, depth + 1)
    elif hasattr(value, "__slots__"):
        for key in getattr(value, "__slots__", ()):
            _collect(getattr(value, key, None), key, found, depth + 1)


def _url_secrets(text: str) -> list[str]:
    """The userinfo and the secret query values of each URL in `text`."""
    out: list[str] = []
    for match in _URL.finditer(text):
        try:
            parts = urlsplit(match.group(0))
        except ValueError:
            continue
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            # user:password: the password (a user name alone, such as a database role
            # called "monitor", would mask that word everywhere); a lone userinfo is a token.
            _user, colon, password = userinfo.partition(":")
            out += [userinfo, password] if colon and password else [userinfo]
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if value and secret_name(key):
                out.append(value)
    return out


def redact_url(url: str) -> str:
    """`url` with its userinfo and secret query values masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
        query = "&".join(_mask_pair(p) for p in parts.query.split("&")) if parts.query else ""
        fragment = _PAIR.sub(_mask_match, parts.fragment) if parts.fragment else ""
        return _literals(urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, fragment)))
    except ValueError:
        return MASK


def _mask_pair(pair: str) -> str:
    key, eq, value = pair.partition("=")
    return f"{key}={MASK}" if eq and value and secret_name(key) else pair


def _mask_match(match: re.Match[str]) -> str:
    if not secret_name(match.group("name")) or match.group("value") in _MASKED:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{MASK}"


def _literals(text: str) -> str:
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None else text


def redact_text(text: str) -> str:
    """Free text with every URL, `secret=value` pair and remembered secret masked."""
    try:
        text = _literals(text)
        if "://" in text:
            text = _URL.sub(lambda m: redact_url(m.group(0)), text)
        return _PAIR.sub(_mask_match, text)
    except Exception:  # noqa: BLE001 - a redactor that raises would show what it guards
        return MASK


def redact(value: Any, *, _depth: int = 0) -> Any:
    """A JSON-like value (or a log event) with every string redacted and the values of
    secret-named keys under `headers` masked. Other types pass through unchanged."""
    if isinstance(value, str):
        return redact_text(value)
    if _depth > 64:
        return MASK
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(key)
            if isinstance(item, SecretStr) or (secret_name(name) and isinstance(item, str)):
                out[key] = MASK
            elif name.lower() == "headers" and isinstance(item, Mapping):
                out[key] = {
                    k: MASK if secret_name(str(k)) else redact(v, _depth=_depth + 1)
                    for k, v in item.items()
                }
            else:
                out[key] = redact(item, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact(v, _depth=_depth + 1) for v in value]
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, int | float | bool | datetime) or value is None:
        return value
    return value
