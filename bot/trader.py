"""What the bot does with a trading signal: read the pool, check funds, swap, confirm.

``Trader.handle`` is the per-pair actor handler (``bot.engine.Engine`` runs at most one per
pair at a time, so a pair's reads and its submission are never interleaved with another of its
own). It does the latency-critical part: ``price_fetch``, ``balance_check``, the decision and
``tx_submission``. Waiting for the receipt is handed to a confirmation task, so the actor can
take the pair's next signal while earlier swaps are still being mined; the sender's in-flight
limit bounds how many such tasks exist. A ``"market"`` message is the pair's wake-up for market data:
the strategy looks at the newest price (``bot.market.conflation``).

Every signal ends in exactly one counter: ``trades_ok``, ``trades_reverted``, ``trades_dropped``,
``trades_rejected``, ``trades_failed`` or ``trades_skipped`` (inside the deadband, not enough
balance, or reads refused for load: counted as ``errors{kind=insufficient_balance}`` or
``errors{kind=rate_limited}`` too). ``tx_accepted`` counts swaps the node acknowledged.

The actor never sleeps on a backoff: the reads go through the pool's ``READ`` lane
(``EndpointPool.reads``), which fails fast, so a rate-limited or failed read ends the attempt at
once and the actor takes its next tick (the pair's trade ticks conflate meanwhile: the newest
wins). A send's retries are the sender's lifecycle's, waited in the sender's own task.

Latencies, as slo-tables.md defines them: ``trade_execution`` runs from the tick's *scheduled*
time to the receipt (free of coordinated omission by construction), ``trade_execution.service``
from the moment the actor took the signal. A conflated tick is never handled, so it records none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from bot.chain.abi import encode_swap
from bot.chain.ledger import TxState
from bot.chain.sender import TxSender
from bot.chain.tx import TxRequest
from bot.debug import PlantedLeak, burn_cpu
from bot.engine.limits import RANK_IN_FLIGHT, CapacityLimiter, LimiterTimeout
from bot.engine.mailbox import Message
from bot.market.balances import BalanceQuery, BalanceReader
from bot.market.conflation import MarketSlot
from bot.market.prices import Pair, PriceReader, amount_out
from bot.rpc.errors import RateLimited, RpcError
from bot.rpc.protocol import RpcClient
from bot.strategy import Order, PoolView, StrategyParams, decide
from bot.telemetry.recorder import TAG, Telemetry

log = logging.getLogger(__name__)

SWAP_GAS = 150_000
_OUTCOME = {
    TxState.MINED_OK: "trades_ok",
    TxState.REVERTED: "trades_reverted",
    TxState.DROPPED: "trades_dropped",
    TxState.REJECTED: "trades_rejected",
    TxState.FAILED: "trades_failed",
}
_ON_CHAIN = frozenset({TxState.MINED_OK, TxState.REVERTED})


@dataclass(frozen=True, slots=True)
class PairInfo:
    market: Pair  # the pool and its tokens, as deployed
    account: str  # the address that trades this pair

    @property
    def id(self) -> str:
        return self.market.id

    @property
    def pool(self) -> str:
        return self.market.pool

    @property
    def token0(self) -> str:
        return self.market.token0

    @property
    def token1(self) -> str:
        return self.market.token1

    @property
    def base_is_token0(self) -> bool:
        return self.market.base_is_token0


class PairRead(NamedTuple):
    """One round trip's reads for a trade: the pool, and the account's two balances still undecoded."""

    pool: PoolView
    balances: tuple[object, object]  # answers for token0, token1 (a value or an RpcError)
    micros: int  # the round trip, which both price_fetch and balance_check record


class InFlight:
    """Operations in flight now, and the peak of each telemetry interval as counter ``in_flight_max``.

    Counters are sums within an interval, so the peak is published as increments: whenever the
    level passes the interval's peak so far, the difference is counted. ``observe`` also runs
    periodically so that an interval with a steady level (no new entries) still shows it.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry
        self.now = 0
        self._seq = -1
        self._peak = 0

    def observe(self) -> None:
        seq = self._t.seq
        if seq != self._seq:
            self._seq, self._peak = seq, 0
        if self.now > self._peak:
            self._t.count_untagged("in_flight_max", self.now - self._peak)
            self._peak = self.now

    def enter(self) -> None:
        self.now += 1
        self.observe()

    def leave(self) -> None:
        self.now -= 1


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """An order from the control API: buy or sell the base token, paying ``amount`` of the token in."""

    side: str  # "buy" | "sell"
    amount: int
    max_slippage_bps: float


