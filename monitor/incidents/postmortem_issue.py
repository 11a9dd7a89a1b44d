"""Opening a post-mortem as a GitHub issue, once.

The issue body ends with a hidden marker naming the incident (its id, key and opening
time). Before creating an issue the repository's issues with the first label are searched
for that marker, so running `monitor postmortem ID --github OWNER/REPO` twice, or from
two machines, or after the link could not be recorded, finds the first issue instead of
opening a second one. Blocking (PyGithub): call it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from github import Auth, Github, GithubException

from monitor.core.errors import PostmortemIssueError
from monitor.core.model import Incident

__all__ = ["GITHUB_API", "PostmortemIssue", "PostmortemIssueError", "marker", "open_issue"]

GITHUB_API = "https://api.github.com"


@dataclass(frozen=True, slots=True)
class PostmortemIssue:
    url: str  # the issue's page (html_url)
    number: int
    created: bool  # False: an issue for this incident was already there


def marker(incident: Incident) -> str:
    """The hidden line that ties an issue to one incident."""
    opened = incident.opened_at.isoformat(timespec="seconds")
    return (
        f"<!-- project-asset-monitor incident={incident.id} key={incident.key} opened={opened} -->"
    )


def open_issue(
    *,
    repo: str,
    incident: Incident,
    body: str,
    labels: Sequence[str],
    token: str | None,
    api_url: str = GITHUB_API,
    timeout_s: float = 15.0,
) -> PostmortemIssue:
    """Finds the incident's post-mortem issue in `repo`, or creates it with `labels`."""
    tag = marker(incident)
    auth = Auth.Token(token) if token else None
    gh = Github(
        base_url=api_url.rstrip("/"),
        auth=auth,
        timeout=int(timeout_s),
        retry=0,
        per_page=100,
        seconds_between_requests=None,
        lazy=True,
    )
    try:
        repository = gh.get_repo(repo)
        found = repository.get_issues(state="all", labels=list(labels[:1])) if labels else None
        for issue in found or repository.get_issues(state="all"):
            if tag in (issue.body or ""):
                return PostmortemIssue(issue.html_url, issue.number, created=False)
        title = f"Post-mortem: {incident.title} (incident #{incident.id})"
        issue = repository.create_issue(title=title, body=f"{body}\n\n{tag}\n", labels=list(labels))
        return PostmortemIssue(issue.html_url, issue.number, created=True)
    except GithubException as exc:
        raise PostmortemIssueError(_explain(exc, repo)) from exc
    except OSError as exc:  # connection refused, DNS, timeouts (requests' errors are OSErrors)
        raise PostmortemIssueError(f"cannot reach GitHub at {api_url}: {exc}") from exc
    finally:
        gh.close()


def _explain(exc: GithubException, repo: str) -> str:
    message = exc.data.get("message") if isinstance(exc.data, dict) else None
    text = f"{exc.status} {message or ''}".strip()
    if exc.status == 401:
        return f"GitHub refused the token ({text}): set GITHUB_TOKEN to a token with issues: write"
    if exc.status == 404:
        return f"GitHub repository {repo} not found, or the token cannot see it ({text})"
    if exc.status == 403:
        return f"GitHub refused to create the issue in {repo} ({text})"
    return f"GitHub answered {text}"
