"""Check ownership in a fleet of replicas sharing one PostgreSQL store.

Each enabled check is owned by exactly one live replica: the one whose id scores highest
for the check's name (`owner`, rendezvous hashing), so a replica that joins or leaves
moves only the checks it takes or held. The live set is the database's (`Membership`,
judged by its clock alone); a replica never uses its own wall clock to decide anything
here, only its monotonic clock to time its lease.

- **Lease.** A replica owns checks only while its last successful beat started less than
  `ttl - beat` ago. One that cannot beat (cut off from the database) stops owning its
  checks a beat before the others could count it gone and take them over. A fleet of
  one (the last live set held only this replica) keeps running everything through an
  outage: nobody could take over.
- **Orphans.** A replica cannot tell "the database is down for everyone" from "I am cut
  off", so when its lease runs out it keeps probing the checks it last owned (and those
  it was waiting to take from a replica that let them go), as orphans: results stay local (`orphaned` tells the pipeline to write nothing and page
  nothing; it holds each check's state changes as unsettled), and the runs are not
  recorded. When it beats again, `check_runs` says who ran each orphan last: if nobody
  else did (the whole fleet was without its database), its own observations stand, it
  takes the check back without reading its state from the store, and a run at once
  (only of checks with held changes) writes the held transitions from the state the
  store last took (incidents open or resolve, pages go out). If another
  replica ran it meanwhile (this one alone was cut off), its observations are dropped
  (`drop`) and the check is taken back, if still its own, as a newcomer does (below).
  An orphan whose previous owner in the new live set is live waits `SETTLE_BEATS`
  beats (still probed, still local) before that decision, so that a takeover the other
  has not recorded yet is seen. During a cut-off the others probe its checks too:
  duplicate probes, never duplicate writes or pages, and only until it is back.
- **Handover.** A check taken over from a replica that is gone is planned at once from
  the store's record of its last run (`RunBook`, timed by the database): due again at
  last run + interval, or, when that has passed, at once (spread over
  `TAKEOVER_SPREAD_S`). A check handed over by a replica that is still live (one joined,
  or this one came back) waits `SETTLE_BEATS` beats first, long enough for the other to
  see the new live set, stop, and record its last runs. Before its first run here, a
  gained check's alert state and open incident are read back from the store. After
  its lease ran out, a replica takes a check that was not its orphan only after `ttl`
  (that the others had the time to beat again, when the whole fleet was without its
  database), or `SETTLE_BEATS` beats when its previous owner is live.
- **Config.** Each beat carries a hash of the replica's loaded config (`config_hash`);
  a replica whose hash differs from a live peer's logs `config_differs` and sets
  `monitor_config_consistent` to 0.
- **Gone replicas.** A replica that stopped beating without leaving is claimed by
  exactly one live replica, which opens one monitor-health incident for its host
  (`monitor-health:replica-gone:<host>`), posted per `escalation.monitor_health`; a
  replica that starts (or beats again) on that host resolves it. A clean stop leaves
  the table and opens nothing.
- **One statement a beat.** The beat, the runs since the last one, the fleet view's
  readings (`Carried`) and the claim of gone replicas go to the store together
  (`RunBook.beat_and_record`): one round trip a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import fields, is_dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import structlog
from pydantic import BaseModel, SecretStr

from monitor.config.loader import MonitorConfig
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult
from monitor.engine.membership import Membership
from monitor.engine.scheduler import ResultSink, Scheduler
from monitor.incidents.manager import IncidentManager
from monitor.metrics.exporter import Metrics
from monitor.store.replicas import Replica, ReplicaId, RunBook

__all__ = [
    "SETTLE_BEATS", "TAKEOVER_SPREAD_S", "Fleet", "config_hash", "gone_key", "owner", "owners",
]  # fmt: skip

log = structlog.stdlib.get_logger(__name__)

TAKEOVER_SPREAD_S = 2.0  # overdue checks taken over start within this
SETTLE_BEATS = 2  # beats a check handed over by a live replica waits before it runs here


def _score(replica: str, check: str) -> int:
    digest = hashlib.blake2b(f"{replica}\0{check}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(check: str, live: Iterable[str]) -> str | None:
    """The replica among `live` that owns `check` (rendezvous hashing): the highest
    score of (replica, check). None when `live` is empty."""
    best: tuple[int, str] | None = None
    for replica in live:
        candidate = (_score(replica, check), replica)
        if best is None or candidate > best:
            best = candidate
    return None if best is None else best[1]


def owners(checks: Iterable[str], live: Sequence[str]) -> dict[str, str]:
    """The owner of each check among `live` (none when `live` is empty)."""
    return {c: o for c in checks if (o := owner(c, live)) is not None}


def gone_key(host: str) -> str:
    """The monitor-health key of replicas on `host` that are gone."""
    return f"monitor-health:replica-gone:{host}"


def config_hash(config: MonitorConfig) -> str:
    """A short hash of what a replica was configured with: everything but where it
    listens, keeps state and reaches the database (those are its own); secrets count by
    their own hash, never by value."""
    parts: dict[str, Any] = {}
    for f in fields(config):
        if f.name in ("source", "enabled_checks"):  # where it was read; derived
            continue
        value = getattr(config, f.name)
        if f.name == "daemon":
            value = value.model_dump(mode="python", exclude={"listen", "state_dir", "store"})
        parts[f.name] = value
    text = json.dumps(parts, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, SecretStr):
        return "secret:" + hashlib.sha256(value.get_secret_value().encode()).hexdigest()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return repr(value)


class Carried(Protocol):
    """What rides on each beat beside the runs: the fleet view's readings
    (`FleetView.take`), written in the beat's own statement."""

    def take(self) -> tuple[set[str], list[tuple[str, str]]]:
        """The checks whose readings are due, and their rows (check, reading text)."""
        ...

    def give_back(self, checks: set[str]) -> None:
        """Those checks' readings were not written: they are due at the next beat."""
        ...


