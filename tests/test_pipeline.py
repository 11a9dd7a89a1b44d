from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from monitor.checks.http.check import HttpCheckConfig
from monitor.config.loader import parse_config
from monitor.core.configtypes import Defaults
from monitor.core.errors import ConfigError
from monitor.core.model import CheckResult, FailureKind, Outcome
from monitor.engine.pipeline import ResultHandler, annotate

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def result(
    check: str, outcome: Outcome, message: str, failure: FailureKind | None = None
) -> CheckResult:
    return CheckResult(check, "x", outcome, failure, message, T0, 0.1)


class TestAnnotate:
    def test_failure_during_upstream_trouble(self) -> None:
        ci = result("build", Outcome.DOWN, "2 failed runs", FailureKind.RUN_FAILED)
        status = result(
            "github-status",
            Outcome.DEGRADED,
            "Actions is degraded_performance",
            FailureKind.UPSTREAM_DEGRADED,
        )
        out = annotate(ci, status)
        assert out.message == "2 failed runs (while github-status: Actions is degraded_performance)"
        assert out.details["upstream"] == {
            "check": "github-status", "outcome": "degraded", "message": "Actions is degraded_performance",
        }  # fmt: skip
        assert out.failure is FailureKind.RUN_FAILED  # annotation only, never reclassification

    @pytest.mark.parametrize(
        "upstream", [None, result("github-status", Outcome.UP, "all operational")]
    )
    def test_nothing_to_say(self, upstream: CheckResult | None) -> None:
        ci = result("build", Outcome.DOWN, "failed", FailureKind.RUN_FAILED)
        assert annotate(ci, upstream) is ci

    @pytest.mark.parametrize(
        ("failure", "message"),
        [
            (FailureKind.SCHEMA, "component 'Actions' not on the page"),
            (FailureKind.UNAVAILABLE, "status page unavailable: 503"),
            (FailureKind.RATE_LIMITED, "rate limited"),
        ],
    )
    def test_a_failing_status_check_is_a_detail_only(
        self, failure: FailureKind, message: str
    ) -> None:
        ci = result("build", Outcome.DOWN, "failed", FailureKind.RUN_FAILED)
        out = annotate(ci, result("github-status", Outcome.DOWN, message, failure))
        assert out.message == "failed"
        assert out.details["upstream_check_failed"]["message"] == message

    async def test_handler_uses_the_latest_upstream_result(self, metrics) -> None:
        handler = ResultHandler(metrics)
        config = HttpCheckConfig(
            name="build", kind="http", url="http://x", upstream_status="github-status"
        ).resolved(Defaults())
        status = HttpCheckConfig(name="github-status", kind="http", url="http://s").resolved(
            Defaults()
        )
        await handler(
            status,
            result(
                "github-status",
                Outcome.DOWN,
                "Actions is major_outage",
                FailureKind.UPSTREAM_DEGRADED,
            ),
        )
        with capture_logs():
            await handler(config, result("build", Outcome.DOWN, "failed", FailureKind.RUN_FAILED))
        assert (
            handler.last["build"].message == "failed (while github-status: Actions is major_outage)"
        )


class TestReferences:
    def test_dangling_and_wrong_kind(self) -> None:
        text = (
            "checks:\n"
            "  - {name: site, kind: http, url: 'http://x', upstream_status: nope}\n"
            "  - {name: other, kind: http, url: 'http://x', upstream_status: site}\n"
        )
        with pytest.raises(ConfigError) as info:
            parse_config(text, "m.yaml", {})
        assert [str(i) for i in info.value.issues] == [
            "m.yaml:2:64: checks[0].upstream_status: no check named 'nope'",
            "m.yaml:3:65: checks[1].upstream_status: 'site' is a http check, not statuspage",
        ]

    def test_depends_on_must_name_other_checks(self) -> None:
        text = (
            "checks:\n"
            "  - {name: site, kind: http, url: 'http://x', depends_on: [site, gone]}\n"
            "  - {name: docs, kind: http, url: 'http://x', depends_on: [site]}\n"
        )
        with pytest.raises(ConfigError) as info:
            parse_config(text, "m.yaml", {})
        assert [str(i) for i in info.value.issues] == [
            "m.yaml:2:60: checks[0].depends_on[0]: a check cannot refer to itself",
            "m.yaml:2:66: checks[0].depends_on[1]: no check named 'gone'",
        ]
