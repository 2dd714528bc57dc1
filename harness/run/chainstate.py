"""One chain state per trading scenario: our anvil is reverted to its post-deployment snapshot.

Why: anvil keeps every block and transaction it has mined in memory and slows as they pile up.
Measured on one anvil with a fresh bot each time (docs/PERFORMANCE.md): stress held 436 trades/s
on a fresh node, then after a one-minute sustained scenario only 7/s, with anvil grown from
72 MB to 4.6 GB; reverting to the snapshot before each trading scenario brought it back to
436/s. That slowdown is an artefact of the test node, not of the bot, so a scenario must not
inherit it from the scenario before.

A revert moves the chain back under the bot's feet (its nonces, heads and balances would be
ahead of the chain), so a reset always comes with a fresh bot process, which reads its nonces
from the chain when it starts. A user's node (``--node-url``) is never reverted.

``decide()`` is the pure rule; ``ChainSnapshot`` performs the two RPC calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError
from harness.node.jsonrpc import NodeRpc


@dataclass(frozen=True)
class ResetDecision:
    reset: bool
    reason: str  # why (or why not), for the log and the scenario's summary


def decide(*, kind: str, own_node: bool, enabled: bool, dirty: bool, one_bot: bool) -> ResetDecision:
    """Whether to revert the chain before a scenario of ``kind`` (pure).

    ``dirty``: a trading scenario ran since the snapshot was taken. ``one_bot``: the run must keep
    one bot process (a memray capture follows one process), so the chain cannot move under it.
    """
    if kind != "trades":
        return ResetDecision(False, "not a trading scenario")
    if not own_node:
        return ResetDecision(False, "a user's node is never reverted")
    if not enabled:
        return ResetDecision(False, "--keep-chain")
    if not dirty:
        return ResetDecision(False, "chain as deployed")
    if one_bot:
        return ResetDecision(False, "kept: this run follows one bot process (memray)")
    return ResetDecision(True, "reverted to the post-deployment snapshot, fresh bot")


class ChainSnapshot:
    """An ``evm_snapshot`` of our anvil, re-taken after each revert (anvil consumes a snapshot on revert)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.snapshot_id: str | None = None
        self.dirty = False
        self.resets = 0

    def __repr__(self) -> str:
        return f"<ChainSnapshot {self.url} id={self.snapshot_id} dirty={self.dirty} resets={self.resets}>"

    async def take(self) -> None:
        async with NodeRpc(self.url, timeout=10.0) as rpc:
            self.snapshot_id = str(await rpc.call("evm_snapshot"))
        self.dirty = False

    async def revert(self) -> int:
        """Back to the snapshot (then a new one is taken); returns the block number after the revert."""
        if self.snapshot_id is None:
            raise HarnessError("chain reset: no snapshot was taken (call take() after the deployment)")
        async with NodeRpc(self.url, timeout=30.0) as rpc:
            ok = await rpc.call("evm_revert", [self.snapshot_id])
            if ok is not True:
                raise HarnessError(f"chain reset: anvil refused evm_revert({self.snapshot_id}); "
                                   "run with --keep-chain to let scenarios share one chain")
            block = int(await rpc.call("eth_blockNumber"), 16)
        self.resets += 1
        await self.take()
        return block


async def block_number(url: str) -> int | None:
    try:
        async with NodeRpc(url, timeout=5.0) as rpc:
            return int(await rpc.call("eth_blockNumber"), 16)
    except Exception:  # a figure for the page, not a reason to stop the run
        return None


def node_summary(samples: list[tuple[float, int, float]], block_start: int | None, block_end: int | None,
                 decision: ResetDecision) -> dict[str, object]:
    """The node's side of one scenario (pure): ``samples`` are (t, rss_bytes, cpu_percent) of the
    node's process inside the scenario's window. Recorded beside the bot's resources, so a node
    that grew or slowed over the run shows on the page instead of being read as the bot's fault."""
    out: dict[str, object] = {"reset": decision.reset, "reset_reason": decision.reason,
                              "block_start": block_start, "block_end": block_end}
    if samples:
        rss = [s[1] for s in samples]
        cpu = [s[2] for s in samples]
        out.update(rss_mb_start=round(rss[0] / 2**20, 1), rss_mb_end=round(rss[-1] / 2**20, 1),
                   rss_mb_max=round(max(rss) / 2**20, 1), cpu_percent_mean=round(sum(cpu) / len(cpu), 1),
                   samples=len(samples))
    return out
