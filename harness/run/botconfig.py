"""The bot.toml a run starts the bot with (written into the run folder, recorded in the results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config import loads


def write_bot_config(run_dir: Path, *, node_http: str, node_ws: str, deployment: Path, feed_url: str,
                     api_port: int, accounts: int, extra: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write ``bot.toml`` and return its path and the effective settings (no secrets in either).

    The bot trades dev accounts 1..N: ``anvil-dev:N+1`` would include the deployer (account 0),
    so the accounts are named by key file instead (anvil's well-known test keys, never real ones).
    """
    from harness.node.keys import dev_accounts

    run_dir = run_dir.resolve()
    deployment = deployment.resolve()
    keys = [a.private_key for a in dev_accounts(accounts + 1)[1:]]
    key_file = run_dir / "bot-keys.txt"
    key_file.write_text("\n".join(keys) + "\n")
    key_file.chmod(0o600)
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
        f'key_file = "{key_file}"',
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
