"""Machine calibration: a few seconds of fixed reference work, so absolute figures carry their machine.

The same code measured on two machines of the same kind differed 2-3x here (docs: machine-facts.md),
and on one shared machine a fixed loop spread 0.94-1.46 s within minutes. A throughput figure is only
readable beside what this machine and this node can do at all, measured in the same run:

- ``cpu_ref_per_s``: iterations per second of a fixed pure-Python loop (the interpreter's speed,
  which bounds every CPU-bound figure of the bot: ticks handled, API requests, signing);
- ``sign_per_s``: transactions built and signed per second by the bot's default signer (inline,
  direct codec), the bot's main CPU cost per trade;
- ``node_accept_per_s``: pre-signed plain transfers the node accepts per second through the bot's
  own ``HttpTransport`` at 64 in flight, in whatever mining mode the node runs: the ceiling of
  ``tx/s`` for this client and node, with no bot logic in the way.

Each figure comes with its spread over repetitions (``(max - min) / median``). The transfers are sent
from an account the bot does not use (the harness hands the bot dev accounts 1..N and this probe the
last one), and the probe waits, bounded, until they are mined and the pool is empty so that none of
them leaks into the first scenario.

``calibration_shift(base, head)`` says whether two runs' machines differ beyond this noise; a
comparison of two runs whose machines differ cannot attribute a change to the code.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError

# bot.* is imported inside the functions that talk to the node: the report and the judge import this
# module for Calibration and calibration_shift alone, and bot.chain pulls in eth_account.
if TYPE_CHECKING:
    from bot.chain.accounts import Account
    from bot.rpc import HttpTransport

# A rep of the CPU reference: ~30 ms on the faster machine of machine-facts.md, ~100 ms on one 3x
# slower, so seven reps plus a warm-up stay under a second anywhere here.
CPU_REF_ITERATIONS = 200_000
CPU_REF_REPS = 7
SIGN_CHUNK = 200  # transactions per signing rep: ~15 ms here, long enough for perf_counter, short enough for many reps
# Transfers per node rep: 0.1-0.7 s at the 6k-0.7k tx/s seen on machines here, long enough that 64 in
# flight is the steady state for most of it, short enough that three reps fit the budget 3x slower.
NODE_COUNT = 500
NODE_REPS = 3
NODE_CONCURRENCY = 64
NODE_TIMEOUT_S = 30.0  # the whole node measurement; a node this slow is broken, not slow
POLL_S = 0.02
# Mined wait: with no nonce progress for this long, mine a block explicitly (manual mining never mines
# by itself); 1.5 s is longer than one block at any interval the harness uses, so interval mining is
# never hurried.
STALL_S = 1.5
# After the sends, nothing of ours may stay queued (their nonces have no gap): queued and nothing
# pending for this long is anvil's stuck pool (see _requeue; likely foundry #10122), not a transaction
# in transit.
QUEUED_STUCK_S = 0.25
MAX_REPAIRS = 3
MIN_DRAIN_S = 2.0  # even when the measurement used up the budget, the transfers get this long to be mined
# Fee cap headroom over the current base fee: 4x stays includable through ~11 full blocks (the bot's
# default 2x through 5); a transfer priced out of the pool would never be mined and the wait would time out.
FEE_MULTIPLIER = 4

# Noise floor for calibration_shift. A figure's own spread comes from 3-7 reps taken within seconds;
# between runs minutes apart the same machine moves more (machine-facts.md: a fixed loop 0.94-1.46 s,
# identical benchmarks 15-20%), and a handful of reps underestimates a spread anyway. Below 25% a
# difference is what one shared machine does to itself; the 2-3x of a different machine is far above.
SHIFT_FLOOR = 0.25


class CalibrationError(HarnessError):
    """The calibration could not measure (the node refused a transfer, or did not answer in time)."""


@dataclass(frozen=True)
class Calibration:
    cpu_ref_per_s: float  # iterations/s of the fixed pure-Python reference loop (median of reps)
    cpu_ref_spread: float  # (max - min) / median over the reps: the noise of this figure
    sign_per_s: float  # bot.chain build + inline sign (direct codec), tx/s, median of reps
    sign_spread: float
    node_accept_per_s: float  # pre-signed transfers accepted per second, 64 in flight, the run's mining mode
    node_accept_spread: float
    node_mined: bool  # every calibration transfer was mined and the node's pool was empty before returning
    seconds: float  # wall time the calibration took

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Read ``as_dict()`` back; a missing or mistyped figure raises ``ValueError`` naming it."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                if f.name == "sign_spread":  # written by the first version without it: unknown noise
                    values[f.name] = 0.0
                    continue
                raise ValueError(f"calibration: missing {f.name!r}")
            v = d[f.name]
            if f.name == "node_mined":
                if not isinstance(v, bool):
                    raise ValueError(f"calibration.node_mined: expected true/false, got {v!r}")
                values[f.name] = v
            else:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise ValueError(f"calibration.{f.name}: expected a number, got {v!r}")
                values[f.name] = float(v)
        return cls(**values)


def spread(values: Sequence[float]) -> float:
    """``(max - min) / median``: the relative range of repeated measurements (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med > 0 else math.inf


def _median_and_spread(rates: Sequence[float]) -> tuple[float, float]:
    return float(statistics.median(rates)), spread(rates)


# ------------------------------------------------------------------------------------------- CPU
def _reference_loop(n: int) -> int:
    # Integer arithmetic, a dict update and a method call per iteration: the mix the bot's hot paths
    # (codec, telemetry, scheduling) run on. Fixed forever: changing it changes every calibration.
    acc = 0
    table: dict[int, int] = {}
    for i in range(n):
        k = i & 255
        acc = (acc + i * 7) ^ (acc >> 3)
        table[k] = table.get(k, 0) + 1
    return acc + len(table)


def cpu_reference(reps: int = 5) -> tuple[float, float]:
    """(median iterations/s, spread) of the fixed reference loop over ``reps`` timed reps."""
    if reps < 2:
        raise ValueError(f"cpu_reference: reps must be >= 2 (a spread needs two), got {reps}")
    _reference_loop(CPU_REF_ITERATIONS // 10)  # warm-up: the adaptive interpreter specialises on first runs
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        _reference_loop(CPU_REF_ITERATIONS)
        rates.append(CPU_REF_ITERATIONS / max((time.perf_counter_ns() - t0) / 1e9, 1e-9))
    return _median_and_spread(rates)


# ------------------------------------------------------------------------------------------ node
def dev_account(index: int) -> Account:
    """Dev account ``index`` of anvil's standard mnemonic (anvil funds as many as ``--accounts`` says)."""
    from bot.chain.accounts import from_mnemonic

    if index < 0:
        raise ValueError(f"dev account index must be >= 0, got {index}")
    return from_mnemonic(count=1, start=index)[0]


def _account(private_key: Account | bytes | str) -> Account:
    from bot.chain.accounts import Account

    if isinstance(private_key, Account):
        return private_key
    return Account.from_key(private_key, source="calibration key")


@dataclass(frozen=True)
class _Signed:
    raws: list[bytes]
    sign_rates: list[float]


async def _sign_transfers(rpc: HttpTransport, account: Account, total: int) -> tuple[_Signed, int]:
    """``total`` self-transfers from the account's pending nonce on, signed by the bot's default signer."""
    from bot.chain.fees import FeePolicy, price
    from bot.chain.signer import Signer
    from bot.chain.tx import TxRequest, build

    chain_id = int(await rpc.call("eth_chainId"), 16)
    block = await rpc.call("eth_getBlockByNumber", ["latest", False])
    fees = price(int(block.get("baseFeePerGas") or "0x0", 16), FeePolicy(base_multiplier=FEE_MULTIPLIER))
    first = int(await rpc.call("eth_getTransactionCount", [account.address, "pending"]), 16)
    # To itself: the transfer moves no value anywhere, and no account the bot trades from is touched.
    pay = TxRequest(to=account.address, value=1, label="calibration")
    signer = Signer([account], mode="inline")
    raws: list[bytes] = []
    rates: list[float] = []
    try:
        nonce = first
        while len(raws) < total:
            n = min(SIGN_CHUNK, total - len(raws))
            t0 = time.perf_counter_ns()
            for i in range(n):
                raws.append((await signer.sign(account.address, build(chain_id, nonce + i, pay, fees))).raw)
            dt = (time.perf_counter_ns() - t0) / 1e9
            nonce += n
            # A short last chunk is timed only when it is the only one: it weighs the timer more.
            if n == SIGN_CHUNK or not rates:
                rates.append(n / max(dt, 1e-9))
    finally:
        await signer.aclose()
    return _Signed(raws, rates), first


async def _send(rpc: HttpTransport, raws: Sequence[bytes], concurrency: int) -> float:
    """Seconds to have every one of ``raws`` accepted with ``concurrency`` requests in flight."""
    from bot.rpc.errors import RpcError

    it = iter(raws)

    async def worker() -> None:
        # One shared iterator: each worker takes the next transfer as soon as its last one is answered.
        for raw in it:
            await rpc.send_raw_transaction(raw, timeout=10.0)

    t0 = time.perf_counter_ns()
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(concurrency, len(raws))):
                tg.create_task(worker())
    except* RpcError as group:
        first = group.exceptions[0]
        raise CalibrationError(f"calibration: the node refused a pre-signed transfer: {first}") from first
    return (time.perf_counter_ns() - t0) / 1e9


async def _txpool(rpc: HttpTransport) -> tuple[int, int] | None:
    from bot.rpc.errors import RpcError

    try:
        status = await rpc.call("txpool_status")
    except RpcError:
        return None  # no txpool namespace: the nonce alone has to tell
    return int(status.get("pending", "0x0"), 16), int(status.get("queued", "0x0"), 16)


async def _only_ours_in_pool(rpc: HttpTransport, address: str) -> bool:
    from bot.rpc.errors import RpcError

    try:
        pool = await rpc.call("txpool_inspect")
    except RpcError:
        return False
    senders = {a.lower() for part in ("pending", "queued") for a in (pool.get(part) or {})}
    return senders <= {address.lower()}


async def _requeue(rpc: HttpTransport, address: str, raws: Sequence[bytes]) -> bool:
    """Empty the pool and resend ``raws`` (nonce order) one at a time; False when the pool holds others' work.

    anvil 1.7.1 can leave a sender's next, executable nonce in its *queued* set for good after a
    burst (about 1 calibration in 12 under automine here; harness.node.deploy meets it under interval
    mining): no block mines it, and neither ``evm_mine`` nor dropping and resending our own
    transactions helps; a fresh pool does. Only our own transfers may be in it, or the repair would
    throw away someone else's.
    """
    from bot.rpc.errors import RpcError

    if not await _only_ours_in_pool(rpc, address):
        return False
    await rpc.call("anvil_dropAllTransactions")
    for raw in raws:  # in order: out-of-order arrival is what queues a transaction in the first place
        try:
            await rpc.send_raw_transaction(raw, timeout=10.0)
        except RpcError:
            pass  # mined meanwhile ("nonce too low"): the nonce the caller polls has the last word
    return True


async def wait_mined(
    rpc: HttpTransport, address: str, raws: Sequence[bytes], first_nonce: int, deadline: float
) -> bool:
    """Wait until ``raws`` (signed by ``address``, nonces from ``first_nonce`` on) are mined and the
    node's pool is empty, or ``deadline`` (``time.monotonic()``) passes; True when both held.

    A stall is helped along: transfers stuck in the queued set are resent into a fresh pool
    (``_requeue``), and with no progress for ``STALL_S`` a block is mined explicitly."""
    from bot.rpc.errors import RpcError

    target = first_nonce + len(raws)
    last_nonce, last_progress = -1, time.monotonic()
    repairs = 0
    while True:
        mined = int(await rpc.call("eth_getTransactionCount", [address, "latest"]), 16)
        pool = await _txpool(rpc)
        if mined >= target and (pool is None or pool == (0, 0)):
            return True
        now = time.monotonic()
        if mined != last_nonce:
            last_nonce, last_progress = mined, now
        stalled = now - last_progress
        stuck_queued = pool is not None and pool[0] == 0 and pool[1] > 0 and mined < target
        if stuck_queued and stalled > QUEUED_STUCK_S and repairs < MAX_REPAIRS:
            repairs += 1
            if await _requeue(rpc, address, raws[max(mined - first_nonce, 0):]):
                last_progress = time.monotonic()
        elif stalled > STALL_S:
            try:
                await rpc.call("evm_mine")
            except RpcError:
                pass  # not a dev node: keep waiting for the node's own blocks
            last_progress = now
        if now >= deadline:
            return False
        await asyncio.sleep(POLL_S)


@dataclass(frozen=True)
class _NodeResult:
    accept_rates: list[float]
    sign_rates: list[float]
    mined: bool


async def _measure_node(
    url: str, account: Account, *, count: int, concurrency: int, reps: int, drain_deadline: float | None
) -> _NodeResult:
    from bot.rpc import HttpTransport, PoolLimits

    if count < 1 or reps < 1 or concurrency < 1:
        raise ValueError(f"node ceiling: count, concurrency and reps must be >= 1, got {count}, {concurrency}, {reps}")
    # The bot's own transport: the ceiling is what the bot's client and this node reach together.
    async with HttpTransport(url, limits=PoolLimits(max_connections=concurrency), name="calibration") as rpc:
        signed, first = await _sign_transfers(rpc, account, count * reps)
        rates = []
        try:
            async with asyncio.timeout(NODE_TIMEOUT_S):
                # Open the pool's connections first: the first rep would otherwise time TCP handshakes.
                await asyncio.gather(*(rpc.call("eth_chainId") for _ in range(concurrency)))
                for r in range(reps):
                    dt = await _send(rpc, signed.raws[r * count:(r + 1) * count], concurrency)
                    rates.append(count / max(dt, 1e-9))
        except (TimeoutError, CalibrationError) as exc:
            # What the node did accept must not leak into the first scenario: give it a bounded chance.
            pending = int(await rpc.call("eth_getTransactionCount", [account.address, "pending"]), 16)
            mined = await wait_mined(rpc, account.address, signed.raws[: max(pending - first, 0)], first,
                                     time.monotonic() + MIN_DRAIN_S)
            left = "" if mined else "; some of its transfers may still be in the node's pool"
            if isinstance(exc, CalibrationError):
                raise CalibrationError(f"{exc}{left}") from exc
            raise CalibrationError(f"calibration: the node measurement took over {NODE_TIMEOUT_S:g} s{left}") from exc
        deadline = drain_deadline if drain_deadline is not None else time.monotonic() + 10.0
        mined = await wait_mined(rpc, account.address, signed.raws, first,
                                 max(deadline, time.monotonic() + MIN_DRAIN_S))
    return _NodeResult(rates, signed.sign_rates, mined)


async def node_ceiling(
    url: str,
    private_key: Account | bytes | str,
    *,
    count: int = NODE_COUNT,
    concurrency: int = NODE_CONCURRENCY,
    reps: int = NODE_REPS,
) -> tuple[float, float]:
    """(median accepted tx/s, spread) of ``reps`` x ``count`` pre-signed transfers, ``concurrency`` in
    flight; waits (bounded) for them to be mined so nothing is left in the pool."""
    res = await _measure_node(url, _account(private_key), count=count, concurrency=concurrency, reps=reps,
                              drain_deadline=None)
    return _median_and_spread(res.accept_rates)


async def calibrate(
    url: str,
    private_key: Account | bytes | str,
    *,
    budget_s: float = 5.0,
    count: int = NODE_COUNT,
    reps: int = NODE_REPS,
    concurrency: int = NODE_CONCURRENCY,
) -> Calibration:
    """All three figures. ``budget_s`` bounds the wait for the transfers to be mined (at least
    ``MIN_DRAIN_S`` more after the measurement); the measurement itself is fixed work, 1-2 s here
    and under 4 s on a machine 3x slower, so that figures from different runs measure the same thing."""
    start = time.monotonic()
    account = _account(private_key)
    # The CPU loop blocks the event loop for under a second; nothing else of the harness needs it then.
    cpu, cpu_spread = cpu_reference(CPU_REF_REPS)
    res = await _measure_node(url, account, count=count, concurrency=concurrency, reps=reps,
                              drain_deadline=start + budget_s)
    sign, sign_sp = _median_and_spread(res.sign_rates)
    node, node_sp = _median_and_spread(res.accept_rates)
    return Calibration(
        cpu_ref_per_s=cpu,
        cpu_ref_spread=cpu_spread,
        sign_per_s=sign,
        sign_spread=sign_sp,
        node_accept_per_s=node,
        node_accept_spread=node_sp,
        node_mined=res.mined,
        seconds=time.monotonic() - start,
    )


# ----------------------------------------------------------------------------------- comparison
# (name in sentences, figure, its spread, unit)
_FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("CPU reference", "cpu_ref_per_s", "cpu_ref_spread", "it/s"),
    ("signing", "sign_per_s", "sign_spread", "tx/s"),
    ("node ceiling", "node_accept_per_s", "node_accept_spread", "tx/s"),
)


