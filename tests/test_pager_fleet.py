"""The pager and the outbox of replicas sharing one store, under a fake clock: a standby
writes what its incidents' changes mean, the leader alone advances and sends, and a step
written from a stale position or under a deposed token writes nothing."""

from __future__ import annotations

import asyncio
import inspect
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.incidents.manager import IncidentManager
from monitor.metrics.exporter import Metrics
from monitor.paging.leader import Leadership
from monitor.paging.outbox import Outbox
from monitor.paging.pager import Pager, from_payload
from tests.fakes import FakeClock, MemoryStore, settle
from tests.proc import wait_for
from tests.test_paging import ESCALATION, ONCALL, World, stop


class Replica(World):
    """One replica: its own incident cache, pager, outbox and part in the lease."""

    def __init__(self, name: str, clock: FakeClock, store: MemoryStore) -> None:
        metrics = Metrics(CollectorRegistry())
        super().__init__(clock, metrics, store)
        self.lead = Leadership(store, clock, metrics, name)
        self.manager = IncidentManager(store, clock, metrics, cooldown=timedelta(minutes=30))
        deliver = self.outbox.deliver
        types = {"slack": "slack", "pd": "pagerduty"}
        self.outbox = Outbox(store, clock, metrics, deliver, list(types), lead=self.lead)
        self.pager = Pager(store, clock, self.manager, self.outbox, ESCALATION, ONCALL, types,
                           lead=self.lead)  # fmt: skip

    def pages(self) -> list[tuple[float, tuple[str, ...]]]:
        return [(m, names) for m, n, e, names in self.sent if n == "pd" and e == "trigger"]


async def fleet(clock: FakeClock) -> tuple[Replica, Replica, list[asyncio.Task[None]]]:
    store = MemoryStore()
    a, b = Replica("a", clock, store), Replica("b", clock, store)
    await b.lead.tick()  # b leads, a stands by
    assert b.lead.leading
    assert not a.lead.leading
    tasks = await a.start() + await b.start()
    return a, b, tasks


async def test_a_standby_writes_the_escalation_and_the_leader_pages(clock) -> None:
    a, b, tasks = await fleet(clock)
    await a.fail()  # the check of a standby fails: it starts the escalation in the store,
    # with the pages of the steps due now (the post, the page to the primary)
    assert [s.step for s in await a.store.load_escalations()] == [3]
    pending = [i.key.split(":", 3)[3] for i in a.store.outbox.values()]
    assert pending == ["p0s0:slack", "p0s1:pd:alice"]
    assert a.sent == []
    assert b.sent == []  # not told yet
    b.lead.heard_change()  # the NOTIFY
    await settle()
    assert b.pages() == [(0, ("alice",))]
    await clock.advance(10 * 60)
    assert b.pages() == [(0, ("alice",)), (10, ("bob",))]
    assert a.sent == []  # a standby never sends
    await stop(tasks)


class Recorder:
    """The shared store as one replica sees it, each call it makes recorded by name."""

    def __init__(self, store: MemoryStore, calls: list[str]) -> None:
        self._store, self._calls = store, calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not inspect.iscoroutinefunction(found):
            return found

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return await found(*args, **kwargs)

        return call


def recorded(replica: Replica, calls: list[str]) -> None:
    """Records the store calls of `replica`'s incidents, pager and outbox, and each send
    as `SEND`."""
    recorder = Recorder(replica.store, calls)
    replica.pager.store = replica.outbox.store = recorder
    replica.manager.store = recorder
    deliver = replica.outbox.deliver

    async def send(notifier: str, payload: str) -> None:
        calls.append("SEND")
        await deliver(notifier, payload)

    replica.outbox.deliver = send


async def test_the_leader_sends_a_first_page_after_one_claim(clock) -> None:
    """The first page's path through the leader: told of it, one claim, the send. No
    reload of the incidents (the fleet view follows them) or the escalations before it."""
    a, b, tasks = await fleet(clock)
    a.manager.shared = b.manager.shared = True  # as with a fleet view
    await a.fail()
    calls: list[str] = []
    recorded(b, calls)
    b.lead.heard_change()
    await settle()
    assert b.pages() == [(0, ("alice",))]
    before = calls[: calls.index("SEND")]
    assert before.count("claim_due") == 1
    assert set(before) <= {"claim_due", "load_escalations"}, calls
    await stop(tasks)


async def test_a_replica_opens_and_starts_paging_in_few_store_calls(clock) -> None:
    """The opener's path to the first page: the open and the latest incident read (at
    once), the incident written, the escalation started (telling the leader in the same
    call). Its timeline notes come after, never before the escalation."""
    a, b, tasks = await fleet(clock)
    a.manager.shared = b.manager.shared = True  # as with a fleet view
    calls: list[str] = []
    recorded(a, calls)
    await a.fail()
    start = calls.index("swap_escalation")
    assert calls[:start] == ["open_incident", "latest_incident", "create_incident"], calls
    assert "notify_change" not in calls, calls  # told with the escalation's start
    assert "update_incident" in calls[start:], calls  # the notes, after
    await stop(tasks)