def manual_order(pool: PoolView, m: ManualOrder) -> Order | None:
    pays_token0 = (not pool.base_is_token0) if m.side == "buy" else pool.base_is_token0
    r_in, r_out = (pool.reserve0, pool.reserve1) if pays_token0 else (pool.reserve1, pool.reserve0)
    quoted = amount_out(m.amount, r_in, r_out)
    if quoted <= 0:
        return None
    keep = 1_000_000 - round(m.max_slippage_bps * 100)
    return Order(zero_for_one=pays_token0, amount_in=m.amount, min_amount_out=quoted * keep // 1_000_000,
                 buys_base=m.side == "buy", pays_token0=pays_token0)


class Trader:
    def __init__(self, rpc: RpcClient, sender: TxSender, telemetry: Telemetry, pairs: Mapping[str, PairInfo],
                 params: StrategyParams, *, read_timeout: float = 2.0, balance_timeout: float = 2.0,
                 max_in_flight: int = 1024, slot_timeout: float = 10.0, leak: PlantedLeak | None = None,
                 burn_us: int = 0, price_delay_s: float = 0.0) -> None:
        self.prices = PriceReader(rpc, on_latency=telemetry.record, timeout=read_timeout)
        self.balances = BalanceReader(rpc, on_latency=telemetry.record, timeout=balance_timeout)
        self._rpc = rpc
        # One round trip carries both reads, so it gets the stricter of their two limits.
        self._read_timeout = min(read_timeout, balance_timeout)
        self._queries = {pid: (BalanceQuery(p.account, p.token0), BalanceQuery(p.account, p.token1))
                         for pid, p in pairs.items()}
        self._sender = sender
        self._t = telemetry
        self.pairs = pairs
        self.params = params
        # The newest market price per pair, as the pair's actor last looked at it (bot.market.conflation).
        self.reference: dict[str, float] = {}
        self.in_flight = InFlight(telemetry)
        # One slot per trade from signal to receipt. Its holder is the trade (a token object),
        # not a task: the slot passes from the actor to the confirmation task.
        self.slots = CapacityLimiter(max_in_flight, name="trades_in_flight", rank=RANK_IN_FLIGHT)
        self.slot_timeout = slot_timeout
        self._confirming: set[asyncio.Task[None]] = set()
        self.leak = leak  # debug.leak_bytes_per_trade: bytes kept per confirmed trade (None: off)
        self.burn_us = burn_us  # debug.burn_us_per_trade: CPU spent per trade on purpose (0: off)
        self.price_delay_s = price_delay_s  # debug.delay_price_fetch_ms, in seconds (0: off)

    def statistics(self) -> Any:
        return self.slots.statistics()

    def __repr__(self) -> str:
        return f"<Trader pairs={len(self.pairs)} in_flight={self.in_flight.now} confirming={len(self._confirming)}>"

    # -- reads (timed as the SLO rows define them) ----------------------------------------------

    async def read_pair(self, pair: PairInfo, scheduled: float | None) -> PairRead:
        """The pool's reserves and the trading account's balance of both tokens, in one round trip.

        The balance a trade needs depends on the side the strategy picks from the reserves, so both
        are read with them: one JSON-RPC batch of three calls instead of two sequential requests.
        ``price_fetch`` is recorded here with the round trip's duration (how long the reserves took
        to arrive); the balance answers are returned undecoded and ``balance_check`` is recorded when
        the trade uses one (``balance``), with the same duration.
        """
        q0, q1 = self._queries[pair.id]
        calls = [PriceReader.reserves_call(pair.pool), q0.call("latest"), q1.call("latest")]
        t0 = time.perf_counter_ns()
        if self.price_delay_s:  # a planted latency inside the timed round trip (debug.delay_price_fetch_ms)
            await asyncio.sleep(self.price_delay_s)
        results = await self._rpc.batch(calls, timeout=self._read_timeout)
        micros = max((time.perf_counter_ns() - t0) // 1000, 1)
        p = self.prices.accept(pair.market, results[0], micros)
        if scheduled is not None:
            self._t.record_since_scheduled("price_fetch.from_tick", scheduled)
        base0 = pair.base_is_token0
        view = PoolView(p.reserve_base if base0 else p.reserve_quote, p.reserve_quote if base0 else p.reserve_base,
                        base0)
        return PairRead(view, (results[1], results[2]), micros)

    def balance(self, pair: PairInfo, pays_token0: bool, read: PairRead, scheduled: float | None) -> int:
        """The balance of the token a trade pays in, from ``read_pair``'s answers (records balance_check)."""
        q = self._queries[pair.id][0 if pays_token0 else 1]
        value = self.balances.accept(q, read.balances[0 if pays_token0 else 1], read.micros)
        if scheduled is not None:
            self._t.record_since_scheduled("balance_check.from_tick", scheduled)
        return value

    # -- the actor handler ------------------------------------------------------------------------

    async def handle(self, pair_id: str, message: Message) -> None:
        if message.kind == "trade":
            tag = message.payload.get("tag")
            # Everything this trade records, its confirmation task included (tasks copy the
            # context), is also kept under the tick's tag: see bot.telemetry.recorder.
            token = TAG.set(tag if isinstance(tag, str) else None)
            try:
                await self.trade(pair_id, message.payload, message.scheduled)
            finally:
                TAG.reset(token)
        elif message.kind == "order":
            await self.trade(pair_id, {}, None, manual=message.payload)
        elif message.kind == "market" and isinstance(message.payload, MarketSlot):
            # The strategy's look at its pair's newest market price (bot.market.conflation).
            message.payload.look()

    async def trade(self, pair_id: str, tick: Mapping[str, Any], scheduled: float | None,
                    manual: ManualOrder | None = None) -> None:
        pair = self.pairs[pair_id]
        started = time.perf_counter_ns()
        slot = object()
        try:
            await self.slots.acquire(slot, timeout=self.slot_timeout)
        except LimiterTimeout:
            self._t.count("trades_failed")
            self._t.error("in_flight_limit")
            return
        self.in_flight.enter()
        handed_off = False
        if self.burn_us:  # a planted CPU cost on the trade path (debug.burn_us_per_trade)
            burn_cpu(self.burn_us)
        try:
            ref = float(tick.get("price") or self.reference.get(pair_id) or 0.0)
            read = await self.read_pair(pair, scheduled)
            pool = read.pool
            order = decide(pool, ref, self.params) if manual is None else manual_order(pool, manual)
            if order is None:
                self._t.count("trades_skipped")
                return
            balance = self.balance(pair, order.zero_for_one, read, scheduled)
            if balance < order.amount_in:
                self._t.count("trades_skipped")
                self._t.error("insufficient_balance")
                return
            data = encode_swap(order.amount_in, order.zero_for_one, order.min_amount_out, pair.account)
            rec = await self._sender.submit(pair.account, TxRequest(to=pair.pool, data=data, gas=SWAP_GAS,
                                                                    label=pair_id))
            # Refused before the node took it: rejected or failed. A record already mined (a send
            # whose answer was lost, found by the lookup) was accepted: it is counted as such and
            # confirmed below, or trades_ok would exceed tx_accepted.
            if rec.terminal and rec.state not in _ON_CHAIN:
                self._t.count(_OUTCOME.get(rec.state, "trades_failed"))
                self._t.error(rec.error_kind or str(rec.state))
                return
            self._t.count("tx_accepted")
            if scheduled is not None:
                self._t.record_since_scheduled("tx_submission.from_tick", scheduled)
            task = asyncio.create_task(self._confirm(rec, scheduled, started, slot), name=f"confirm-{pair_id}")
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)
            handed_off = True
        except RateLimited:
            # The node (or our limit of it) asked for less: the tick is dropped, not retried late.
            self._t.count("trades_skipped")
            self._t.error("rate_limited")
        except RpcError as exc:
            self._t.count("trades_failed")
            self._t.error(exc.kind)
        finally:
            if not handed_off:
                self.in_flight.leave()
                self.slots.release(slot)

    async def _confirm(self, rec: Any, scheduled: float | None, started_ns: int, slot: object) -> None:
        try:
            final = await self._sender.wait(rec)
            self._t.count(_OUTCOME.get(final.state, "trades_failed"))
            if final.state is TxState.MINED_OK:
                if self.leak is not None:
                    self.leak.keep()
                if scheduled is not None:
                    self._t.record_since_scheduled("trade_execution", scheduled)
                    self._t.record_since_ns("trade_execution.service", started_ns)
                else:
                    self._t.record_since_ns("trade_execution", started_ns)
            else:
                self._t.error(final.error_kind or str(final.state))
                log.info("trade %s ended %s: %s", final.label, final.state, final.reason)
        finally:
            self.in_flight.leave()
            self.slots.release(slot)

    async def drain(self, within: float) -> None:
        if self._confirming:
            await asyncio.wait(set(self._confirming), timeout=within)
