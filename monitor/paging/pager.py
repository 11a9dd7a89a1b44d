"""Paging: incidents → escalation steps → notifications in the outbox.

The `Pager` hears every incident change (through a queue, so the incident path never
waits on it) and keeps one escalation per incident in the store. Running a step writes
the step's notifications and the escalation's next position in one transaction; the
idempotency key of a notification is made of the incident, the escalation's start, the
step and pass, the notifier and the person, so a step run again after a crash pages
nobody twice. On start it reconciles: an open incident that should be paging and has no
escalation gets one, starting from when the incident opened.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

import structlog

from monitor.core.clock import Clock, sleep_or_wake
from monitor.core.model import (
    EscalationMode,
    EscalationState,
    Incident,
    IncidentEvent,
    IncidentStatus,
    OutboxItem,
    OutboxStatus,
    Severity,
)
from monitor.core.redact import redact_text
from monitor.incidents.manager import HEALTH_SOURCE, IncidentManager
from monitor.notifiers import NOTIFIERS
from monitor.notifiers.base import Notification, NotificationEvent, Recipient
from monitor.paging.escalation import Action, EscalationConfig, Policy, due_actions, freeze, thaw
from monitor.paging.leader import Leadership
from monitor.paging.oncall import OnCallConfig, Person, handoffs, on_call, person
from monitor.paging.outbox import Outbox, incident_of
from monitor.store import Store

__all__ = ["Pager", "from_payload", "page_notifiers", "to_payload"]

log = structlog.stdlib.get_logger(__name__)

_REVERTIBLE = (Severity.P0, Severity.P1)  # pages that say what reverting means


# Changes that start an escalation when none runs and the incident should page.
_STARTS = frozenset({
    IncidentEvent.OPENED, IncidentEvent.TRIAGED, IncidentEvent.SEVERITY_SET,
    IncidentEvent.SEVERITY_RAISED, IncidentEvent.UNSUPPRESSED, IncidentEvent.RETRIGGERED,
})  # fmt: skip
# What a page superseded by an acknowledgement (or a resolve) was: messages to a person.
_PAGES = frozenset({NotificationEvent.TRIGGER, NotificationEvent.REASSIGN})


def to_payload(n: Notification) -> str:
    """The outbox's copy of a notification; what people read in it is redacted
    (`monitor.core.redact`), the keys channels need are kept as they are."""
    doc = asdict(n)
    for key in ("title", "text", "runbook", "actor"):
        if isinstance(doc[key], str):
            doc[key] = redact_text(doc[key])
    doc["links"] = {label: redact_text(url) for label, url in n.links.items()}
    doc["created_at"] = n.created_at.isoformat()
    doc["recipients"] = [asdict(r) for r in n.recipients]
    return json.dumps(doc)


def from_payload(payload: str) -> Notification:
    doc = json.loads(payload)
    doc["event"] = NotificationEvent(doc["event"])
    doc["severity"] = Severity(doc["severity"]) if doc.get("severity") else None
    doc["recipients"] = tuple(Recipient(**r) for r in doc["recipients"])
    doc["created_at"] = datetime.fromisoformat(doc["created_at"])
    return Notification(**doc)


@dataclass(frozen=True, slots=True)
class _Change:
    incident: Incident
    event: IncidentEvent
    actor: str


class Pager:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        incidents: IncidentManager,
        outbox: Outbox,
        escalation: EscalationConfig,
        oncall: OnCallConfig | None,
        notifier_types: Mapping[str, str],
        runbook_of: Callable[[Incident], str | None] = lambda _incident: None,
        drill_duration: timedelta = timedelta(minutes=15),
        lead: Leadership | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.incidents = incidents
        self.outbox = outbox
        self.config = escalation
        self.oncall = oncall
        self.notifier_types = dict(notifier_types)
        self.runbook_of = runbook_of
        self.drill_duration = drill_duration
        self._states: dict[int, EscalationState] = {}
        self._changes: asyncio.Queue[_Change] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._next_handoff: tuple[datetime, str] | None = None
        # In a fleet (`lead`): every replica writes what its incidents' changes mean for
        # paging; only the lease holder keeps escalations in memory, runs their timers,
        # handoffs and drills. None: this daemon alone, always the leader.
        self.lead = lead
        self._led = False  # whether the last pass ran as the leader
        self._heard_seen = 0  # `lead.heard` when the state was last reloaded
        self._stale = False  # the store's escalations differ from ours: reload them
        self._untold = False  # changes handled since the others were last told
        # Timeline lines of escalations started (incident, event, text), written once the
        # changes at hand are paged: a burst of failures is not paged one note at a time.
        self._notes: list[tuple[int, str, str]] = []
        incidents.listeners.append(self._heard)
        if lead is not None:
            lead.subscribe(self._wake.set)

    @property
    def page_via(self) -> list[str]:
        return page_notifiers(self.config, list(self.notifier_types))

    async def _heard(self, incident: Incident, event: IncidentEvent, actor: str) -> None:
        self._changes.put_nowait(_Change(incident, event, actor))
        self._wake.set()

    # --- start-up --------------------------------------------------------------------

    async def load(self) -> None:
        """Takes the escalations back and reconciles them with the open incidents. In a
        fleet, the leader alone does, when it takes the lease."""
        if self.lead is not None and not self.lead.leading:
            self._states = {}
            return
        self._states = {s.incident_id: s for s in await self.store.load_escalations()}
        open_ids = {i.id for i in self.incidents.open_incidents}
        for incident_id in [i for i in self._states if i not in open_ids]:
            if await self._open_elsewhere(incident_id) is None:
                await self._stop(incident_id)  # resolved while we were down
        for incident in self.incidents.open_incidents:
            if incident.id not in self._states:
                if self._should_page(incident):
                    since = incident.updated_at if incident.reopened else incident.opened_at
                    # In a fleet, stamped by another replica's clock: never in the future.
                    at = since if self.lead is None else min(since, self.clock.now())
                    await self._start(incident, at, since)
                elif incident.status is IncidentStatus.ACKNOWLEDGED:
                    await self._wait_for_ack(
                        incident, incident.acknowledged_at or incident.updated_at
                    )

    def _should_page(self, incident: Incident) -> bool:
        return (
            incident.status is IncidentStatus.TRIGGERED
            and incident.severity is not None
            and incident.suppressed is None
            and self._policy(incident) is not None
        )

    def _health_targets(self, incident: Incident, targets: list[str]) -> list[str]:
        """A monitor-health incident's lifecycle goes where its policy posted, and to the
        paging notifiers only if the policy pages: nothing to resolve where nothing began."""
        chosen = self._policy(incident)
        steps = chosen[1].steps if chosen else []
        posted = [s.post for s in steps if s.post is not None]
        paged = self.page_via if any(s.page is not None for s in steps) else []
        return [t for t in targets if t in posted or t in paged] or posted

    def _policy(self, incident: Incident) -> tuple[str, Policy] | None:
        """Monitor-health incidents follow `escalation.monitor_health`; others their
        severity's policy."""
        if incident.source == HEALTH_SOURCE:
            return self.config.health_policy(self.notifier_types)
        if incident.severity is None:
            return None
        return self.config.policy_for(incident.severity)

    # --- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            self._wake.clear()
            while not self._changes.empty():
                self._untold = True
                await self._handle(self._changes.get_nowait())
            if self.lead is not None:
                if self._untold:
                    await self._tell()  # the leader hears of it at once
                await self._write_notes()
                if not await self._leading():
                    await sleep_or_wake(self.clock, self._wake, None)
                    continue
            await self._write_notes()
            now = self.clock.now()
            await self._advance_due(now)
            await self._handoff(now)
            drills = [i for i in self.incidents.open_incidents if i.drill]
            for drill in drills:
                if drill.opened_at + self.drill_duration <= now:
                    await self.incidents.resolve(drill.id, "monitor", "the drill is over")
            if not self._changes.empty():
                continue
            upcoming = [s.next_at for s in self._states.values()]
            upcoming += [d.opened_at + self.drill_duration for d in drills if d.is_open]
            if self._next_handoff is not None:
                upcoming.append(self._next_handoff[0])
            delay = (min(upcoming) - self.clock.now()).total_seconds() if upcoming else None
            await sleep_or_wake(self.clock, self._wake, delay)

    async def _leading(self) -> bool:
        """In a fleet: whether this replica leads now. Taking the lease reloads and
        reconciles everything; a change heard from another replica reloads the open
        incidents and the escalations."""
        assert self.lead is not None  # noqa: S101  called in a fleet only
        heard = self.lead.heard != self._heard_seen
        self._heard_seen = self.lead.heard
        if not self.lead.leading:
            if self._led:
                log.info("pager_standing_by", replica=self.lead.me)
            self._led = False
            self._states = {}
            if heard and not self.incidents.shared:
                await self.incidents.refresh()
            return False
        if not self._led:
            # What is due first (a page late by a takeover is late for everyone), from
            # the escalations alone; then the full reload and reconciliation.
            self._led = True
            self._stale = False
            self._states = {s.incident_id: s for s in await self.store.load_escalations()}
            await self._advance_due(self.clock.now())
            await self.incidents.refresh()
            await self.load()
            log.info("pager_leading", replica=self.lead.me, escalations=len(self._states))
        elif heard or self._stale:
            # With a fleet view (`incidents.shared`) the open incidents follow the
            # store's change feed already: only the escalations are read again.
            if not self.incidents.shared:
                await self.incidents.refresh()
            self._states = {s.incident_id: s for s in await self.store.load_escalations()}
            self._stale = False
        return True

    async def _advance_due(self, now: datetime) -> None:
        """Every escalation step due by `now`; their timeline lines once all are written."""
        notes: list[tuple[int, str, str]] = []
        for incident_id, state in list(self._states.items()):
            if state.next_at <= now:
                notes += await self._advance(incident_id, state, now)
        if notes:
            await self.outbox.export_depth()
        for incident_id, event, text in notes:
            await self.incidents.note(incident_id, event, text)

    async def _open_elsewhere(self, incident_id: int) -> Incident | None:
        """In a fleet, an incident not (yet) in our cache may have been opened on another
        replica a moment ago: the store says. Alone: our cache is the truth."""
        if self.lead is None:
            return None
        incident = await self.store.get_incident(incident_id)
        return incident if incident is not None and incident.is_open else None

    async def _handle(self, change: _Change) -> None:
        incident, event = change.incident, change.event
        if event in _STARTS:
            known = incident.id in self._states and (self.lead is None or self.lead.leading)
            if not known and self._should_page(incident):
                # In a fleet, an opening is named by when it opened: the leader that takes
                # over meanwhile starts the same escalation (same keys), not a second one.
                opened = self.lead is not None and event is IncidentEvent.OPENED
                await self._start(
                    incident, self.clock.now(), incident.opened_at if opened else None
                )
        elif event is IncidentEvent.REOPENED:
            await self._post(
                incident, NotificationEvent.TRIGGER, f"reopened: {incident.message}", "reopened"
            )
        elif event is IncidentEvent.SUPPRESSED:
            await self._stop(incident.id)
        elif event is IncidentEvent.ACKNOWLEDGED:
            await self._stop(incident.id)
            await self._wait_for_ack(incident, self.clock.now())
            await self._post(
                incident,
                NotificationEvent.ACKNOWLEDGE,
                f"acknowledged by {change.actor}",
                "acknowledged",
                change.actor,
            )
        elif event is IncidentEvent.RESOLVED:
            await self._stop(incident.id)
            await self._post(
                incident,
                NotificationEvent.RESOLVE,
                f"resolved by {change.actor}",
                "resolved",
                change.actor,
            )
        elif event is IncidentEvent.ASSIGNED and incident.assignee:
            await self._reassigned(incident, change.actor)

    async def _handoff(self, now: datetime) -> None:
        """At each handoff the channel hears who is on call and what is open."""
        if self.oncall is None or self.config.channel is None:
            return
        if self._next_handoff is not None and self._next_handoff[0] <= now:
            at, rotation = self._next_handoff
            current = on_call(self.oncall, at)
            lines = [
                f"On call now ({rotation}): primary {current.primary.name if current.primary else 'nobody'}, "
                f"secondary {current.secondary.name if current.secondary else 'nobody'}."
            ]
            open_ = self.incidents.open_incidents
            lines += [
                f"#{i.id} {i.severity or 'untriaged'} {i.status.value}: {i.title} (owner: "
                f"{i.assignee or (current.primary.name if current.primary else 'nobody')})"
                for i in open_
            ] or ["No open incidents."]
            key = f"handoff:{rotation}:{int(at.timestamp())}"
            n = Notification(
                idempotency_key=key, event=NotificationEvent.HANDOFF, incident_id=None, dedup_key=None,
                title=f"Handoff: {rotation}", text="\n".join(lines), severity=None, status=None,
                check=None, created_at=now,
            )  # fmt: skip
            await self.outbox.enqueue([self._item(key, self.config.channel, n)])
        if self._next_handoff is None or self._next_handoff[0] <= now:
            upcoming = handoffs(self.oncall, now, now + timedelta(days=8))
            self._next_handoff = upcoming[0] if upcoming else None

    # --- escalations -------------------------------------------------------------------

    async def _start(self, incident: Incident, at: datetime, since: datetime | None = None) -> None:
        """Starts paging from `at`; `since` (default `at`) names the escalation (its epoch,
        in every page's key)."""
        chosen = self._policy(incident)
        if chosen is None:
            return
        name, policy = chosen
        state = EscalationState(
            incident.id, freeze(name, policy), 0, 0, at, epoch=int((since or at).timestamp())
        )
        if self.lead is not None:
            await self._start_shared(incident, name, policy, state)
            return
        self._states[incident.id] = state
        await self.store.commit_escalation(incident.id, state, [])
        log.info("escalation_started", incident_id=incident.id, policy=name)
        self._wake.set()

    async def _start_shared(
        self, incident: Incident, name: str, policy: Policy, state: EscalationState
    ) -> None:
        """In a fleet, whoever opened it writes it, with the pages of the steps due now
        in the same transaction (unfenced: only the lease holder claims and sends them),
        and tells the others at once: the leader's part of a first page is hearing of it,
        claiming it and sending it. An escalation that runs already (started by another
        replica) is kept as it is. One whose policy ends with these steps is stored at
        its end, for the leader to close."""
        assert self.lead is not None  # noqa: S101  called in a fleet only
        actions, following = due_actions(state, policy, max(state.next_at, self.clock.now()))
        items: list[OutboxItem] = []
        notes: list[str] = []
        for action in actions:
            made, note = self._items_for(incident, action, state.epoch)
            items += made
            notes.append(note)
        stored = following
        if stored is None:
            stored = replace(state, step=len(policy.steps), pass_no=policy.repeat)
        # With pages, the leader is told in the same statement (one round trip less).
        tell = self.lead.me if items else None
        if not await self.store.swap_escalation(incident.id, None, stored, items, None, tell=tell):
            self._stale = True
            return
        if self.lead.leading:
            self._states[incident.id] = stored
        if items:
            self._untold = False
            self.outbox.wake(sorted({i.notifier for i in items}))
        log.info("escalation_started", incident_id=incident.id, policy=name)
        self._wake.set()
        self._notes += [(incident.id, "notification", note) for note in notes]

    async def _write_notes(self) -> None:
        """One at a time, and none while a change waits (its page comes first)."""
        while self._notes and self._changes.empty():
            incident_id, event, text = self._notes[0]
            await self.incidents.note(incident_id, event, text)
            del self._notes[0]

    async def _tell(self) -> None:
        """Tells the other replicas (the leader) that paging state changed."""
        assert self.lead is not None  # noqa: S101  called in a fleet only
        self._untold = False
        await self.lead.poke()

    async def _stop(self, incident_id: int) -> None:
        # In a fleet the escalation may have been started on another replica: the store
        # is told in any case.
        if self._states.pop(incident_id, None) is not None or self.lead is not None:
            await self.store.commit_escalation(incident_id, None, [])

    async def _wait_for_ack(self, incident: Incident, acked_at: datetime) -> None:
        timeout = self.config.ack_timeout
        if timeout <= timedelta(0) or incident.severity is None:
            return
        chosen = self._policy(incident)
        if chosen is None:
            return
        state = EscalationState(
            incident.id, freeze(*chosen), 0, 0, acked_at + timeout,
            mode=EscalationMode.ACKNOWLEDGED, epoch=int(acked_at.timestamp()),
        )  # fmt: skip
        if self.lead is None or self.lead.leading:
            self._states[incident.id] = state
        await self.store.commit_escalation(incident.id, state, [])

    async def _advance(
        self, incident_id: int, state: EscalationState, now: datetime
    ) -> list[tuple[int, str, str]]:
        """Runs the escalation's steps due by `now`; the timeline lines they call for
        (incident, event, text), for the caller to write once every due step is out."""
        incident = next((i for i in self.incidents.open_incidents if i.id == incident_id), None)
        incident = incident or await self._open_elsewhere(incident_id)
        if incident is None:
            await self._stop(incident_id)
            return []
        _, policy = thaw(state.policy)
        if state.mode is EscalationMode.ACKNOWLEDGED:
            # Acknowledged, not resolved, for ack_timeout: paging starts again.
            if self.lead is None:
                await self._stop(incident_id)
            elif not await self._swap(incident_id, state, None, []):
                return []
            self._states.pop(incident_id, None)
            after = self.config.ack_timeout
            await self.incidents.retrigger(
                incident_id,
                f"acknowledged {int(after.total_seconds() // 60)} min ago and not resolved: paging again",
            )
            return []
        actions, following = due_actions(state, policy, now)
        epoch = state.epoch
        items: list[OutboxItem] = []
        notes: list[str] = []
        for action in actions:
            made, note = self._items_for(incident, action, epoch)
            items += made
            notes.append(note)
        if not await self._swap(incident_id, state, following, items):
            return []
        if following is None:
            self._states.pop(incident_id, None)
        else:
            self._states[incident_id] = following
        if items:
            self.outbox.wake(sorted({i.notifier for i in items}))
        lines = [(incident_id, "notification", note) for note in notes]
        if following is None:
            lines.append((incident_id, "escalation_done", "the escalation policy ran out of steps"))
        return lines

    async def _swap(
        self,
        incident_id: int,
        state: EscalationState,
        following: EscalationState | None,
        items: list[OutboxItem],
    ) -> bool:
        """Writes an escalation's step. In a fleet, only from the position this leader
        knows and under its fencing token: an escalation stopped or moved by another
        replica, or a deposed leader, writes nothing (the state is reloaded)."""
        if self.lead is None:
            await self.store.commit_escalation(incident_id, following, items)
            return True
        token = self.lead.token
        if token is not None and await self.store.swap_escalation(
            incident_id, state, following, items, token
        ):
            return True
        self._stale = True
        self._states.pop(incident_id, None)
        return False

    def _items_for(
        self, incident: Incident, action: Action, epoch: int
    ) -> tuple[list[OutboxItem], str]:
        base = f"incident:{incident.id}:{epoch}:{action.key}"
        if action.kind == "post":
            notifier = str(action.target)
            n = self._notification(incident, NotificationEvent.TRIGGER, base, (), incident.message)
            return [self._item(f"{base}:{notifier}", notifier, n)], f"posted to {notifier}"
        recipients, label = self._resolve(action.target)
        if not recipients:
            channel = self.config.channel
            text = f"nobody to page as {label}: {incident.title}"
            if channel is None:
                return [], text
            n = self._notification(incident, NotificationEvent.TRIGGER, base, (), text)
            return [self._item(f"{base}:{channel}", channel, n)], text
        items = []
        for recipient in recipients:
            n = self._notification(
                incident,
                NotificationEvent.TRIGGER,
                f"{base}:{recipient.name}",
                (recipient,),
                incident.message,
            )
            items += [self._item(f"{base}:{via}:{recipient.name}", via, n) for via in self.page_via]
        names = ", ".join(r.name for r in recipients)
        return items, f"paged {names} ({label}) via {', '.join(self.page_via)}"

    def _resolve(self, target: str | tuple[str, ...]) -> tuple[list[Recipient], str]:
        """Who a page step reaches, resolved now (not when the incident opened)."""
        if self.oncall is None:
            return [], str(target)
        if isinstance(target, tuple):
            people = [person(self.oncall, name) for name in target]
            return [_recipient(p) for p in people if p is not None], ", ".join(target)
        now = self.clock.now()
        current = on_call(self.oncall, now)
        if target == "primary":
            found = [current.primary] if current.primary else []
        elif target == "secondary":
            found = [current.secondary] if current.secondary else []
        else:
            rotation = next((r for r in self.oncall.rotations if r.name == current.rotation), None)
            found = [
                p
                for p in (person(self.oncall, m) for m in (rotation.members if rotation else []))
                if p
            ]
        label = f"{target} of {current.rotation}" if current.rotation else str(target)
        return [_recipient(p) for p in found], label

    async def _post(
        self,
        incident: Incident,
        event: NotificationEvent,
        text: str,
        what: str,
        actor: str | None = None,
    ) -> None:
        """Posts a lifecycle change to the channel, to the notifiers that page for the
        incident and to those that track incidents.

        On an acknowledgement or a resolve, pages of the incident still waiting for a
        notifier (it was unreachable) are not sent any more: the message says which were
        held back ("while this channel was unreachable"), and so does the timeline."""
        targets = [self.config.channel] if self.config.channel else []
        targets += [n for n in self.page_via if n in self.notifier_types and n not in targets]
        # Types that follow every incident's life (`Notifier.follows`), even when they
        # are not in `page_via`; every notifier in `page_via` follows the incidents it pages.
        targets += [
            n for n, t in self.notifier_types.items() if event in _follows(t) and n not in targets
        ]
        if incident.source == HEALTH_SOURCE:
            targets = self._health_targets(incident, targets)
        stamp = int(self.clock.now().timestamp())
        base = f"incident:{incident.id}:{what}:{stamp}"
        superseded: list[int] = []
        items = []
        notes = []
        for target in targets:
            held = []
            if event in (NotificationEvent.ACKNOWLEDGE, NotificationEvent.RESOLVE):
                held = await self._held_pages(incident.id, target, event)
            body = text
            if held:
                superseded += [item.id for item, _ in held]
                lines = [f"{_hhmm(n.created_at)} {_page_label(n)}" for _, n in held]
                body += (
                    f"\nWhile this channel was unreachable, {_count(len(held), 'page')} "
                    f"not sent (now {what}):\n" + "\n".join(lines)
                )
                notes.append(
                    f"not sent via {target} (unreachable until {what}): "
                    + "; ".join(lines)
                    + f"; summarized in the {event.value} message"
                )
            n = self._notification(incident, event, base, (), body, actor)
            items.append(self._item(f"{base}:{target}", target, n))
        if superseded:
            await self.store.settle_notifications(superseded, OutboxStatus.SUPERSEDED, items)
            self.outbox.wake(targets)
            await self.outbox.export_depth()
            log.info("pages_superseded", incident_id=incident.id, count=len(superseded))
        elif items:
            await self.outbox.enqueue(items)
        for note in notes:
            await self.incidents.note(incident.id, "notification_superseded", note)

    async def _held_pages(
        self, incident_id: int, notifier: str, event: NotificationEvent
    ) -> list[tuple[OutboxItem, Notification]]:
        """Pages of the incident still waiting for `notifier` (none in flight)."""
        held = []
        for item in await self.store.pending_notifications(notifier):
            if incident_of(item.key) != incident_id or item.id in self.outbox.in_flight:
                continue
            try:
                n = from_payload(item.payload)
            except (ValueError, KeyError, TypeError):
                continue
            if not n.recipients or n.event not in _PAGES:
                continue  # a post to a channel still tells the story in order
            if event is NotificationEvent.ACKNOWLEDGE and n.event is not NotificationEvent.TRIGGER:
                continue  # the new owner still hears of an acknowledged incident
            held.append((item, n))
        return held

    async def _reassigned(self, incident: Incident, actor: str) -> None:
        assignee = (
            person(self.oncall, incident.assignee) if self.oncall and incident.assignee else None
        )
        await self._post(
            incident,
            NotificationEvent.REASSIGN,
            f"reassigned to {incident.assignee} by {actor}",
            "reassigned",
            actor,
        )
        if assignee is None:
            return
        stamp = int(self.clock.now().timestamp())
        base = f"incident:{incident.id}:assigned:{stamp}"
        n = self._notification(
            incident,
            NotificationEvent.REASSIGN,
            base,
            (_recipient(assignee),),
            f"you now own: {incident.title}",
            actor,
        )
        await self.outbox.enqueue([self._item(f"{base}:{via}", via, n) for via in self.page_via])
        await self.incidents.note(
            incident.id,
            "notification",
            f"paged {assignee.name} (new owner) via {', '.join(self.page_via)}",
        )

    def _notification(self, incident: Incident, event: NotificationEvent, key: str, recipients: Sequence[Recipient],
                      text: str, actor: str | None = None) -> Notification:  # fmt: skip
        links: dict[str, str] = {}
        good = incident.last_good
        if event is NotificationEvent.TRIGGER and good and incident.severity in _REVERTIBLE:
            # P0/P1: say what reverting means, right in the page.
            text = f"{text}\nLast known good: {good.get('text', '')}"
            if isinstance(url := good.get("url"), str):
                links["Changes since last good"] = url
        return Notification(
            idempotency_key=key, event=event, incident_id=incident.id, dedup_key=incident.key,
            title=incident.title, text=text, severity=incident.severity, status=incident.status.value,
            check=incident.check, recipients=tuple(recipients), runbook=self.runbook_of(incident),
            links=links, actor=actor, created_at=self.clock.now(), drill=incident.drill,
        )  # fmt: skip

    def _item(self, key: str, notifier: str, n: Notification) -> OutboxItem:
        now = self.clock.now()
        return OutboxItem(0, key, notifier, to_payload(replace(n, idempotency_key=key)), now, now)


def page_notifiers(config: EscalationConfig, notifiers: Sequence[str]) -> list[str]:
    """The notifiers that page a person: `page_via`, or every one but the channel."""
    return config.page_via or [n for n in notifiers if n != config.channel] or list(notifiers)


def _page_label(n: Notification) -> str:
    whom = ", ".join(r.name for r in n.recipients)
    return f"page to {whom}" if n.event is NotificationEvent.TRIGGER else f"{whom} as new owner"


def _hhmm(at: datetime) -> str:
    return f"{at:%H:%M:%S} UTC"


def _count(n: int, noun: str) -> str:
    return f"1 {noun} was" if n == 1 else f"{n} {noun}s were"


def _follows(notifier_type: str) -> frozenset[NotificationEvent]:
    cls = NOTIFIERS.get(notifier_type)
    return cls.follows if cls is not None else frozenset()


def _recipient(p: Person) -> Recipient:
    return Recipient(p.name, p.contacts)
