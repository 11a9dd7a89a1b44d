"""The watcher is watched: a ping to an external URL on an interval, saying whether the
monitor is healthy, so that someone outside notices when it is gone.

It follows the Healthchecks convention, and works with any URL: each `interval` the
monitor sends a request to `url` when it is healthy and to `<url>/fail` when it is not;
the body (POST) lists what is wrong, one reason a line. The service at the other end
alerts when the pings stop or say fail.

Healthy means (`assess`): the scheduler is running (the daemon is started and not
stopping), the store answers within the timeout, and no notifier is in an outage. A ping
that fails is logged (`heartbeat_failed`) and counted
(`monitor_heartbeat_pings_total{outcome="failed"}`); it is never fatal and never waits
on or delays a probe. The URL is a secret: it may hold a token, and it is never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Literal

import aiohttp
import structlog
from pydantic import Field, SecretStr, field_validator

from monitor.core.clock import Clock
from monitor.core.configtypes import PositiveDuration, StrictModel
from monitor.core.redact import redact_text
from monitor.metrics.exporter import Metrics

__all__ = ["Heartbeat", "HeartbeatConfig", "assess"]

log = structlog.stdlib.get_logger(__name__)

MAX_BODY = 4096  # bytes of reasons a ping carries (Healthchecks keeps the first 100 kB)


class HeartbeatConfig(StrictModel):
    """Pings an external URL on an interval with the monitor's health."""

    url: SecretStr | None = Field(
        default=None,
        description=(
            "Ping URL (e.g. https://hc-ping.com/<uuid> or ${MONITOR_HEARTBEAT_URL:-}); "
            "<url>/fail when unhealthy. Empty: no heartbeat. Never shown: it may hold a token."
        ),
    )
    interval: PositiveDuration = Field(
        default=timedelta(minutes=1), description="Time between pings."
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="Bound on one ping, and on the store's answer to the health check.",
    )
    method: Literal["POST", "GET"] = Field(
        default="POST", description="POST carries the reasons as its body; GET has no body."
    )

    @property
    def ping_url(self) -> str | None:
        url = self.url.get_secret_value() if self.url is not None else ""
        return url or None

    @field_validator("url")
    @classmethod
    def _url_ok(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else ""
        if url and not url.startswith(("http://", "https://")):
            # The value is never repeated: it may hold a token.
            raise ValueError("expected an http:// or https:// URL, or nothing for no heartbeat")
        return value


async def assess(
    *,
    running: bool,
    store_answers: Callable[[], Awaitable[object]],
    outages: Iterable[str],
    timeout_s: float,
) -> list[str]:
    """What is wrong with the monitor, one reason each; empty when healthy."""
    reasons: list[str] = []
    if not running:
        reasons.append("scheduler not running")
    try:
        await asyncio.wait_for(store_answers(), timeout_s)
    except TimeoutError:
        reasons.append(f"store did not answer within {timeout_s:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure of the store is a reason, no crash
        reasons.append(f"store not answering ({type(exc).__name__})")
    reasons.extend(f"notifier {name} in outage" for name in sorted(outages))
    return reasons


class Heartbeat:
    """Assesses the health and pings `config().url` every `config().interval`; follows
    reloads through `config`."""

    def __init__(
        self,
        config: Callable[[], HeartbeatConfig],
        session: aiohttp.ClientSession,
        clock: Clock,
        metrics: Metrics,
        health: Callable[[], Awaitable[list[str]]],
    ) -> None:
        self.config = config
        self.session = session
        self.clock = clock
        self.metrics = metrics
        self.health = health

    async def run(self) -> None:
        """Pings until cancelled; nothing it meets ends it."""
        while True:
            started = self.clock.monotonic()
            config = self.config()
            try:
                await self.beat(config)
            except Exception:  # the heartbeat never stops the daemon
                log.exception("heartbeat_failed", error="unexpected")
            await self.clock.sleep_until(started + config.interval.total_seconds())

    async def beat(self, config: HeartbeatConfig) -> bool:
        """Assesses the health now (`monitor_healthy`, also without a URL) and pings with
        it. Returns whether the receiver took the ping."""
        try:
            reasons = await self.health()
        except Exception as exc:  # noqa: BLE001 - a health check that fails says unhealthy
            reasons = [f"health check failed ({type(exc).__name__})"]
        healthy = not reasons
        self.metrics.healthy.set(1 if healthy else 0)
        url = config.ping_url
        if url is None:
            return False
        timeout_s = config.timeout.total_seconds()
        target = url if healthy else url.rstrip("/") + "/fail"
        body = ("\n".join(reasons) or "ok").encode()[:MAX_BODY]
        error: str | None = None
        try:
            async with self.session.request(
                config.method,
                target,
                data=body if config.method == "POST" else None,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=True,
            ) as response:
                await response.read()
                if response.status >= 400:
                    error = f"HTTP {response.status}"
        except TimeoutError:
            error = f"no answer within {timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # The exception's text may carry the URL: only its type is told.
            error = type(exc).__name__
        if error is not None:
            self.metrics.heartbeat_pings.labels("failed").inc()
            log.warning("heartbeat_failed", error=redact_text(error), healthy=healthy)
            return False
        self.metrics.heartbeat_pings.labels("sent").inc()
        self.metrics.heartbeat_last_sent.set(self.clock.now().timestamp())
        if not healthy:
            log.warning("heartbeat_unhealthy", reasons=reasons)
        return True
