"""One chain height per scenario: our anvil is reverted to its post-deployment snapshot.

Why (measured, docs/PERFORMANCE.md "anvil slows as its chain grows"): anvil's own work per block
grows with the number of blocks it holds, mined transactions or not. An idle anvil at 20 blocks/s
burned 38 CPU ticks per 20 s at 400 blocks and 142 at 1,600 (with ``--prune-history``, which
bounds only the states it keeps, and with ``--transaction-block-keeper``); its RSS grew
super-linearly, 43 MB to 309 MB in 80 s. An ``evm_revert`` to a snapshot taken at block 0 brought
the CPU back to 37 ticks per 20 s at once. A quick run mines several thousand blocks, so without
a revert every scenario ran on a slower node than the one before it (stress after sustained held
0.5-0.77x of stress alone in three interleaved rounds), and nothing about the bot explained it.

So before a scenario, when the chain has grown more than ``MAX_BLOCKS_SINCE_SNAPSHOT`` blocks
since the snapshot, the chain goes back to the snapshot. A revert moves the chain back under the
bot's feet (its nonces, heads and balances would be ahead of the chain), so a reset always comes
with a fresh bot process, which reads its nonces from the chain when it starts. A user's node
(``--node-url``) is never reverted, nor is a run that must keep one bot process (memray).

``decide()`` is the pure rule; ``ChainSnapshot`` performs the RPC calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import HarnessError
from harness.node.jsonrpc import NodeRpc

# 10 s of interval mining at 50 ms: the node's per-block overhead at this height is within the
# noise of an idle node, and a scenario that follows a short one (a burst) keeps its bot.
MAX_BLOCKS_SINCE_SNAPSHOT = 200


@dataclass(frozen=True)
class ResetDecision:
    reset: bool
    reason: str  # why (or why not), for the log and the scenario's summary


def decide(*, own_node: bool, enabled: bool, blocks_since_snapshot: int | None, one_bot: bool,
           limit: int = MAX_BLOCKS_SINCE_SNAPSHOT) -> ResetDecision:
    """Whether to revert the chain before the next scenario (pure).

    ``blocks_since_snapshot``: how far the chain moved since the snapshot (None: no snapshot, or the
    node could not say). ``one_bot``: the run must keep one bot process (a memray capture follows
    one process), so the chain cannot move under it.
    """
    if not own_node:
        return ResetDecision(False, "a user's node is never reverted")
    if not enabled:
        return ResetDecision(False, "--keep-chain")
    if blocks_since_snapshot is None:
        return ResetDecision(False, "no snapshot to revert to")
    if blocks_since_snapshot <= limit:
        return ResetDecision(False, f"chain as deployed (+{blocks_since_snapshot} blocks)")
    if one_bot:
        return ResetDecision(False, f"kept at +{blocks_since_snapshot} blocks: this run follows one bot process "
                                    "(memray)")
    return ResetDecision(True, f"reverted {blocks_since_snapshot} blocks to the post-deployment snapshot, "
                               "fresh bot")


class ChainSnapshot:
    """An ``evm_snapshot`` of our anvil, re-taken after each revert (anvil consumes a snapshot on revert)."""

    def __init__(self, url: str, *, enabled: bool = True, limit: int = MAX_BLOCKS_SINCE_SNAPSHOT,
                 one_bot: bool = False) -> None:
        self.url = url
        self.enabled = enabled  # False: --keep-chain (the snapshot is still taken, for the page's figures)
        self.limit = limit
        self.one_bot = one_bot
        self.snapshot_id: str | None = None
        self.spare_id: str | None = None  # a second snapshot of the same chain, for a revert that did not take
        self.snapshot_block: int | None = None
        self.resets = 0
        self.failed = 0  # reverts anvil acknowledged that left the chain where it was

    def __repr__(self) -> str:
        return (f"<ChainSnapshot id={self.snapshot_id} at block {self.snapshot_block} resets={self.resets}>")

    async def take(self) -> None:
        """Two snapshots of one chain: reverting to the second leaves the first (anvil drops only the
        snapshot reverted to and later ones), so a revert that did not take can be tried once more."""
        async with NodeRpc(self.url, timeout=10.0) as rpc:
            self.spare_id = str(await rpc.call("evm_snapshot"))
            self.snapshot_id = str(await rpc.call("evm_snapshot"))
            self.snapshot_block = int(await rpc.call("eth_blockNumber"), 16)

    async def decide(self) -> tuple[ResetDecision, int | None]:
        """The rule applied to this chain now: (decision, blocks since the snapshot)."""
        since = await self.blocks_since()
        return decide(own_node=True, enabled=self.enabled, blocks_since_snapshot=since, one_bot=self.one_bot,
                      limit=self.limit), since

    async def blocks_since(self) -> int | None:
        if self.snapshot_block is None:
            return None
        now = await block_number(self.url)
        return None if now is None else max(now - self.snapshot_block, 0)

    async def revert(self) -> int:
        """Back to the snapshot (then a new one is taken); returns the block number after the revert.

        The height is checked: on a loaded machine anvil sometimes answers ``true`` while its chain
        stays where it was (4 of 19 reverts in quick runs; a block being mined as the revert lands is
        the likely race; never in 40 reverts of a bare anvil). Then the spare snapshot is reverted
        to. If the chain still did not go back the revert is counted in ``failed``, the scenario's
        reset reason says so, and its summary's ``block_start`` shows the height it really started at."""
        if self.snapshot_id is None:
            raise HarnessError("chain reset: no snapshot was taken (call take() after the deployment)")
        async with NodeRpc(self.url, timeout=30.0) as rpc:
            block = -1
            for attempt, sid in enumerate((self.snapshot_id, self.spare_id)):
                if sid is None:
                    break
                ok = await rpc.call("evm_revert", [sid])
                if ok is not True and attempt == 0:
                    raise HarnessError(f"chain reset: anvil refused evm_revert({sid}); "
                                       "run with --keep-chain to let scenarios share one chain")
                block = int(await rpc.call("eth_blockNumber"), 16)
                if went_back(block, self.snapshot_block):
                    break
        self.resets += 1
        if not went_back(block, self.snapshot_block):
            self.failed += 1  # the new snapshot below is at this height: later reverts come back here
        await self.take()
        return block