def _fmt(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f}M"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def shift_threshold(base: Calibration, head: Calibration, spread_field: str, floor: float = SHIFT_FLOOR) -> float:
    """Relative change beyond which a figure moved: the larger of both runs' spreads and ``floor``."""
    return max(float(getattr(base, spread_field)), float(getattr(head, spread_field)), floor)


def calibration_shift(
    base: Mapping[str, Any] | None, head: Mapping[str, Any] | None, *, floor: float = SHIFT_FLOOR
) -> str | None:
    """None when the two machines' calibrations agree within their noise (or either run has none);
    else a sentence naming which figure moved and by how much, e.g.
    ``'node ceiling 2,454 -> 6,010 tx/s (x2.45), beyond its noise (±25%)'``.

    A figure moved when head/base exceeds ``1 + t`` or falls under ``1 / (1 + t)``, ``t`` being the
    larger of the two runs' spreads of that figure and ``floor`` (see ``SHIFT_FLOOR``)."""
    if base is None or head is None:
        return None
    b, h = Calibration.from_dict(base), Calibration.from_dict(head)
    moved = []
    for name, key, spread_key, unit in _FIGURES:
        vb, vh = float(getattr(b, key)), float(getattr(h, key))
        if not (math.isfinite(vb) and math.isfinite(vh)) or vb <= 0 or vh <= 0:
            continue  # nothing to compare a missing figure with
        t = shift_threshold(b, h, spread_key, floor)
        ratio = vh / vb
        if ratio > 1 + t or ratio < 1 / (1 + t):
            moved.append(f"{name} {_fmt(vb)} -> {_fmt(vh)} {unit} (x{ratio:.2f}), beyond its noise (±{t:.0%})")
    return "; ".join(moved) if moved else None
