"""A node the harness runs against: its own anvil, or a user's endpoint URL.

``Node`` is the read-only surface both share (what a result's ``conditions.node`` records).
``start_node(NodeConfig)`` gives an async context manager for either kind, so callers never
branch on where the chain comes from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from bot.redact import redact_url
from harness.errors import ConfigError, HarnessError
from harness.node.anvil import Anvil, AnvilOptions
from harness.node.jsonrpc import NodeRpc


class Node(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def ws_url(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def version(self) -> str: ...
    @property
    def mining(self) -> str: ...
    @property
    def chain_id(self) -> int: ...


def _ws_from_http(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


class ExternalNode:
    """A user's endpoint: nothing to start or stop; ``start()`` checks it answers and reads its facts."""

    kind = "endpoint"
    pid: int | None = None

    def __init__(self, url: str, ws_url: str | None = None, *, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"node url {redact_url(url)!r} must be an http(s) URL such as http://127.0.0.1:8545")
        if ws_url is not None and urlsplit(ws_url).scheme not in ("ws", "wss"):
            raise ConfigError(f"node ws_url {redact_url(ws_url)!r} must be a ws(s) URL such as ws://127.0.0.1:8545")
        self.url = url
        self.ws_url = ws_url or _ws_from_http(url)
        self.version = ""
        self.chain_id = 0
        # We cannot know how a foreign node mines; results say so rather than guess.
        self.mining = "unknown"
        self._timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"<ExternalNode {redact_url(self.url)} chain_id={self.chain_id or '?'} version={self.version or '?'}>"

    async def __aenter__(self) -> ExternalNode:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        async with NodeRpc(self.url, timeout=self._timeout_s) as rpc:
            try:
                self.chain_id = int(await rpc.call("eth_chainId"), 16)
            except HarnessError as exc:
                raise HarnessError(f"node endpoint {redact_url(self.url)} does not answer eth_chainId: {exc}") from exc
            try:
                self.version = str(await rpc.call("web3_clientVersion"))
            except HarnessError:
                self.version = "unknown"

    async def stop(self) -> None:
        return None


@dataclass(frozen=True)
class NodeConfig:
    """Either ``url`` (a user's endpoint) or an anvil started with ``anvil`` options in ``run_dir``."""

    url: str | None = None
    ws_url: str | None = None
    anvil: AnvilOptions = field(default_factory=AnvilOptions)
    run_dir: Path = Path(".")

    @property
    def kind(self) -> Literal["anvil", "endpoint"]:
        return "endpoint" if self.url else "anvil"


@asynccontextmanager
async def start_node(config: NodeConfig) -> AsyncIterator[Anvil | ExternalNode]:
    node: Anvil | ExternalNode
    if config.url:
        node = ExternalNode(config.url, config.ws_url)
    else:
        if config.ws_url:
            raise ConfigError("node ws_url is only for an external endpoint; set url too, or drop ws_url")
        node = Anvil(config.run_dir, config.anvil)
    async with node:
        yield node
