"""Badges for a README: a check's or a group's status and uptime as a flat SVG (the
shields.io look: a grey label, a coloured value).

    /badge/{check}/status.svg              /badge/group/{group}/status.svg
    /badge/{check}/uptime/{window}.svg     /badge/group/{group}/uptime/{window}.svg

Check and group names share one pattern, so a group's badges live under the literal
segment `group`, one level deeper: a check named `group` keeps `/badge/group/status.svg`
(three segments) and `/badge/group/uptime/24h.svg` (`status` is no window), so no URL
names two badges. Open like the status page; cached for `MAX_AGE_S`, with an ETag (a
request with `If-None-Match` for the same badge gets a 304). What a badge shows is a name
and a state or a percentage; every text is escaped, and `?label=` (at most `MAX_LABEL`
characters) replaces the label. An unknown check, group or window is a 404 badge that
says "not found" (an image, so that an embedding page shows why); a bad label is a 400;
a store that cannot answer makes an uptime badge a 503 that says "unavailable".

Status: up, degraded, down, or unknown (not yet checked, or the monitor cannot see it
right now: that is never the asset's failure). A group shows its worst known member.
Uptime is `engine.history`'s (runs up or degraded among the runs that could look), summed
over the group's checks, cut (never rounded up) to two decimals, so 100% means no failed
run; "no data" when no run could look.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import math
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from monitor.core.alertstate import AlertState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase, group_of
from monitor.core.errors import StoreError
from monitor.engine.history import WINDOWS, CheckReadings
from monitor.store.base import HOUR, RunCounts, Store
from monitor.web.common import BadRequest, Operation, already_current

__all__ = ["MAX_AGE_S", "MAX_LABEL", "BadgeApi", "handlers", "render_badge", "text_width"]

log = structlog.stdlib.get_logger(__name__)

MAX_AGE_S = 60  # how long a client or a proxy may keep a badge
MAX_LABEL = 64  # characters of a `?label=`
_CACHE_LIMIT = 20_000  # uptime figures kept at most (a few per check and group)
_CHUNK = 50  # checks summed per store query

# Shields' named colours.
GREEN, LIGHT_GREEN, YELLOW, ORANGE, RED, GREY = (
    "#4c1", "#97ca00", "#dfb317", "#fe7d37", "#e05d44", "#9f9f9f",
)  # fmt: skip
_STATE_COLOUR = {"up": GREEN, "degraded": YELLOW, "down": RED, "unknown": GREY}
_RANK = {"down": 0, "degraded": 1, "up": 2}  # a group shows its worst known member


@dataclass(slots=True)
class BadgeApi:
    """What the badges read: the checks on the status page, their state, and the history
    (uptime figures are kept a while, see `uptime`, so a busy README costs the store
    little)."""

    checks: Callable[[], Sequence[CheckConfigBase]]
    readings: CheckReadings
    store: Store
    clock: Clock
    # Awaited before a status badge reads `readings` (a replica reads the others' rows).
    refresh: Callable[[], Awaitable[None]] = already_current
    _uptimes: dict[tuple[str, str, str], tuple[float, float | None]] = field(default_factory=dict)
    _running: dict[tuple[str, str, str], asyncio.Future[float | None]] = field(default_factory=dict)

    def members(self, group: str) -> list[str]:
        return [c.name for c in self.checks() if group_of(c) == group]

    def known(self, check: str) -> bool:
        return any(c.name == check for c in self.checks())

    def status(self, names: Sequence[str]) -> str:
        """The worst known state among `names`; unknown when none is known."""
        states = [self._state(n) for n in names]
        known = [s for s in states if s in _RANK]
        return min(known, key=_RANK.__getitem__) if known else "unknown"

    def _state(self, check: str) -> str:
        state = self.readings.state(check)
        value = state.state if state is not None else AlertState.UNKNOWN
        return value.value if value.value in _RANK else "unknown"

    async def uptime(self, kind: str, name: str, names: Sequence[str], window: str) -> float | None:
        """The uptime percentage of `names` together over `window` (a key of `WINDOWS`).
        One computation at a time per badge; its result is kept `MAX_AGE_S`, or 20 times
        as long as it took when that is longer, so that a group of thousands of checks
        costs the daemon at most a twentieth of its time however often it is asked."""
        key = (kind, name, window)
        cached = self._uptimes.get(key)
        if cached is not None and cached[0] > self.clock.monotonic():
            return cached[1]
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._compute(key, names))
            running.add_done_callback(lambda f: self._done(key, f))
        return await asyncio.shield(running)

    def _done(self, key: tuple[str, str, str], future: asyncio.Future[float | None]) -> None:
        self._running.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved: every waiter may have gone meanwhile

    async def _compute(self, key: tuple[str, str, str], names: Sequence[str]) -> float | None:
        started = self.clock.monotonic()
        span, _ = WINDOWS[key[2]]
        now = int(self.clock.now().timestamp())
        this_hour = now - now % HOUR
        total = RunCounts()
        for i in range(0, len(names), _CHUNK):  # the hours that started within the window
            total += await self.store.count_runs(
                names[i : i + _CHUNK], HOUR, now - span + 1, this_hour + HOUR
            )
            await asyncio.sleep(0)  # a big group lets the probes run between its chunks
        looked = total.up + total.degraded + total.down
        figure = None if looked == 0 else 100 * (total.up + total.degraded) / looked
        if len(self._uptimes) >= _CACHE_LIMIT:
            self._uptimes.clear()
        ended = self.clock.monotonic()
        self._uptimes[key] = (ended + max(MAX_AGE_S, 20 * (ended - started)), figure)
        return figure


def handlers(api: BadgeApi) -> dict[str, Operation]:
    """The badge operations of `web.apischema.ROUTES`, by operation name."""

    async def status_badge(request: web.Request) -> web.Response:
        check = request.match_info["check"]
        if not api.known(check):
            return _not_found()
        label = _label(request, check)  # a bad label is refused before any work
        await api.refresh()
        state = api.status([check])
        return _answer(request, label, state, _STATE_COLOUR[state])

    async def uptime_badge(request: web.Request) -> web.Response:
        check, window = request.match_info["check"], request.match_info["window"]
        if window not in WINDOWS or not api.known(check):
            return _not_found()
        return await _uptime_answer(
            request, window, lambda: api.uptime("check", check, [check], window)
        )

    async def group_status_badge(request: web.Request) -> web.Response:
        group = request.match_info["group"]
        members = api.members(group)
        if not members:
            return _not_found()
        label = _label(request, group)
        await api.refresh()
        state = api.status(members)
        return _answer(request, label, state, _STATE_COLOUR[state])

    async def group_uptime_badge(request: web.Request) -> web.Response:
        group, window = request.match_info["group"], request.match_info["window"]
        members = api.members(group)
        if window not in WINDOWS or not members:
            return _not_found()
        return await _uptime_answer(
            request, window, lambda: api.uptime("group", group, members, window)
        )

    return {
        "status_badge": status_badge, "uptime_badge": uptime_badge,
        "group_status_badge": group_status_badge, "group_uptime_badge": group_uptime_badge,
    }  # fmt: skip


def _label(request: web.Request, default: str) -> str:
    label = request.query.get("label")
    if label is None:
        return default
    if len(label) > MAX_LABEL:
        raise BadRequest(f"label is at most {MAX_LABEL} characters")
    return label


async def _uptime_answer(
    request: web.Request, window: str, compute: Callable[[], Awaitable[float | None]]
) -> web.Response:
    label = _label(request, f"uptime {window}")  # a bad label is refused before any work
    try:
        figure = await compute()
    except StoreError as exc:
        # The monitor cannot read its history: its own trouble, never the asset's.
        log.warning("badge_uptime_unavailable", error=str(exc))
        svg = render_badge(label, "unavailable", GREY)
        return web.Response(text=svg, status=503, content_type="image/svg+xml")
    if figure is None:
        return _answer(request, label, "no data", GREY)
    return _answer(request, label, uptime_text(figure), uptime_colour(figure))


def uptime_text(percent: float) -> str:
    """`percent` cut to two decimals, never rounded up: 99.996 is 99.99%, not 100%."""
    cut = math.floor(round(percent * 100, 6)) / 100
    return f"{cut:.2f}".rstrip("0").rstrip(".") + "%"


def uptime_colour(percent: float) -> str:
    for floor, colour in ((99.9, GREEN), (99.0, LIGHT_GREEN), (95.0, YELLOW), (90.0, ORANGE)):
        if percent >= floor:
            return colour
    return RED


def _answer(request: web.Request, label: str, value: str, colour: str) -> web.Response:
    svg = render_badge(label, value, colour).encode()
    tag = f'"{hashlib.sha256(svg).hexdigest()[:24]}"'
    headers = {
        "ETag": tag,
        "Cache-Control": f"public, max-age={MAX_AGE_S}",
        # An SVG opened on its own is a document: it may run nothing and load nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    if _matches(request.headers.get("If-None-Match", ""), tag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=svg, content_type="image/svg+xml", charset="utf-8", headers=headers)


def _matches(header: str, tag: str) -> bool:
    """RFC 9110's weak comparison of `If-None-Match` with `tag`."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


