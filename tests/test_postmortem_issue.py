"""`monitor postmortem ID --github OWNER/REPO` against a local fake of GitHub's issue API."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.cli.main import main
from monitor.core.model import Incident, IncidentStatus, Severity
from monitor.incidents.postmortem_issue import PostmortemIssueError, marker, open_issue
from monitor.web.api import IncidentApi, build_app
from tests.githubfake import FakeGithub
from tests.test_api import TOKEN, failing
from tests.test_api import world as _world

INCIDENT = Incident(
    id=7, key="npm-winglang", title="npm-winglang is down", status=IncidentStatus.RESOLVED,
    severity=Severity.P0, opened_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
    updated_at=datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
)  # fmt: skip


world = _world  # the API test's incidents, silences and store, as a fixture here


@pytest.fixture
async def github(aiohttp_server) -> FakeGithub:
    fake = FakeGithub()
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


def opener(github: FakeGithub, **overrides: Any):
    kwargs: dict[str, Any] = {"repo": "winglang/wing", "incident": INCIDENT, "body": "# Post-mortem",
                              "labels": ["postmortem", "P0"], "token": github.token, "api_url": github.base}  # fmt: skip
    kwargs.update(overrides)
    return asyncio.to_thread(open_issue, **kwargs)


async def test_opens_once_with_labels_and_marker(github: FakeGithub) -> None:
    first = await opener(github)
    assert first.created
    assert first.url == "https://github.com/winglang/wing/issues/1"
    [issue] = github.repos["winglang/wing"]
    assert issue["title"] == "Post-mortem: npm-winglang is down (incident #7)"
    assert [label["name"] for label in issue["labels"]] == ["postmortem", "P0"]
    assert issue["body"].startswith("# Post-mortem")
    assert marker(INCIDENT) in issue["body"]
    second = await opener(github)
    assert (second.created, second.number, second.url) == (False, 1, first.url)
    assert github.created == 1


async def test_finds_its_issue_on_a_later_page(github: FakeGithub) -> None:
    await opener(github)  # the oldest issue
    issues = github.repos["winglang/wing"]
    for n in range(2, 152):  # 150 newer post-mortems of other incidents
        issues.append({**issues[0], "number": n, "body": f"other {n}"})
    again = await opener(github)
    assert (again.created, again.number) == (False, 1)
    assert github.created == 1


async def test_another_incident_with_the_same_id_gets_its_own_issue(github: FakeGithub) -> None:
    await opener(github)
    other = replace(INCIDENT, opened_at=datetime(2026, 11, 23, tzinfo=UTC))  # another daemon's #7
    assert (await opener(github, incident=other)).created
    assert github.created == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"token": "wrong"}, "GitHub refused the token"),
     ({"repo": "winglang/nope"}, "winglang/nope not found"),
     ({"api_url": "http://127.0.0.1:9"}, "cannot reach GitHub")],
)  # fmt: skip
async def test_clear_errors(github: FakeGithub, overrides, message) -> None:
    with pytest.raises(PostmortemIssueError, match=message):
        await opener(github, **overrides)
    assert github.created == 0


async def test_cli_opens_links_and_does_not_open_twice(
    github: FakeGithub, aiohttp_server, world, clock, monkeypatch, capsys
) -> None:
    _, manager, book = world
    api = await aiohttp_server(build_app(CollectorRegistry(), lambda: True,
                                         IncidentApi(manager, book, clock, TOKEN)))  # fmt: skip
    number = await failing(manager, clock, "npm-winglang")
    monkeypatch.setenv("GITHUB_TOKEN", github.token)
    argv = ["postmortem", str(number), "--github", "winglang/wing", "--api", str(api.make_url("")),
            "--token", TOKEN, "--github-api", github.base, "--as", "alice"]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert (
        f"opened post-mortem issue #1 for incident #{number}: https://github.com/winglang/wing/issues/1"
        in out
    )
    [issue] = github.repos["winglang/wing"]
    assert [label["name"] for label in issue["labels"]] == ["postmortem", "P1"]
    assert "## 5 Whys" in issue["body"]
    timeline = await manager.store.timeline(number)
    [link] = [e for e in timeline if e.event == "postmortem"]
    assert (link.actor, link.data["url"]) == ("alice", issue["html_url"])
    # Twice: the link on the incident is found, nothing is opened.
    assert await asyncio.to_thread(main, argv) == 0
    assert "already open: https://github.com/winglang/wing/issues/1" in capsys.readouterr().out
    assert github.created == 1
    # A wrong token is a clear error and exit 1, with nothing opened.
    monkeypatch.setenv("GITHUB_TOKEN", "nope")
    other = await failing(manager, clock, "docs")
    argv[1] = str(other)
    assert await asyncio.to_thread(main, argv) == 1
    assert "GitHub refused the token" in capsys.readouterr().err
    assert github.created == 1
