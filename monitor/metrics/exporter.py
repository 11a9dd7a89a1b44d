"""Every Prometheus metric the daemon exports, built on an injected registry.

Labels are config values only (check name, kind) or closed enums (outcome, failure
kind, phase, state): never URLs or error texts, so cardinality is bounded by config.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from monitor import __version__
from monitor.core.alertstate import AlertState
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import CheckResult
from monitor.metrics.checkseries import PHASES, CheckSeriesSet
from monitor.metrics.slo import SloMetrics

__all__ = ["PHASES", "AssetFacts", "Metrics"]

_LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)


@dataclass(frozen=True, slots=True)
class AssetFacts:
    """What one run saw of the asset itself; each check kind says it (`Check.asset_facts`)."""

    version: str | None = None
    installs: int | float | None = None
    updated_at: datetime | None = None


class Metrics:
    """The metric objects, plus helpers that keep per-check label sets in step with config."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Runs, attempts, failures, up, alert state, duration and phase histograms, last
        # success and skipped ticks: one compact object per check (`monitor.metrics.checkseries`),
        # written out by `render()` next to this registry's metrics.
        self.series = CheckSeriesSet()
        self.tls_expiry = Gauge(
            "monitor_tls_cert_expiry_timestamp_seconds", "NotAfter of the certificate served.",
            ["check"], registry=registry,
        )  # fmt: skip
        self.lag = Histogram(
            "monitor_scheduler_lag_seconds", "Actual minus planned start of check runs.",
            buckets=_LAG_BUCKETS, registry=registry,
        )  # fmt: skip
        # Runs executing now: a plain counter the scheduler keeps, read at scrape time.
        self.running = 0
        self.in_flight = Gauge(
            "monitor_checks_in_flight", "Check runs executing now.", registry=registry
        )
        self.in_flight.set_function(lambda: self.running)
        self.checks = Gauge(
            "monitor_checks_configured", "Checks in the running config.", ["enabled"],
            registry=registry,
        )  # fmt: skip
        self.reload_ok = Gauge(
            "monitor_config_last_reload_successful", "1 if the last config load succeeded.",
            registry=registry,
        )  # fmt: skip
        self.reload_at = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully.", registry=registry,
        )  # fmt: skip
        self.asset_version = Gauge(
            "monitor_asset_version_info", "1 for the version an asset check last saw.",
            ["check", "version"], registry=registry,
        )  # fmt: skip
        self.asset_installs = Gauge(
            "monitor_asset_installs", "Install count an asset check last saw.", ["check"],
            registry=registry,
        )  # fmt: skip
        self.asset_updated = Gauge(
            "monitor_asset_updated_timestamp_seconds",
            "When the version an asset check last saw was published.", ["check"],
            registry=registry,
        )  # fmt: skip
        self.ratelimit_remaining = Gauge(
            "monitor_ratelimit_remaining", "Requests left in an API rate-limit budget.",
            ["api", "budget"], registry=registry,
        )  # fmt: skip
        self._versions: dict[str, str] = {}
        self.blinded = Counter(
            "monitor_probes_blinded", "Runs that failed because the monitor itself ran out of "
            "resources (descriptors, buffers, memory); not counted against the asset.",
            ["check"], registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "monitor_notifications", "Notification attempts by outcome (sent, retried, failed).",
            ["notifier", "outcome"], registry=registry,
        )  # fmt: skip
        self.delivery_latency = Histogram(
            "monitor_notification_delivery_seconds", "From enqueued to delivered.", ["notifier"],
            buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800), registry=registry,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "monitor_outbox_pending", "Notifications waiting to be delivered.", registry=registry
        )
        self.outbox_oldest_age = Gauge(
            "monitor_outbox_oldest_pending_age_seconds", "Age of the oldest undelivered notification.",
            registry=registry,
        )  # fmt: skip
        severity = ["severity"]  # P0, P1, P2, or None for an untriaged report
        self.incidents_open = Gauge(
            "monitor_incidents_open", "Open incidents by severity and status.",
            ["severity", "status"], registry=registry,
        )  # fmt: skip
        for sev in ("P0", "P1", "P2", "None"):
            for status in ("triggered", "acknowledged"):
                self.incidents_open.labels(sev, status).set(0)
        self.incidents_opened = Counter(
            "monitor_incidents_opened", "Incidents opened.", severity, registry=registry
        )
        self.incidents_resolved = Counter(
            "monitor_incidents_resolved", "Incidents resolved.", severity, registry=registry
        )
        buckets = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200)
        self.time_to_ack = Histogram(
            "monitor_incident_time_to_acknowledge_seconds", "From opened to acknowledged.",
            severity, buckets=buckets, registry=registry,
        )  # fmt: skip
        self.time_to_resolve = Histogram(
            "monitor_incident_time_to_resolve_seconds", "From opened to resolved.",
            severity, buckets=buckets, registry=registry,
        )  # fmt: skip
        self.suppressed = Counter(
            "monitor_pages_suppressed", "Incidents whose paging was held back, by reason.",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.healthy = Gauge(
            "monitor_healthy", "1 if the monitor judged itself healthy when it last looked (every heartbeat.interval).",
            registry=registry,
        )  # fmt: skip
        self.heartbeat_pings = Counter(
            "monitor_heartbeat_pings", "Heartbeat pings by outcome (sent, failed).", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.heartbeat_last_sent = Gauge(
            "monitor_heartbeat_last_sent_timestamp_seconds",
            "When the heartbeat receiver last took a ping.", registry=registry,
        )  # fmt: skip
        self.slo = SloMetrics(registry)  # per objective, set by `engine.slo`
        self._registry = registry
        self._replicas_live: Gauge | None = None
        self._fleet: tuple[Gauge, Gauge] | None = None
        self._orphaned: Gauge | None = None
        self._leadership: tuple[Gauge, Gauge] | None = None
        self._confirmations: Counter | None = None
        build = Info("monitor_build", "Version of the monitor.", registry=registry)
        build.info({"version": __version__, "python": platform.python_version()})

    def track_replicas(self) -> Gauge:
        """`monitor_replicas_live`: registered by a daemon on a shared store only."""
        if self._replicas_live is None:
            self._replicas_live = Gauge(
                "monitor_replicas_live",
                "Replicas the shared database heard from within their time to live.",
                registry=self._registry,
            )
        return self._replicas_live

    def track_fleet(self) -> tuple[Gauge, Gauge]:
        """`monitor_checks_owned` and `monitor_config_consistent`: a daemon on a shared
        store only."""
        if self._fleet is None:
            self._fleet = (
                Gauge(
                    "monitor_checks_owned",
                    "Enabled checks this replica owns and runs now.",
                    registry=self._registry,
                ),
                Gauge(
                    "monitor_config_consistent",
                    "1 if every live replica beats with this replica's config hash, else 0.",
                    registry=self._registry,
                ),
            )
        return self._fleet

    def track_orphaned(self) -> Gauge:
        """`monitor_checks_orphaned`: checks a replica cut off from the shared store probes
        on its own, holding their state changes until it is back."""
        if self._orphaned is None:
            self._orphaned = Gauge(
                "monitor_checks_orphaned",
                "Checks probed while the store is away, their state changes held locally.",
                registry=self._registry,
            )
        return self._orphaned

    def track_leadership(self) -> tuple[Gauge, Gauge]:
        """`monitor_pager_leader` and `monitor_pager_lease_token`: on a shared store only."""
        if self._leadership is None:
            self._leadership = (
                Gauge(
                    "monitor_pager_leader",
                    "1 while this replica holds the paging lease (runs escalations, sends).",
                    registry=self._registry,
                ),
                Gauge(
                    "monitor_pager_lease_token",
                    "Fencing token of the paging lease this replica last took.",
                    registry=self._registry,
                ),
            )
        return self._leadership

    def track_confirmations(self) -> Counter:
        """`monitor_confirmations_total`: registered once a check asks for one."""
        if self._confirmations is None:
            self._confirmations = Counter(
                "monitor_confirmations",
                "Failures checked with other replicas before going down, by outcome"
                " (confirmed, refuted, unconfirmed).",
                ["outcome"], registry=self._registry,
            )  # fmt: skip
        return self._confirmations

    def add_check(self, config: CheckConfigBase) -> None:
        """Creates the check's series up front, so they are exported before the first run."""
        self.series.add(config.name, config.kind)

    def remove_check(self, config: CheckConfigBase) -> None:
        """Drops a removed check's series so they do not linger with stale values."""
        self.series.remove(config.name)
        for metric in (self.tls_expiry, self.asset_installs, self.asset_updated):
            _remove(metric, config.name)
        if (version := self._versions.pop(config.name, None)) is not None:
            _remove(self.asset_version, config.name, version)

    def record(self, result: CheckResult, facts: AssetFacts | None = None) -> None:
        self.series.record(result)
        details = result.details
        if not details:
            return
        not_after = details.get("tls_not_after")
        if isinstance(not_after, datetime):
            self.tls_expiry.labels(result.check).set(not_after.timestamp())
        if facts is not None:
            self._record_asset(result.check, facts)

    def skip(self, check: str, kind: str, ticks: int) -> None:
        """Counts ticks a check skipped because a run overran."""
        self.series.skip(check, kind, ticks)

    async def render(self) -> AsyncIterator[bytes]:
        """The whole exposition: this registry's metrics, then every check's series."""
        yield generate_latest(self.registry)
        async for part in self.series.render():
            yield part.encode()

    def _record_asset(self, check: str, facts: AssetFacts) -> None:
        """Exports what the check's kind says about its asset."""
        version = facts.version
        if isinstance(version, str) and version != self._versions.get(check):
            if (old := self._versions.get(check)) is not None:
                _remove(self.asset_version, check, old)
            self.asset_version.labels(check, version).set(1)
            self._versions[check] = version
        installs = facts.installs
        if isinstance(installs, int | float) and not isinstance(installs, bool):
            self.asset_installs.labels(check).set(installs)
        updated = facts.updated_at
        if isinstance(updated, datetime):
            self.asset_updated.labels(check).set(updated.timestamp())

    def set_state(self, check: str, kind: str, current: AlertState) -> None:
        """One series per state, 1 for the current one (a Prometheus state set)."""
        self.series.get(check, kind).state = current

    def set_open_incidents(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Sets every (severity, status) series: absent ones go back to 0."""
        for sev in ("P0", "P1", "P2", "None"):
            for status in ("triggered", "acknowledged"):
                self.incidents_open.labels(sev, status).set(counts.get((sev, status), 0))

    def count_checks(self, enabled: int, disabled: int) -> None:
        self.checks.labels("true").set(enabled)
        self.checks.labels("false").set(disabled)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # that label set was never created
        metric.remove(*labels)
