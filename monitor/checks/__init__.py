"""The check kinds: the YAML `kind:` value → the class that implements it.

Adding a kind is one module under `checks/` and one line here.
"""

from __future__ import annotations

from typing import Any

from monitor.checks.base import Check, CheckContext, classify_exception
from monitor.checks.github_actions import GithubActionsCheck
from monitor.checks.http.check import HttpCheck
from monitor.checks.marketplace import OpenVsxCheck, VscodeMarketplaceCheck
from monitor.checks.npm import NpmCheck
from monitor.checks.statuspage import StatuspageCheck
from monitor.checks.version_sync import VersionSyncCheck

__all__ = ["CHECKS", "Check", "CheckContext", "classify_exception"]

CHECKS: dict[str, type[Check[Any]]] = {
    "http": HttpCheck,
    "github_actions": GithubActionsCheck,
    "npm": NpmCheck,
    "openvsx": OpenVsxCheck,
    "statuspage": StatuspageCheck,
    "version_sync": VersionSyncCheck,
    "vscode_marketplace": VscodeMarketplaceCheck,
}
