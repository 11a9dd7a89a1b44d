"""The Store contract suite (`tests/test_store_contract.py`) on the PostgreSQL store, against
a real server, each test in a schema of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.store.postgres import PostgresStore

# Re-exported: pytest collects them here, where `store` is the PostgreSQL one.
from tests.test_store_contract import (  # noqa: F401
    test_a_closed_store_refuses_to_be_used,
    test_a_deposed_token_is_fenced_out_of_claims_and_escalations,
    test_an_escalation_starts_with_its_first_pages_in_order,
    test_check_states_round_trip_and_are_deleted,
    test_due_heads_are_claimed_in_one_call_under_the_token,
    test_escalations_commit_with_their_pages_once,
    test_escalations_swap_only_from_what_is_stored,
    test_history_adds_minutes_and_derives_hours,
    test_history_keeps_any_check_name_and_exact_sums,
    test_history_retention_and_deletion,
    test_history_totals_add_hours_up_per_period,
    test_incidents_get_ids_and_round_trip,
    test_latest_and_listing,
    test_one_open_incident_per_key,
    test_public_notes_round_trip,
    test_repeat_counts_the_latest_entry_among_events,
    test_resolved_incidents_since_a_time,
    test_run_counts_sum_the_checks_over_a_range,
    test_settling_supersedes_only_pending_and_enqueues,
    test_silences_are_listed_active_and_expire,
    test_the_key_value_space,
    test_the_outbox_queue,
    test_updates_replace_the_row_and_append_to_the_timeline,
)


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_dsn)
    await s.open()
    yield s
    await s.close()
