"""Confirmation from another replica: before a check with `confirm: N` goes down, N - 1
other live replicas probe it too, through the shared database (`ConfirmationBook`).

The verdict, for the run that would make the check DOWN:

- confirmed: every replica asked saw it fail too. It goes down.
- refuted: one of them saw it up (or degraded: the asset answers there). It does not go
  down on this run; its streak is kept, so the next failing run asks again.
- unconfirmed: no other replica is live, the store is not shared (SQLite), an answer did
  not come within the check's timeout and `SLACK_S`, or the other replica could not look
  (its probe was blind) or declined (it has no such check, or a different definition of
  it). It goes down all the same: better to page than to miss.

Who saw what (replica, host, outcome, failure, message, time) goes into the result's
details under `confirmation`, from there into the incident's timeline, and the status
page shows a refuted failure as disputed.

The other side, `Confirmer.run`: every replica takes requests of the others (woken by
NOTIFY, polling every `POLL_S` in case a wake-up is lost, every `HEARD_POLL_S` while the
store says it hears them all), runs its own definition of the
check once and answers; requests and answers older than a day are pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry

from monitor.checks import CHECKS, CheckContext
from monitor.core.alertstate import AlertState, CheckState
from monitor.core.clock import Clock
from monitor.core.configtypes import CheckConfigBase
from monitor.core.errors import StoreError
from monitor.core.model import CheckResult, Outcome
from monitor.core.redact import redact
from monitor.engine.health import blind_cause
from monitor.engine.limits import Limiter
from monitor.engine.scheduler import CheckRunner
from monitor.metrics.exporter import Metrics
from monitor.store.confirmations import LISTENING, Answer, ConfirmationBook, Seen, Slot
from monitor.store.replicas import ReplicaId

__all__ = [
    "HEARD_POLL_S", "Confirmation", "Confirmer", "Verdict", "alone", "asks", "definition_hash",
    "held", "probe_once", "seen_in",
]  # fmt: skip

log = structlog.stdlib.get_logger(__name__)

SLACK_S = 5.0  # an answer may take the check's timeout and this long
POLL_S = 2.0  # how often a replica looks for requests and answers without a wake-up
# While the store says every wake-up is heard (`LISTENING`), requests are looked for
# this seldom: the poll is only the net for a wake-up lost as the connection came up.
HEARD_POLL_S = 30.0
RETENTION_S = 86400.0  # requests and answers are kept a day
PRUNE_EVERY_S = 3600.0
RETRY_S = 5.0  # how soon a lost LISTEN connection is opened again
MAX_ANSWERING = 16  # probes for other replicas in flight at once, at most

# Fields that do not change what a probe does: replicas may differ in them and still
# answer for each other.
_NOT_PROBING = frozenset(
    {"confirm", "description", "runbook", "tags", "group", "enabled", "interval", "retries",
     "retry_delay", "failure_threshold", "success_threshold", "depends_on", "dedup_key",
     "upstream_status"}
)  # fmt: skip


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    REFUTED = "refuted"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The verdict, why, and who saw what (this replica first)."""

    verdict: Verdict
    reason: str
    seen: tuple[dict[str, Any], ...] = ()

    def detail(self) -> dict[str, Any]:
        """What the result's details, the timeline and the status page keep."""
        return {"outcome": self.verdict.value, "reason": self.reason, "replicas": list(self.seen)}


def asks(config: CheckConfigBase, prev: CheckState, new: CheckState) -> bool:
    """Whether this run needs a confirmation: `confirm` above 1 and the check about to go
    down. Blind runs never get here (they make a check BLIND, never DOWN)."""
    return (
        (config.confirm or 1) > 1
        and new.state is AlertState.DOWN
        and prev.state is not AlertState.DOWN
    )


def held(prev: CheckState, new: CheckState) -> CheckState:
    """`new` with the state it would have left: a refuted failure changes no state, its
    streaks are kept (the next failing run asks again)."""
    if prev.state is AlertState.BLIND:  # sight was back: the belief from before it
        return _with(new, prev.seen or AlertState.UNKNOWN, prev.seen_since)
    return _with(new, prev.state, prev.since)


def _with(state: CheckState, alert: AlertState, since: datetime | None) -> CheckState:
    return CheckState(alert, since, state.ups, state.non_downs, state.bads, state.downs,
                      state.blinds)  # fmt: skip


