"""The bot.toml a run starts the bot with (written into the run folder, recorded in the results).

The harness's defaults for load runs are merged with the user's ``--bot KEY=VALUE`` overrides
and validated by the bot's own config parser before anything starts, so a typo fails at once,
naming the dotted field (``engine.signing: expected one of inline, thread, process``).

A node URL that carries anything redaction would hide (``--node-url`` with a provider key in it)
reaches the bot the way its keys do: in its environment (``node_env``), named by
``endpoints.http_env`` / ``ws_env``, while the file lists only its redacted form, since a run
folder is uploaded as a CI artifact. A plain URL (our own anvil) is written as it is.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.config import ConfigError, parse
from bot.redact import redact_url
from harness.errors import ConfigError as HarnessConfigError

KEYS_ENV = "TRADEBENCH_BOT_KEYS"
NODE_HTTP_ENV = "TRADEBENCH_NODE_HTTP"
NODE_WS_ENV = "TRADEBENCH_NODE_WS"

# What load runs need beyond the bot's own defaults: room for a 1000-trade burst in flight, more
# handlers at once, and a strategy that trades on every signal (deadband 0) with slippage room
# for the pool moves of concurrent trades on the same pair.
HARNESS_DEFAULTS: dict[str, Any] = {
    "loop": "uvloop",
    "engine": {"max_in_flight": 1024, "dispatch_slots": 128, "mailbox_size": 256, "signing": "inline"},
    "strategy": {"deadband_bps": 0.0, "max_slippage_bps": 200.0},
}


def bot_keys_env(accounts: int) -> dict[str, str]:
    """The bot's keys, for its environment only: dev accounts 1..N (``anvil-dev:N+1`` would
    include the deployer, account 0). They are anvil's well-known test keys, and still never
    written to the run folder, which people upload as CI artifacts."""
    from harness.node.keys import dev_accounts

    return {KEYS_ENV: ",".join(a.private_key for a in dev_accounts(accounts + 1)[1:])}


def bot_account_count(accounts: int, extra: Mapping[str, Any]) -> int:
    """How many dev accounts the bot gets: ``accounts``, or one per shard if ``--bot engine.processes=N``
    asks for more (each shard signs from accounts of its own, bot.shard.plan)."""
    engine = extra.get("engine")
    processes = engine.get("processes", 1) if isinstance(engine, Mapping) else 1
    return max(accounts, processes if isinstance(processes, int) and not isinstance(processes, bool) else 1)


def _secret(url: str) -> bool:
    return redact_url(url) != url


def node_env(node_http: str, node_ws: str) -> dict[str, str]:
    """The node URLs that must not be written, for the bot's environment only (``write_bot_config``
    writes their redacted forms and names these variables); empty for plain URLs."""
    return {name: url for name, url in ((NODE_HTTP_ENV, node_http), (NODE_WS_ENV, node_ws)) if _secret(url)}


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["engine.signing=thread", "loop=asyncio"]`` -> nested dict; values are TOML literals
    (``64``, ``1.5``, ``true``), anything else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        path = [p.strip() for p in key.split(".")]
        if not sep or not all(path):
            raise HarnessConfigError(f"--bot {item!r}: write KEY=VALUE with a dotted key, e.g. engine.signing=thread")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise HarnessConfigError(f"--bot {item!r}: {p} is a value, not a table")
        node[path[-1]] = value
    return out


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def check_overrides(extra: Mapping[str, Any]) -> None:
    """Validate ``--bot`` overrides up front, before a node or a bot is started."""
    probe = {"deployment": "deployment.json", "endpoints": {"http": ["http://127.0.0.1:1"]},
             "accounts": {"env": KEYS_ENV}}
    try:
        parse(_merge(_merge(HARNESS_DEFAULTS, extra), probe))
    except ConfigError as exc:
        raise HarnessConfigError(f"--bot: {exc}") from exc


def write_bot_config(run_dir: Path, *, node_http: str, node_ws: str, deployment: Path, feed_url: str,
                     api_port: int, extra: Mapping[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``bot.toml`` and return its path and the effective settings (no secrets in either: the
    bot reads the real node URLs from the variables ``node_env`` fills)."""
    run_dir = run_dir.resolve()
    hidden = node_env(node_http, node_ws)
    endpoints: dict[str, Any] = {"http": [redact_url(node_http)], "ws": redact_url(node_ws)}
    if NODE_HTTP_ENV in hidden:
        endpoints["http_env"] = NODE_HTTP_ENV
    if NODE_WS_ENV in hidden:
        endpoints["ws_env"] = NODE_WS_ENV
    fixed = {
        "deployment": str(deployment.resolve()),
        "endpoints": endpoints,
        "accounts": {"env": KEYS_ENV},
        "api": {"host": "127.0.0.1", "port": api_port, "token_env": "TRADEBENCH_API_TOKEN"},
        "feed": {"url": feed_url},
    }
    data = _merge(_merge(HARNESS_DEFAULTS, extra or {}), fixed)
    try:
        config = parse(data, base_dir=run_dir)
    except ConfigError as exc:
        raise HarnessConfigError(f"--bot: {exc}") from exc
    path = run_dir / "bot.toml"
    path.write_text(config.to_toml())
    return path, config.to_dict()