class Fleet:
    """Beats for this replica (through `Membership`) and keeps which checks it owns.

    `owns` is the scheduler's gate; `recording` wraps the result sink so that each run
    is recorded in the store at the next beat; `scheduler` is set once it runs.
    """

    def __init__(
        self,
        membership: Membership,
        book: RunBook,
        clock: Clock,
        metrics: Metrics,
        checks: Callable[[], Sequence[CheckConfigBase]],
        *,
        ttl_s: float,
        adopt: Callable[[list[CheckConfigBase]], Awaitable[None]] | None = None,
        drop: Callable[[list[CheckConfigBase]], Awaitable[None]] | None = None,
        held: Callable[[str], bool] | None = None,
        incidents: IncidentManager | None = None,
    ) -> None:
        self.membership = membership
        self.book = book
        self.clock = clock
        self.metrics = metrics
        self.checks = checks
        self.beat_s = membership.beat_s
        self.ttl_s = ttl_s
        self.lease_s = ttl_s - membership.beat_s
        self.adopt = adopt
        self.drop = drop
        self.held = held
        self.incidents = incidents
        self.scheduler: Scheduler | None = None
        self.carried: Carried | None = None  # the fleet view's readings, if it has one
        self._plans: dict[str, float] = {}  # planned before the scheduler started
        self._owned: set[str] = set()
        self._pending: dict[str, float] = {}  # handed over by a live replica: runs from then
        self._live: tuple[str, ...] = ()  # the live set ownership was computed over
        self._names: tuple[str, ...] | None = None  # the checks it was computed for
        self._lease_until = -math.inf
        self._solo = False  # the last live set held only this replica
        self._started = False  # the first checks were placed
        self._ran: dict[str, float] = {}  # check → monotonic start of runs not yet recorded
        self._orphaned: set[str] = set()  # probed after its lease ran out, kept local
        self._orphan_ran: dict[str, float] = {}  # their runs: recorded only if kept
        self._beating_since: float | None = None
        self._returned = False  # it beats (again): a replica-gone incident of its host ends
        self._differs: list[str] = []
        # The gate may let checks run that it kept back (taken, orphaned, the lease back,
        # alone in the fleet): the scheduler is told at the end of the step.
        self._gained = False
        self._checks: Sequence[CheckConfigBase] | None = None  # what `_configs` was for
        self._by_name: dict[str, CheckConfigBase] = {}
        self._check_names: tuple[str, ...] = ()
        self._owned_gauge, self._consistent = metrics.track_fleet()
        self._consistent.set(1)
        self._orphaned_gauge = metrics.track_orphaned()
        self._orphaned_gauge.set(0)

    # --- the scheduler's gate ----------------------------------------------------------

    def owns(self, check: str) -> bool:
        """Whether this replica runs `check` now (as its owner, or as an orphan)."""
        return self._leased(check) or check in self._orphaned

    def orphaned(self, check: str) -> bool:
        """Whether a result of `check` must stay local: this replica does not own it
        under a lease now (an orphan, or a run that ended after it let the check go)."""
        return not self._leased(check)

    def _leased(self, check: str) -> bool:
        return check in self._owned and (self._solo or self.clock.monotonic() < self._lease_until)

    def recording(self, sink: ResultSink, then: Callable[[str], None] | None = None) -> ResultSink:
        """`sink`, after noting when the run started (recorded at the next beat; an
        orphan's only once its observations are kept); `then` is told the check's name
        once `sink` is done (the fleet view's `ran`: one wrapper a run, not two)."""

        async def record(config: CheckConfigBase, result: CheckResult) -> None:
            name, now = config.name, self.clock.monotonic()
            if name in self._owned and (self._solo or now < self._lease_until):  # `_leased`
                self._ran[name] = now - result.duration_s
            elif name in self._orphaned:
                self._orphan_ran[name] = now - result.duration_s
            try:
                await sink(config, result)
            finally:
                if then is not None:
                    then(name)

        return record

    # --- beating ---------------------------------------------------------------------

    def reconfigured(self, config: MonitorConfig) -> None:
        """A reload: the next beat carries the new config's hash (and places new checks)."""
        me = self.membership.me
        self.membership.me = replace(me, config_hash=config_hash(config))

    async def run(self) -> None:
        """Beats every `beat_s` until cancelled; each beat renews the lease and moves
        checks as the live set changed."""
        while True:
            started = self.clock.monotonic()
            await self.step(started)
            await self.clock.sleep_until(started + self.beat_s)

    async def step(self, started: float) -> None:
        """One beat and what follows from it (the loop's body)."""
        try:
            await self._step(started)
        finally:
            if self._gained and self.scheduler is not None:
                self.scheduler.ownership_moved()
            self._gained = False

    async def _step(self, started: float) -> None:
        # A beat that hangs (a database that does not answer) waits no longer than the
        # lease holds: then this replica lets its checks go.
        wait_s = max(self.beat_s, self._lease_until - started)
        # The beat carries the runs since the last one, the fleet view's readings, and
        # (once every replica had the time to beat again after an outage) the claim of
        # replicas gone without leaving: one statement.
        now = self.clock.monotonic()
        runs = dict(self._ran)
        due, rows = self._readings()
        claim = (
            self._beating_since is not None
            and started - self._beating_since >= self.ttl_s + self.beat_s
        )
        gone: list[Replica] = []

        async def via(me: ReplicaId) -> list[Replica]:
            live, found = await self.book.beat_and_record(
                me, [(n, now - t) for n, t in runs.items()], rows,
                self.ttl_s if claim else None,
            )  # fmt: skip
            gone.extend(found)
            return live

        try:
            try:
                ok = await self._beat(started + wait_s, via)
            except BaseException:
                ok = False
                raise
            finally:
                self._carried(ok, runs, due)
            if ok is None:
                self.membership.unreachable(f"no answer within {wait_s:.1f}s")
            if gone:
                await self._gone(gone)
            if ok:
                await self._after_beat(started)
            else:
                self._cut_off()
        except StoreError as exc:  # the database went away after the beat: the next one
            log.warning("fleet_step_failed", replica=self.membership.me.id, error=str(exc))
        except Exception:  # ownership is retried at the next beat, never fatal
            log.exception("fleet_step_failed", replica=self.membership.me.id)

    def _readings(self) -> tuple[set[str], list[tuple[str, str]]]:
        """The fleet view's readings for this beat; a bug there costs the readings, never
        the beat."""
        if self.carried is None:
            return set(), []
        try:
            return self.carried.take()
        except Exception:
            log.exception("fleet_view_failed", replica=self.membership.me.id)
            return set(), []

    def _carried(self, ok: bool | None, runs: dict[str, float], due: set[str]) -> None:
        """After a beat: the runs it recorded are done with; the readings of one that
        failed (or may not have been taken) are due again."""
        if ok:
            for name, at in runs.items():
                if self._ran.get(name) == at:  # not run again meanwhile
                    del self._ran[name]
        elif due and self.carried is not None:
            self.carried.give_back(due)

    async def _beat(
        self, deadline: float, via: Callable[[ReplicaId], Awaitable[list[Replica]]]
    ) -> bool | None:
        """One beat, given up at `deadline` on the clock (None)."""
        beat = asyncio.ensure_future(self.membership.beat(via))
        timer = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait({beat, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (beat, timer):
                task.cancel()
            await asyncio.gather(beat, timer, return_exceptions=True)
        if beat.cancelled():
            return None
        return beat.result()

    async def leave(self) -> None:
        """A clean stop: records the last runs, then leaves the live set, so the replicas
        that take its checks over continue their phase."""
        try:
            await self._record()
        except StoreError as exc:
            log.warning("runs_not_recorded", replica=self.membership.me.id, error=str(exc))
        await self.membership.leave()

    def _cut_off(self) -> None:
        self._beating_since = None
        if self._solo:
            return
        # Its pending checks too: their previous owner let them go already (or lets them
        # go when its own lease runs out), so nobody would probe them otherwise.
        held = self._owned | set(self._pending)
        if held and self.clock.monotonic() >= self._lease_until:
            log.warning(
                "checks_orphaned", replica=self.membership.me.id, checks=len(held),
                reason="cannot reach the store to renew its lease: probing them on its own,"
                " holding their state changes until it is back",
            )  # fmt: skip
            self._orphaned |= held
            self._gained = True
            self._owned.clear()
            self._pending.clear()
            self._owned_gauge.set(0)
            self._orphaned_gauge.set(len(self._orphaned))

    async def _after_beat(self, started: float) -> None:
        me = self.membership.me.id
        now = self.clock.monotonic()
        live_replicas = self.membership.live
        live = tuple(r.id for r in live_replicas)
        if me not in live:  # the database took the beat but does not list it: not live
            self._live = ()
            self._cut_off()
            return
        continuous = bool(self._live) and (self._solo or now < self._lease_until)
        configs, names = self._configs()
        self._gained |= not continuous  # its lease back (or its first beat)
        if not continuous and self._owned:  # a beat that answered after the lease ran out
            self._orphaned |= self._owned
            self._owned.clear()
            self._pending.clear()
        if not continuous and self._orphaned:
            # Before the lease is renewed: if the store fails here, the next beat does
            # it again.
            await self._reconcile(configs, live)
        self._lease_until = started + self.lease_s
        if self._beating_since is None:
            self._beating_since = started
            self._returned = True
        self._gained |= live == (me,) and not self._solo  # its lease no longer matters
        self._solo = live == (me,)
        self._check_config(live_replicas)
        if live != self._live or names != self._names or not continuous:
            self._place(configs, live, continuous)
            self._live, self._names = live, names
        if stray := self._orphaned - set(self._pending):  # not its own any more
            await self._drop(configs, stray, "owned by another replica")
        await self._take(configs, now)
        if self._returned:
            await self._back()
            self._returned = False

    def _configs(self) -> tuple[dict[str, CheckConfigBase], tuple[str, ...]]:
        """The checks by name, and their names: worked out again only when the sequence
        `checks` returns is another one (a reload), not at every beat."""
        checks = self.checks()
        if checks is not self._checks:
            self._checks = checks
            self._by_name = {c.name: c for c in checks}
            self._check_names = tuple(self._by_name)
        return self._by_name, self._check_names

    def _place(
        self, configs: dict[str, CheckConfigBase], live: tuple[str, ...], continuous: bool
    ) -> None:
        """Works out what this replica gained and lost with a new live set."""
        me = self.membership.me.id
        mine = {name for name in configs if owner(name, live) == me}
        returning = self._started and not continuous  # its lease ran out: it is back
        if not continuous:  # its lease ran out (or it starts): it holds nothing now
            self._owned.clear()
            self._pending.clear()
        held = self._owned | set(self._pending)
        before = self._live if continuous else tuple(r for r in live if r != me)
        lost = held - mine
        for name in lost:
            self._owned.discard(name)
            self._pending.pop(name, None)
        for name, config in configs.items():
            if name not in mine:  # `/metrics` shows the checks this replica runs
                self.metrics.remove_check(config)
        settle_at = self.clock.monotonic() + SETTLE_BEATS * self.beat_s
        gained = mine - held
        for name in gained:
            previous = owner(name, before)
            if previous is not None and previous != me and previous in live:
                self._pending[name] = settle_at  # the other stops at its next beat
            elif returning and name not in self._orphaned:
                # After an outage of the whole fleet the others beat again soon: their
                # checks are theirs once they do, not this replica's because it was first.
                self._pending[name] = self.clock.monotonic() + self.ttl_s
            else:
                self._pending[name] = -math.inf  # its owner is gone (or it is new): now
        if lost or gained:
            log.info("checks_moved", replica=me, live=len(live), gained=len(gained),
                     lost=len(lost), owned=len(mine))  # fmt: skip

    async def _take(self, configs: dict[str, CheckConfigBase], now: float) -> None:
        """Starts owning the pending checks whose time has come: their state and
        incidents read back, their next run planned from the store's last run."""
        self._orphaned_gauge.set(len(self._orphaned))
        due = sorted(n for n, at in self._pending.items() if at <= now and n in configs)
        if not due:
            self._owned_gauge.set(len(self._owned))
            return
        runs = await self.book.last_runners(due)
        me = self.membership.me.id
        kept = [n for n in due if n in self._orphaned and runs.get(n, (0.0, me))[1] == me]
        if taken := [n for n in due if n in self._orphaned and n not in kept]:
            await self._drop(configs, taken, "another replica ran them meanwhile")
        for name in kept:  # nobody else ran it: what this replica saw stands
            del self._pending[name]
            self._orphaned.discard(name)
            self._owned.add(name)
            self._gained = True
            if (at := self._orphan_ran.pop(name, None)) is not None:
                self._ran[name] = at
            if self.held is not None and self.held(name):
                self._plan(name, now)  # its held changes are written by a run now
        if kept:
            log.info("orphans_kept", replica=me, checks=len(kept),
                     reason="no other replica ran them meanwhile")  # fmt: skip
        self._orphaned_gauge.set(len(self._orphaned))
        due = [n for n in due if n not in kept]
        if not due:
            self._owned_gauge.set(len(self._owned))
            return
        ages = {n: age for n, (age, _) in runs.items()}
        if self.adopt is not None:
            await self.adopt([configs[n] for n in due])
        overdue = []
        for name in due:
            del self._pending[name]
            self._owned.add(name)
            self._gained = True
            self.metrics.add_check(configs[name])
            interval = configs[name].interval_s
            age = ages.get(name)
            if age is not None and age < interval:
                self._plan(name, now + interval - age)
            elif self._started:
                overdue.append(name)
            # else: the first placement of a replica that starts: the start window
        overdue.sort(key=lambda n: (zlib.crc32(n.encode()), n))
        step = TAKEOVER_SPREAD_S / len(overdue) if overdue else 0.0
        for i, name in enumerate(overdue):
            self._plan(name, now + i * step)
        self._started = True
        self._owned_gauge.set(len(self._owned))

    async def _reconcile(self, configs: dict[str, CheckConfigBase], live: tuple[str, ...]) -> None:
        """Back after its lease ran out: the orphans another replica ran meanwhile (or
        that are not its own in the new live set) are dropped at once."""
        me = self.membership.me.id
        names = sorted(self._orphaned)
        runs = await self.book.last_runners(names)
        taken = {n for n in names if n in runs and runs[n][1] != me}
        if taken:
            await self._drop(configs, taken, "another replica ran them meanwhile")
        if gone := {n for n in names if n not in configs or owner(n, live) != me} - taken:
            await self._drop(configs, gone, "owned by another replica")

    async def _drop(
        self, configs: dict[str, CheckConfigBase], names: Iterable[str], reason: str
    ) -> None:
        """Forgets what this replica saw of orphans: the store's state is the truth."""
        names = sorted(set(names) & self._orphaned)
        if not names:
            return
        for name in names:
            self._orphaned.discard(name)
            self._orphan_ran.pop(name, None)
        self._orphaned_gauge.set(len(self._orphaned))
        log.info("orphans_dropped", replica=self.membership.me.id, checks=len(names),
                 reason=reason)  # fmt: skip
        if self.drop is not None:
            await self.drop([configs[n] for n in names if n in configs])

    def attach(self, scheduler: Scheduler) -> None:
        """The scheduler is running: the runs planned before it started move to it."""
        self.scheduler = scheduler
        plans, self._plans = self._plans, {}
        for name, at in plans.items():
            scheduler.reschedule(name, at, at)

    def _plan(self, name: str, at: float) -> None:
        if self.scheduler is None:
            self._plans[name] = at
        else:
            self.scheduler.reschedule(name, at, at)

    async def _record(self) -> None:
        """Records the runs since the last beat; kept for the next one if it fails."""
        if not self._ran:
            return
        now = self.clock.monotonic()
        runs = dict(self._ran)
        await self.book.record_runs(self.membership.me.id, [(n, now - t) for n, t in runs.items()])
        for name, at in runs.items():
            if self._ran.get(name) == at:
                del self._ran[name]

    def _check_config(self, live: Sequence[Replica]) -> None:
        mine = self.membership.me.config_hash
        differs = sorted(r.id for r in live if r.config_hash and r.config_hash != mine)
        if differs != self._differs:
            if differs:
                log.warning("config_differs", replica=self.membership.me.id, config_hash=mine,
                            replicas=differs)  # fmt: skip
            else:
                log.info("config_consistent", replica=self.membership.me.id, config_hash=mine)
            self._differs = differs
        self._consistent.set(0 if differs else 1)

    async def _gone(self, claimed: list[Replica]) -> None:
        """The replicas this beat claimed as gone without leaving (each is claimed by
        exactly one replica): a monitor-health incident for each one's host."""
        for replica in claimed:
            log.warning("replica_gone_without_leaving", replica=replica.id, host=replica.host,
                        silent_s=round(replica.age_s, 1))  # fmt: skip
            if self.incidents is None:
                continue
            key = gone_key(replica.host)
            text = (
                f"replica {replica.id} on {replica.host} stopped beating"
                f" {replica.age_s:.0f}s ago without leaving; its checks moved to the others"
            )
            try:
                await self.incidents.adopt([key])
                await self.incidents.monitor_health(
                    key, f"a monitor replica on {replica.host} is gone", text, [replica.id]
                )
            except StoreError as exc:  # another replica opened it first, or the store left
                log.warning("replica_gone_incident_failed", key=key, error=str(exc))

    async def _back(self) -> None:
        """This replica beats (again): a replica on its host is back."""
        if self.incidents is None:
            return
        key = gone_key(self.membership.me.host)
        await self.incidents.adopt([key])
        if self.incidents.open_for(key) is not None:
            back = f"replica {self.membership.me.id} beats on {self.membership.me.host}"
            await self.incidents.monitor_health(key, "", "", [], back=back)

    # --- what /readyz says ---------------------------------------------------------

    def detail(self) -> dict[str, object]:
        detail = self.membership.detail()
        owned = sum(1 for name in self._owned if self._leased(name))
        detail["owned_checks"] = owned
        detail["orphaned_checks"] = len(self._orphaned)
        detail["config_hash"] = self.membership.me.config_hash
        detail["config_differs"] = self._differs
        if not owned:
            if self._orphaned:
                why = (
                    f"cannot reach the store to renew its lease: probing the"
                    f" {len(self._orphaned)} checks it last owned, their state changes"
                    " held until it is back (dropped if another replica ran them)"
                )
            elif self.membership.failing or self.clock.monotonic() >= self._lease_until:
                why = "cannot reach the store to renew its lease: the other replicas run its checks"
            elif self._pending and not self._owned:
                why = "taking over its checks from the replica that held them"
            elif not self.checks():
                why = "no enabled checks"
            else:
                why = "every check is owned by another replica"
            detail["owns_nothing"] = why
        return detail
