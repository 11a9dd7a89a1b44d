"""A local stand-in for the GitHub REST API's issue endpoints, on its real wire format.

`GET /repos/{owner}/{repo}/issues` (state, labels, per_page, page, with a `Link` header for
the next page), `POST /repos/{owner}/{repo}/issues` (201 with the issue and a `Location`),
token auth (`Authorization: token …` or `Bearer …`, 401 "Bad credentials" otherwise), 404
"Not Found" for an unknown repository, 422 "Validation Failed" without a title. Issue and
label objects carry the fields the GitHub documentation lists for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

DOCS = "https://docs.github.com/rest/issues/issues"


@dataclass
class FakeGithub:
    token: str = "ghp_test"
    repos: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"winglang/wing": []})
    created: int = 0  # POSTs that made an issue
    base: str = ""  # set once served: the API base URL

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/repos/{owner}/{repo}/issues", self._list)
        app.router.add_post("/repos/{owner}/{repo}/issues", self._create)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if header not in (f"token {self.token}", f"Bearer {self.token}"):
            return _error(401, "Bad credentials", "https://docs.github.com/rest")
        return await handler(request)  # type: ignore[no-any-return]

    def _repo(self, request: web.Request) -> tuple[str, list[dict[str, Any]]] | None:
        name = f"{request.match_info['owner']}/{request.match_info['repo']}"
        issues = self.repos.get(name)
        return None if issues is None else (name, issues)

    async def _list(self, request: web.Request) -> web.Response:
        found = self._repo(request)
        if found is None:
            return _error(404, "Not Found", f"{DOCS}#list-repository-issues")
        _, issues = found
        state = request.query.get("state", "open")
        wanted = {x for x in request.query.get("labels", "").split(",") if x}
        chosen = [
            i for i in reversed(issues)  # newest first, GitHub's default sort
            if (state == "all" or i["state"] == state)
            and wanted <= {label["name"] for label in i["labels"]}
        ]  # fmt: skip
        per_page = min(int(request.query.get("per_page", "30")), 100)
        page = int(request.query.get("page", "1"))
        chunk = chosen[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(chosen):
            next_url = request.url.update_query(page=str(page + 1))
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.json_response(chunk, headers=headers)

    async def _create(self, request: web.Request) -> web.Response:
        found = self._repo(request)
        if found is None:
            return _error(404, "Not Found", f"{DOCS}#create-an-issue")
        name, issues = found
        body = await request.json()
        if not isinstance(body.get("title"), str) or not body["title"]:
            return _error(422, "Validation Failed", f"{DOCS}#create-an-issue")
        number = len(issues) + 1
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        api = f"{self.base}/repos/{name}"
        issue = {
            "id": 2_000_000 + number, "node_id": f"I_kwDOfake{number}", "url": f"{api}/issues/{number}",
            "repository_url": api, "labels_url": f"{api}/issues/{number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{number}/comments", "events_url": f"{api}/issues/{number}/events",
            "html_url": f"https://github.com/{name}/issues/{number}", "number": number, "state": "open",
            "state_reason": None, "title": body["title"], "body": body.get("body"),
            "user": {"login": "wing-monitor", "id": 1, "node_id": "U_1", "type": "User", "site_admin": False},
            "labels": [
                {"id": 100 + i, "node_id": f"LA_{i}", "url": f"{api}/labels/{label}", "name": label,
                 "description": None, "color": "ededed", "default": False}
                for i, label in enumerate(body.get("labels") or [])
            ],
            "assignee": None, "assignees": [], "milestone": None, "locked": False, "active_lock_reason": None,
            "comments": 0, "pull_request": None, "closed_at": None, "created_at": now, "updated_at": now,
            "closed_by": None, "author_association": "OWNER",
        }  # fmt: skip
        issue = {k: v for k, v in issue.items() if k != "pull_request"}
        issues.append(issue)
        self.created += 1
        return web.json_response(issue, status=201, headers={"Location": issue["url"]})


def _error(status: int, message: str, docs: str) -> web.Response:
    return web.json_response(
        {"message": message, "documentation_url": docs, "status": str(status)}, status=status
    )
