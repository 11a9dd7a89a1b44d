"""The config fuzzer: every document gets "ok" or located errors, in bounded time.

2,000 documents: the bundled monitors.yaml mutated as text, and documents shaped by
monitors.schema.json with hostile values planted. A 10,000-document run is recorded
in bench/README.md (bench/config_fuzz.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.configfuzz import DOCUMENTS, judge

MAX_SECONDS = 2.0  # CPU seconds for one document; a hang or an expansion bomb is far more


@pytest.mark.timeout(180)
@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(DOCUMENTS)
def test_every_document_gets_ok_or_located_errors(text: str) -> None:
    verdict = judge(text)
    assert verdict.outcome in ("ok", "errors"), (verdict.outcome, verdict.detail)
    assert verdict.seconds < MAX_SECONDS
