"""``harness node``: a chain with the contracts deployed, kept up until Ctrl-C (for development)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harness.node.anvil import Anvil, AnvilOptions
from harness.node.mining import MiningMode


async def run_node(pairs: int, block_time: float | None, out: Path) -> int:
    from harness.run.deployment import ensure_deployment

    out.mkdir(parents=True, exist_ok=True)
    mining = MiningMode.interval(block_time) if block_time else MiningMode.automine()
    async with Anvil(out, AnvilOptions(mining=mining, disable_block_gas_limit=True)) as node:
        await ensure_deployment(node.url, pairs, 4, out, None)
        print(f"anvil {node.version} at {node.url} (ws {node.ws_url}), {node.mining}")
        print(f"deployment: {out / 'deployment.json'}; log: {node.log_path}")
        print("Ctrl-C to stop")
        try:
            while True:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            pass
    return 0
