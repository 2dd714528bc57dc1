"""Shared fixtures: real anvil nodes (started per test, always stopped) and a small deployment.

- ``anvil``: one automine anvil for the test, log in the test's tmp dir.
- ``anvil_factory``: ``await anvil_factory(AnvilOptions(...))`` starts as many as a test needs;
  all are stopped at teardown, even when the test fails.
- ``deployed``: an anvil (automine) with 5 pairs deployed for the 10 default bot accounts;
  yields a ``DeployedChain`` (``.anvil``, ``.deployment``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.node.anvil import Anvil, AnvilOptions
from harness.node.deploy import deploy
from harness.node.deployplan import Deployment
from harness.node.keys import DEV_ADDRESSES

AnvilFactory = Callable[..., Awaitable[Anvil]]


@pytest.fixture
async def anvil(tmp_path: Path) -> AsyncIterator[Anvil]:
    async with Anvil(tmp_path) as node:
        yield node


@pytest.fixture
async def anvil_factory(tmp_path: Path) -> AsyncIterator[AnvilFactory]:
    started: list[Anvil] = []

    async def make(options: AnvilOptions | None = None, *, log_name: str = "anvil") -> Anvil:
        node = Anvil(tmp_path, options, log_name=log_name)
        started.append(node)
        await node.start()
        return node

    try:
        yield make
    finally:
        for node in started:
            await node.stop()


@dataclass(frozen=True)
class DeployedChain:
    anvil: Anvil
    deployment: Deployment
    deployment_path: Path


@pytest.fixture
async def deployed(tmp_path: Path) -> AsyncIterator[DeployedChain]:
    async with Anvil(tmp_path) as node:
        path = tmp_path / "deployment.json"
        deployment = await deploy(node.url, n_pairs=5, bot_accounts=DEV_ADDRESSES, out_path=path)
        yield DeployedChain(node, deployment, path)
