"""The bot.toml a run starts the bot with (written into the run folder, recorded in the results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import loads

KEYS_ENV = "TRADEBENCH_BOT_KEYS"


def bot_keys_env(accounts: int) -> dict[str, str]:
    """The bot's keys, for its environment only: dev accounts 1..N (``anvil-dev:N+1`` would
    include the deployer, account 0). They are anvil's well-known test keys, and still never
    written to the run folder, which people upload as CI artifacts."""
    from harness.node.keys import dev_accounts

    return {KEYS_ENV: ",".join(a.private_key for a in dev_accounts(accounts + 1)[1:])}


def write_bot_config(run_dir: Path, *, node_http: str, node_ws: str, deployment: Path, feed_url: str,
                     api_port: int, extra: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``bot.toml`` and return its path and the effective settings (no secrets in either)."""
    run_dir = run_dir.resolve()
    deployment = deployment.resolve()
    extra = extra or {}
    engine = {"max_in_flight": 1024, "dispatch_slots": 128, "mailbox_size": 256, "signing": "inline",
              **extra.get("engine", {})}
    strategy = {"deadband_bps": 0.0, "max_slippage_bps": 200.0, **extra.get("strategy", {})}
    lines = [
        f'deployment = "{deployment}"',
        'pairs = "all"',
        f'loop = "{extra.get("loop", "uvloop")}"',
        "",
        "[endpoints]",
        f'http = ["{node_http}"]',
        f'ws = "{node_ws}"',
        "",
        "[accounts]",
        f'env = "{KEYS_ENV}"',
        "",
        "[strategy]",
        *(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in strategy.items()),
        "",
        "[engine]",
        *(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in engine.items()),
        "",
        "[api]",
        'host = "127.0.0.1"',
        f"port = {api_port}",
        'token_env = "TRADEBENCH_API_TOKEN"',
        "",
        "[feed]",
        f'url = "{feed_url}"',
    ]
    text = "\n".join(lines) + "\n"
    config = loads(text, base_dir=run_dir)  # fail here, with the field named, not in the bot
    path = run_dir / "bot.toml"
    path.write_text(text)
    return path, config.to_dict()