def definition_hash(config: CheckConfigBase) -> str:
    """What a probe of the check does, hashed: its kind, name, target and settings, not
    how it is scheduled, alerted on or described. Secrets (the redaction layer's) are
    hashed as their mask: the table that carries the hash never holds a function of them."""
    data = redact(config.model_dump(mode="json", exclude=set(_NOT_PROBING)))
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seen_in(config: CheckConfigBase, result: CheckResult) -> Seen:
    """What a probe's result says to the replica that asked."""
    if blind_cause(config, result) is not None:
        return Seen.BLIND
    if result.outcome is Outcome.DOWN:
        return Seen.DOWN
    return Seen.DEGRADED if result.outcome is Outcome.DEGRADED else Seen.UP


def _mine(me: ReplicaId | None, result: CheckResult) -> dict[str, Any]:
    return {
        "replica": me.id if me else "this replica",
        "host": me.host if me else "",
        "seen": Seen.DOWN.value,
        "failure": result.failure.value if result.failure else None,
        "message": result.message,
        "at": result.started_at.isoformat(timespec="seconds"),
    }


def _theirs(answer: Answer) -> dict[str, Any]:
    return {
        "replica": answer.replica,
        "host": answer.host,
        "seen": answer.seen.value,
        "failure": answer.failure,
        "message": answer.message,
        "at": answer.at.isoformat(timespec="seconds"),
    }


def alone(result: CheckResult, why: str, me: ReplicaId | None = None) -> Confirmation:
    """Unconfirmed: nobody else could be asked."""
    return Confirmation(Verdict.UNCONFIRMED, why, (_mine(me, result),))


def verdict(
    result: CheckResult, me: ReplicaId | None, answers: list[Answer], needed: int, asked: int,
    within_s: float,
) -> Confirmation:  # fmt: skip
    """The verdict over the answers that came (`asked` replicas of the `needed` asked)."""
    seen = (_mine(me, result), *(_theirs(a) for a in answers))
    up = [a for a in answers if a.seen in (Seen.UP, Seen.DEGRADED)]
    if up:
        first = up[0]
        why = f"replica {first.replica} sees it {first.seen.value}: {first.message}"
        return Confirmation(Verdict.REFUTED, why, seen)
    downs = sum(a.seen is Seen.DOWN for a in answers)
    if downs >= needed:
        return Confirmation(Verdict.CONFIRMED, f"seen down from {downs + 1} replicas", seen)
    blind = [a for a in answers if a.seen is Seen.BLIND]
    if blind:
        why = f"replica {blind[0].replica} could not look: {blind[0].message}"
    elif len(answers) < asked:
        missing = asked - len(answers)
        why = f"no answer from {missing} other replica{'s' if missing > 1 else ''} within {within_s:g}s"
    else:
        why = f"only {asked} other replica{'s' if asked > 1 else ''} live; {needed} needed"
    return Confirmation(Verdict.UNCONFIRMED, why, seen)


ProbeFor = Callable[[str, str], Awaitable[tuple[CheckConfigBase, CheckResult] | None]]


