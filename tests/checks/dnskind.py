"""A check kind that lives in the test tree only: `kind: dns` resolves a name through the
event loop's resolver. It is the seam's proof: one module here, one registry line at test
time (`tests/checks/test_registry.py`), and no edit to `monitor/`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from monitor.checks.base import AssetFacts, Check, LastGood, pick, when
from monitor.core.configtypes import CheckConfigBase
from monitor.core.model import FailureKind, Observation

__all__ = ["DnsCheck", "DnsCheckConfig"]


class DnsCheckConfig(CheckConfigBase):
    kind: Literal["dns"]
    host: str = Field(description="The name to resolve.")
    expect: str | None = Field(None, description="An address that must be among the answers.")


class DnsCheck(Check[DnsCheckConfig]):
    Config = DnsCheckConfig
    upstream_label = "resolver"

    @property
    def target(self) -> str:
        return self.config.host

    async def run(self) -> Observation:
        host = self.config.host
        try:
            async with asyncio.timeout(self.config.timeout_s):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            return Observation.down(FailureKind.TIMEOUT, f"resolving {host} timed out")
        except OSError as exc:
            return Observation.down(FailureKind.DNS, f"could not resolve {host}: {exc}")
        addresses = sorted({str(info[4][0]) for info in infos})
        if self.config.expect is not None and self.config.expect not in addresses:
            return Observation.down(
                FailureKind.CONTENT,
                f"{host} resolves to {', '.join(addresses)}, not {self.config.expect}",
                host=host, addresses=addresses,
            )  # fmt: skip
        return Observation.up(f"{host} resolves to {', '.join(addresses)}", host=host,
                              addresses=addresses)  # fmt: skip

    @classmethod
    def capture(cls, details: Mapping[str, Any]) -> dict[str, Any]:
        return pick(details, "host", "addresses")

    @classmethod
    def good_text(cls, good: LastGood, failing: Mapping[str, Any]) -> str:
        addresses = ", ".join(good.values.get("addresses", ()))
        return f"{good.values.get('host')} resolved to {addresses} at {when(good.at)}"

    @classmethod
    def asset_facts(cls, details: Mapping[str, Any]) -> AssetFacts | None:
        addresses = details.get("addresses")
        return AssetFacts(version=addresses[0]) if addresses else None
