"""A chaos scenario's rig: two watched fault proxies in front of the node, and a bot that uses both.

``ChaosRig`` starts proxy ``A`` and proxy ``B`` (each a ``FaultProxy`` with its own injection log,
``chaos-<name>-A.jsonl`` in the run folder) and records every HTTP request each one handles, with
the proxy's own timestamps (``harness.stats.failover.Reply``). ``chaos_config`` writes the bot's
``bot-chaos-<name>.toml``: the run's ``bot.toml`` with ``endpoints.http = [A, B]`` and the WebSocket
through B (the config allows one), plus the scenario's own settings (``ChaosSpec.bot``).
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import orjson

from bot.config import ConfigError, parse
from harness.errors import ConfigError as HarnessConfigError
from harness.node.faultplan import FaultPlan
from harness.node.faultproxy import FaultProxy
from harness.results.chaos import ProxyTraffic
from harness.run.chaosplan import ChaosSpec
from harness.stats.failover import Reply

NAMES = ("A", "B")


class ChaosRig:
    """``async with ChaosRig(node_url, run_dir, spec) as rig:`` then ``rig.proxies["A"]`` / ``["B"]``."""

    def __init__(self, node_url: str, run_dir: Path, spec: ChaosSpec) -> None:
        self.node_url = node_url
        self.run_dir = run_dir
        self.spec = spec
        self.proxies: dict[str, FaultProxy] = {}
        self.replies: list[Reply] = []
        self._exits = contextlib.AsyncExitStack()

    def __repr__(self) -> str:
        return f"<ChaosRig {self.spec.name} {self.proxies} replies={len(self.replies)}>"

    def log_name(self, name: str) -> str:
        return f"chaos-{self.spec.name}-{name}.jsonl"

    async def __aenter__(self) -> ChaosRig:
        try:
            for name in NAMES:
                self.proxies[name] = await self._exits.enter_async_context(FaultProxy(
                    self.node_url, FaultPlan(), log_path=self.run_dir / self.log_name(name),
                    watch=self._watcher(name)))
        except BaseException:
            await self._exits.aclose()
            raise
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._exits.aclose()

    def _watcher(self, name: str) -> Any:
        def watch(arrived: float, answered: float, status: int) -> None:
            self.replies.append(Reply(name, arrived, answered, status))
        return watch

    def traffic(self, name: str) -> ProxyTraffic:
        mine = [r for r in self.replies if r.proxy == name]
        proxy = self.proxies[name]
        proxy.log.flush()
        return ProxyTraffic(name, requests=len(mine), ok=sum(r.ok for r in mine),
                            unanswered=sum(r.status == 0 for r in mine),
                            injected={k: n for k, n in proxy.log.counts().items() if k != "plan"},
                            log=self.log_name(name))


def chaos_config(run_dir: Path, base: Path, spec: ChaosSpec, rig: ChaosRig) -> Path:
    """The run's bot config with the two proxies as its endpoints; validated by the bot's own parser."""
    data: dict[str, Any] = tomllib.loads(base.read_text())
    a, b = rig.proxies["A"], rig.proxies["B"]
    # Plain loopback URLs: nothing to hide, so no endpoint comes from the environment.
    data["endpoints"] = {"http": [a.url, b.url], "ws": b.ws_url}
    data = _merge(data, spec.bot)
    try:
        config = parse(data, base_dir=run_dir)
    except ConfigError as exc:
        raise HarnessConfigError(f"chaos {spec.name}: the bot's config: {exc}") from exc
    path = run_dir / f"bot-chaos-{spec.name}.toml"
    path.write_text(config.to_toml())
    return path


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


async def bot_gauges(api_url: str) -> dict[str, float]:
    """The bot's gauges now (``GET /stats`` past every interval: the gauges alone); {} if it did not answer."""
    try:
        async with aiohttp.ClientSession() as s, \
                s.get(api_url.rstrip("/") + "/stats", params={"since": str(2**62)},
                      timeout=aiohttp.ClientTimeout(total=5)) as r:
            if r.status != 200:
                return {}
            doc = orjson.loads(await r.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return {}
    return {str(k): float(v) for k, v in doc.get("gauges", {}).items() if isinstance(v, int | float)}