async def test_a_new_leader_advances_what_is_due_before_its_full_reload(clock) -> None:
    a, b, tasks = await fleet(clock)
    await a.fail()
    b.lead.heard_change()
    await settle()
    assert b.pages() == [(0, ("alice",))]
    b.lead.lost("killed")  # nobody leads while the secondary's page falls due
    await clock.advance(11 * 60)
    calls: list[str] = []
    recorded(a, calls)
    await a.lead.tick()  # a takes over
    await settle()
    assert a.pages() == [(11, ("bob",))]
    assert calls.index("swap_escalation") < calls.index("list_incidents"), calls
    await stop(tasks)


async def test_an_ack_through_a_standby_stops_the_leader_before_it_hears(clock) -> None:
    a, b, tasks = await fleet(clock)
    incident_id = await b.fail()
    await clock.advance(5 * 60)
    await a.manager.acknowledge(incident_id, "carol")  # through the other replica
    await settle()
    # b is not told; at minute 10 its step is written from a position no longer stored.
    await clock.advance(5 * 60)
    assert b.pages() == [(0, ("alice",))]
    [waiting] = await b.store.load_escalations()
    assert waiting.mode.value == "acknowledged"
    b.lead.heard_change()
    await settle()
    acks = [t for n, e, t in b.texts if e == "acknowledge"]
    assert acks == ["acknowledged by carol", "acknowledged by carol"]  # slack and pd, once
    await clock.advance(15 * 60)
    assert b.pages() == [(0, ("alice",))]
    assert a.sent == []
    await stop(tasks)


async def test_a_deposed_leader_neither_advances_nor_sends(clock) -> None:
    a, b, tasks = await fleet(clock)
    await b.fail()
    assert b.pages() == [(0, ("alice",))]
    # a takes the lease while b still believes it leads (b's renewal has not run yet).
    await a.lead.tick()
    assert a.lead.leading
    assert b.lead.leading
    await clock.advance(10 * 60)
    assert b.pages() == [(0, ("alice",))]  # fenced out: its step wrote nothing
    assert a.pages() == [(10, ("bob",))]  # the new leader runs it, on time
    pending = [i for i in a.store.outbox.values() if i.status.value == "pending"]
    assert pending == []
    keys = [from_payload(i.payload).idempotency_key for i in a.store.outbox.values()]
    assert len(keys) == len(set(keys))
    await stop(tasks)


async def test_the_leader_reloads_on_its_own_when_no_change_is_told(clock) -> None:
    """The safety net: a change whose NOTIFY was lost is picked up within `reload_s`."""
    store = MemoryStore()
    lead = Leadership(store, clock, Metrics(CollectorRegistry()), "a", tick_s=0.001, reload_s=5)
    woken: list[int] = []
    lead.subscribe(lambda: woken.append(lead.heard))
    task = asyncio.create_task(lead.run())
    try:
        await wait_for(lambda: lead.leading, what="the lease")
        assert lead.heard == 0
        await clock.advance(5)
        await wait_for(lambda: lead.heard == 1, what="the periodic reload")
        assert woken[-1] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_new_leader_knows_the_outages_its_predecessor_reported(clock) -> None:
    a, b, tasks = await fleet(clock)
    assert not a.outbox.in_outage("pd")
    since = clock.now().isoformat()
    await b.store.kv_set("outbox:outage:pd", f'{{"since": "{since}", "reason": "HTTP 503"}}')
    await a.lead.tick()  # a takes over; its outbox was started before the outage
    await settle()
    assert a.outbox.in_outage("pd")  # so the outage is not alerted twice
    await stop(tasks)


async def test_an_opening_heard_after_a_takeover_starts_the_same_escalation(clock) -> None:
    """The new leader's reconciliation starts the escalation of an incident opened while
    it took over; the opening, heard a moment later, names the same escalation (same
    epoch, so the same keys) instead of paging a second time under other keys."""
    store = MemoryStore()
    b = Replica("b", clock, store)
    await b.lead.tick()
    await b.manager.load()
    incident_id = await b.fail()  # heard by the pager, not handled yet
    await clock.advance(3)
    await b.pager.load()  # the takeover's reconciliation starts it
    [started] = await store.load_escalations()
    await store.commit_escalation(incident_id, None, [])  # its one pass already ran out
    b.pager._states.clear()
    change = b.pager._changes.get_nowait()
    await b.pager._handle(change)
    [again] = await store.load_escalations()
    assert again.epoch == started.epoch
