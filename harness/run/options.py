"""What one run is asked to do (``RunOptions``, immutable, validated on construction)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.load.jsonrpc import check_target
from harness.node.faultnet import ProxySetup, proxy_setup
from harness.node.mining import MiningMode


@dataclass(frozen=True)
class RunOptions:
    profile: str = "quick"
    pairs: int = 100
    out: Path = Path("reports")
    node_url: str | None = None
    allow_remote: bool = False  # a non-loopback node_url is refused without it
    deployment: Path | None = None
    block_time: float | None = None
    slo: Path | None = None
    baseline: Path | None = None
    seed: int = 1
    progress: bool = True
    memray: bool = False
    accounts: int = 4
    faults: str | None = None  # a FaultPlan text: the bot talks to the node through the fault proxy
    network: str = "loopback"  # a network profile (harness.node.faultnet); not loopback: through the proxy
    fault_schedule: str | None = None  # (t, plan) changes, as text or a .toml path (harness.node.faultschedule)
    locust_workers: int = 0  # > 0: the api scenario runs Locust as a master with this many workers
    fresh_bot: bool = False  # a new bot process for every scenario
    reset_chain: bool = True  # our anvil reverted to its post-deployment snapshot between scenarios
    chain_reset_blocks: int = 200  # ... once its chain grew more than this since the snapshot
    calibrate: bool = True  # measure the node's ceiling and a CPU reference before the scenarios
    settle_timeout_s: float = 60.0  # longest wait for quiescence before a scenario
    soak_rate: float | None = None  # soak: --rate as given (None: chosen from the calibration, harness.run.soakrate)
    soak_seconds: float = 0.0  # soak: its planned length (a long one mines slower blocks: default_block_time)
    profile_bot: bool = False  # py-spy attached to the bot during every scenario (harness.run.scenario_profile)
    bot_wrap: tuple[str, ...] = ()  # a command the bot runs inside (py-spy record ... --)
    extra_bot: dict[str, Any] = field(default_factory=dict)
    bot_allocator: str = "system"  # the bot's malloc: system, jemalloc or mimalloc (LD_PRELOAD; harness.run.allocator)

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= 500:
            raise HarnessError(f"--pairs: {self.pairs} is out of range; give 1..500")
        if self.node_url:
            check_target(self.node_url, self.allow_remote, flag="--node-url")
        if self.node_url and not self.deployment:
            raise HarnessError("--node-url needs --deployment (the deployment.json of the contracts on that node)")
        if self.block_time is not None and self.block_time < 0:
            raise HarnessError("--block-time: give seconds >= 0 (0 = automine)")
        if self.chain_reset_blocks < 0:
            raise HarnessError("--chain-reset-blocks: give a block count >= 0 (0: revert before every scenario "
                               "the chain moved for; --keep-chain: never)")
        if not 0 < self.settle_timeout_s <= 600:
            raise HarnessError("--settle-timeout: give seconds in (0, 600]")
        if self.bot_allocator not in ("system", "jemalloc", "mimalloc"):
            raise HarnessError(f"--bot-allocator {self.bot_allocator!r}: use system, jemalloc or mimalloc")
        self.proxy  # noqa: B018  a bad plan, profile or schedule fails here, naming the option

    @property
    def proxy(self) -> ProxySetup | None:
        """What goes between bot and node (None: nothing, the bot talks to the node directly)."""
        return proxy_setup(self.network, self.faults, self.fault_schedule)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mining_for(opts: RunOptions) -> MiningMode:
    # Interval mining, not automine: anvil's automine stalls for >12 s under a burst from one
    # sender (machine-facts.md, foundry #10122). 50 ms blocks keep the wait for inclusion small
    # next to the trade_execution target (mean < 100 ms) while never stalling.
    bt = default_block_time(opts) if opts.block_time is None else opts.block_time
    return MiningMode.automine() if bt == 0 else MiningMode.interval(bt)


# A soak longer than this mines 1-s blocks unless --block-time says otherwise. anvil 1.7.1's own work
# per block grows with the number of blocks it holds (docs/PERFORMANCE.md, "anvil slows as its chain
# grows"; a soak cannot revert its chain under a live bot): ~2 us per block held, per block mined. At
# 20 blocks/s that is a saturated node within an hour (a 60-minute soak's anvil took 33% of a core
# after 9 minutes and its trades waited 60 s); at 1 block/s it is under 1% of a core after an hour
# and ~18% after 24 hours. The price: a trade waits up to a second for its block, so trade_execution
# is the node's block time, and the judge says so (harness.slo.judge).
LONG_SOAK_S = 15 * 60.0
LONG_SOAK_BLOCK_TIME_S = 1.0


def default_block_time(opts: RunOptions) -> float:
    return LONG_SOAK_BLOCK_TIME_S if opts.profile == "soak" and opts.soak_seconds > LONG_SOAK_S else 0.05