# Blocks a revert may be followed by before the height is read (50 ms blocks, a slow loaded node).
REVERT_SLACK_BLOCKS = 20


def went_back(block: int, snapshot_block: int | None) -> bool:
    """Whether a height read right after a revert is the snapshot's (give or take the blocks mined since)."""
    return snapshot_block is None or block <= snapshot_block + REVERT_SLACK_BLOCKS


async def block_number(url: str) -> int | None:
    try:
        async with NodeRpc(url, timeout=5.0) as rpc:
            return int(await rpc.call("eth_blockNumber"), 16)
    except Exception:  # a figure for the page, not a reason to stop the run
        return None


def node_summary(samples: list[tuple[float, int, float]], block_start: int | None, block_end: int | None,
                 decision: ResetDecision, snapshot_block: int | None = None) -> dict[str, object]:
    """The node's side of one scenario (pure): ``samples`` are (t, rss_bytes, cpu_percent) of the
    node's process inside the scenario's window. Recorded beside the bot's resources, so a node
    that grew or slowed over the run shows on the page instead of being read as the bot's fault."""
    out: dict[str, object] = {"reset": decision.reset, "reset_reason": decision.reason,
                              "block_start": block_start, "block_end": block_end}
    if snapshot_block is not None and block_start is not None:
        # How far from the chain as deployed the scenario started: the node's age, which slows it.
        out["blocks_since_snapshot"] = max(block_start - snapshot_block, 0)
    if samples:
        rss = [s[1] for s in samples]
        cpu = [s[2] for s in samples]
        out.update(rss_mb_start=round(rss[0] / 2**20, 1), rss_mb_end=round(rss[-1] / 2**20, 1),
                   rss_mb_max=round(max(rss) / 2**20, 1), cpu_percent_mean=round(sum(cpu) / len(cpu), 1),
                   samples=len(samples))
    return out