def _not_found() -> web.Response:
    svg = render_badge("badge", "not found", GREY)
    return web.Response(text=svg, status=404, content_type="image/svg+xml")


# Advance widths of Verdana 11px (the badge's first font), in tenths of a pixel, for the
# printable ASCII characters from space (32) to tilde (126); an accented letter counts as
# its letter, and anything else as 11px, as wide as the widest letters, so that a label
# never runs out of its box. The text is also drawn with `textLength`, which fits it
# exactly to the width computed here.
_WIDTHS = (
    39, 44, 56, 97, 77, 132, 88, 30, 55, 55, 77, 97, 44, 55, 44, 55,  # space to /
    77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 55, 55, 97, 97, 97, 66,  # 0 to ?
    121, 75, 76, 77, 85, 70, 64, 86, 83, 51, 55, 77, 62, 93, 83, 87,  # @ to O
    67, 87, 77, 75, 68, 81, 75, 109, 75, 68, 75, 55, 55, 55, 97, 77,  # P to _
    77, 66, 69, 57, 69, 66, 39, 69, 70, 30, 38, 65, 30, 107, 70, 67,  # ` to o
    69, 69, 47, 57, 43, 70, 65, 89, 65, 65, 58, 70, 55, 70, 97,  # p to ~
)  # fmt: skip


