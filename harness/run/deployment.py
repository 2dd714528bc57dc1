"""The contracts a run trades against: deploy them on a fresh anvil, or reuse a user's deployment."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError


def bot_addresses(n: int) -> list[str]:
    """The bot's accounts: anvil dev accounts 1..n (account 0 deploys; keeping them apart keeps
    the deployer's nonces out of the bot's nonce queues)."""
    from harness.node.keys import dev_accounts

    accounts = dev_accounts(n + 1)
    return [a.address for a in accounts[1 : n + 1]]


async def ensure_deployment(url: str, pairs: int, accounts: int, run_dir: Path, existing: Path | None
                            ) -> dict[str, Any]:
    out = run_dir / "deployment.json"
    if existing is not None:
        if not existing.is_file():
            raise HarnessError(f"--deployment {existing}: no such file; give the deployment.json of your node")
        shutil.copyfile(existing, out)
        return dict(orjson.loads(out.read_bytes()))
    from harness.node.deploy import deploy

    dep = await deploy(url, pairs, bot_addresses(accounts), out_path=out)
    return dep.to_json()