class Confirmer:
    """Asks the other replicas (`__call__`, for the pipeline) and answers them (`run`).

    Args:
        book: the shared store.
        me: this replica.
        peers: how many other replicas are live now (`Membership.live`).
        probe: runs this replica's definition of a check once, given its name and the
            requester's definition hash; None when it has no such check or it differs.
    """

    def __init__(
        self,
        book: ConfirmationBook,
        me: ReplicaId,
        peers: Callable[[], int],
        clock: Clock,
        probe: ProbeFor,
        *,
        poll_s: float = POLL_S,
        slack_s: float = SLACK_S,
    ) -> None:
        self.book = book
        self.me = me
        self.peers = peers
        self.clock = clock
        self.probe = probe
        self.poll_s = poll_s
        self.slack_s = slack_s
        self._work = asyncio.Event()  # a request may be waiting for this replica
        self._heard = False  # the store said wake-ups are heard (and has not failed since)
        self._waiters: dict[int, asyncio.Event] = {}  # request → woken by its answers
        self._answering: set[asyncio.Task[None]] = set()

    # --- asking --------------------------------------------------------------------

    async def __call__(self, config: CheckConfigBase, result: CheckResult) -> Confirmation:
        needed = (config.confirm or 1) - 1
        others = self.peers()
        if others <= 0:
            return alone(result, "no other replica live", self.me)
        asked = min(needed, others)
        within_s = config.timeout_s + self.slack_s
        try:
            request = await self.book.request_confirmation(
                config.name, definition_hash(config), self.me.id, asked, within_s
            )
        except StoreError as exc:
            return alone(result, f"could not ask the other replicas: {exc}", self.me)
        log.info("confirmation_requested", check=config.name, request=request, replicas=asked)
        deadline = self.clock.monotonic() + within_s
        woken = self._waiters[request] = asyncio.Event()
        answers: list[Answer] = []
        try:
            while True:
                with contextlib.suppress(StoreError):  # the deadline still holds
                    answers = await self.book.confirmation_answers(request)
                refuted = any(a.seen in (Seen.UP, Seen.DEGRADED) for a in answers)
                if refuted or len(answers) >= asked or self.clock.monotonic() >= deadline:
                    break
                await self._wait(woken, min(deadline, self.clock.monotonic() + self.poll_s))
        finally:
            del self._waiters[request]
            with contextlib.suppress(StoreError):
                await self.book.close_confirmation(request)
        return verdict(result, self.me, answers, needed, asked, within_s)

    async def _wait(self, event: asyncio.Event, until: float) -> None:
        """Until `event` is set or the clock reaches `until`; clears the event."""
        waits = [
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self.clock.sleep_until(until)),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        event.clear()

    def notice(self, payload: str) -> None:
        """A wake-up from the database: a request to take, or answers to read."""
        kind, _, ident = payload.partition(":")
        if payload == LISTENING:  # heard from now on: what came before is looked for once
            self._heard = True
            self._work.set()
        elif kind == "request":
            self._work.set()
        elif kind == "answer" and ident.isdigit() and (w := self._waiters.get(int(ident))):
            w.set()

    # --- answering -----------------------------------------------------------------

    async def run(self) -> None:
        """Answers the other replicas until cancelled; never raises."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(), name="confirm-listen")
                tg.create_task(self._take(), name="confirm-take")
        finally:
            await self.stop()

    async def _listen(self) -> None:
        failing = False
        while True:
            try:
                await self.book.listen_confirmations(self.notice)
            except StoreError as exc:
                self._deaf()
                if not failing:
                    log.warning("confirmation_listen_failed", error=str(exc), retry_in_s=RETRY_S)
                failing = True
            except Exception:  # never past this loop: polling still answers
                self._deaf()
                log.exception("confirmation_listen_failed")
            await self.clock.sleep_until(self.clock.monotonic() + RETRY_S)

    def _deaf(self) -> None:
        """Wake-ups may be lost from now on: polled every `poll_s` again, at once."""
        self._heard = False
        self._work.set()

    async def _take(self) -> None:
        next_prune = self.clock.monotonic()
        while True:
            if self.clock.monotonic() >= next_prune:
                next_prune = self.clock.monotonic() + PRUNE_EVERY_S
                with contextlib.suppress(StoreError):
                    if pruned := await self.book.prune_confirmations(RETENTION_S):
                        log.info("confirmations_pruned", rows=pruned)
            try:
                await self._claim()
            except Exception:  # a store away: polled again
                log.debug("confirmation_claim_failed", exc_info=True)
            poll_s = HEARD_POLL_S if self._heard else self.poll_s
            await self._wait(self._work, self.clock.monotonic() + poll_s)

    async def _claim(self) -> None:
        while len(self._answering) < MAX_ANSWERING:
            slot = await self.book.claim_confirmation(self.me.id)
            if slot is None:
                return
            task = asyncio.create_task(self._answer(slot), name=f"confirm:{slot.check}")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _answer(self, slot: Slot) -> None:
        fields = {"check": slot.check, "request": slot.request, "requested_by": slot.requested_by}
        try:
            probed = await self.probe(slot.check, slot.definition)
            if probed is None:
                await self.book.decline_confirmation(slot.id, self.me.id)
                log.info("confirmation_declined", reason="no such check here, or it differs",
                         **fields)  # fmt: skip
                return
            config, result = probed
            seen = seen_in(config, result)
            failure = result.failure.value if result.failure else None
            await self.book.answer_confirmation(
                slot.id, self.me.id, self.me.host, seen, failure, result.message
            )
            log.info("confirmation_answered", seen=seen.value, **fields)
        except StoreError as exc:
            log.warning("confirmation_answer_failed", error=str(exc), **fields)
        except Exception:
            log.exception("confirmation_answer_failed", **fields)

    async def stop(self) -> None:
        """Cancels probes for others still in flight (their requesters time out)."""
        for task in list(self._answering):
            task.cancel()
        await asyncio.gather(*self._answering, return_exceptions=True)


async def probe_once(
    config: CheckConfigBase, session: aiohttp.ClientSession, clock: Clock, limiter: Limiter
) -> CheckResult:
    """One run of a check for another replica: no retries, its per-host limits, and
    metrics of its own (this replica's series count its own runs only)."""
    once = config.model_copy(update={"retries": 0})
    metrics = Metrics(CollectorRegistry())
    check = CHECKS[once.kind](once, CheckContext(session=session, clock=clock, metrics=metrics))

    async def ignore(_config: CheckConfigBase, _result: CheckResult) -> None:
        return None

    runner = CheckRunner(check, clock, limiter, metrics, ignore)
    try:
        return await runner.run_once()
    finally:
        check.close()