def text_width(text: str) -> int:
    """The width of `text` in Verdana 11px, in whole pixels, rounded up."""
    return math.ceil(sum(_char_width(c) for c in text) / 10)


def _char_width(c: str) -> int:
    o = ord(c)
    if 32 <= o <= 126:
        return _WIDTHS[o - 32]
    # An accented letter is as wide as its letter (é as e); anything else as the widest.
    base = unicodedata.normalize("NFD", c)[0]
    return _WIDTHS[ord(base) - 32] if " " <= base <= "~" else 110


_PAD = 6  # pixels each side of a text


def render_badge(label: str, value: str, colour: str) -> str:
    """A flat badge: `label` on grey, `value` on `colour`, 20 px high."""
    lw, vw = text_width(label), text_width(value)
    left, right = lw + 2 * _PAD, vw + 2 * _PAD
    width = left + right
    lx, vx = left * 5, (left + right / 2) * 10  # text centres, in the 10x text scale
    title = html.escape(f"{label}: {value}")
    lt, vt = html.escape(label), html.escape(value)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img"'
        f' aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb"'
        ' stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
        ' text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{lx:g}" y="150" fill="#010101" fill-opacity=".3"'
        f' transform="scale(.1)" textLength="{lw * 10}">{lt}</text>'
        f'<text x="{lx:g}" y="140" transform="scale(.1)" textLength="{lw * 10}">{lt}</text>'
        f'<text aria-hidden="true" x="{vx:g}" y="150" fill="#010101" fill-opacity=".3"'
        f' transform="scale(.1)" textLength="{vw * 10}">{vt}</text>'
        f'<text x="{vx:g}" y="140" transform="scale(.1)" textLength="{vw * 10}">{vt}</text>'
        "</g></svg>"
    )
