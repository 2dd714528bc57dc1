"""The bot assembled: config -> RPC pool, chain subscriptions, signer, sender, engine, feed, API.

Start order is dependency order and stop order is its reverse, each step bounded by
``timeouts.shutdown``: stop taking signals (feed), let actors finish what they hold (engine),
let submitted transactions reach a terminal state (sender drain: a swap in flight is followed
to its receipt, never abandoned), then close subscriptions and connections. On SIGTERM the same
path runs, so a stopped bot reports every transaction it sent.

The long-running background tasks (WebSocket subscriber, heads pump, receipts, feed) run under
a ``Supervisor``: a crash is logged, counted and restarted with backoff, and ``/health`` names a
task while it is down. ``run_bot`` returns ``EXIT_FATAL`` (3) when the bot cannot start (node
unreachable or answering garbage, API port taken) or a task exceeds its restart budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hdrh.histogram import HdrHistogram

from bot.api import OrderRequest
from bot.chain.fee_oracle import FeeOracle
from bot.chain.heads import pump_heads
from bot.chain.ledger import Ledger
from bot.chain.ledger_view import ledger_document
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Signer
from bot.config import BotConfig, ConfigError
from bot.engine.actors import Engine, EngineSettings
from bot.engine.mailbox import Message, Priority, PutResult
from bot.engine.supervisor import Supervisor
from bot.engine.watchdog import Watchdog
from bot.feed import FeedClient
from bot.heapwatch import HeapWatch, register_heap_levels
from bot.market.prices import Pair
from bot.redact import redact_text
from bot.rpc import (
    BatchPolicy,
    EndpointPool,
    HealthPolicy,
    HttpTransport,
    Lane,
    LimitPolicy,
    PoolLimits,
    RetryPolicy,
    RpcError,
    Timeouts,
    WsSubscriber,
    shapes,
)
from bot.rpc.wscalls import WsCallTransport
from bot.shard.merge import decoded_sum
from bot.shard.plan import shard_accounts, shard_entries
from bot.strategy import StrategyParams
from bot.telemetry.gcclock import is_auxiliary_op
from bot.telemetry.gcwatch import GcWatch
from bot.telemetry.observer import TelemetryObserver, register_engine_gauges
from bot.telemetry.recorder import Telemetry
from bot.trader import ManualOrder, PairInfo, Trader

log = logging.getLogger("bot")

EXIT_FATAL = 3  # docs/bot.md, exit codes


class BotFatal(RuntimeError):
    """The bot cannot run on: it did not start, or a critical task exceeded its restart budget."""


def load_pairs(config: BotConfig, accounts: list[str]) -> dict[str, PairInfo]:
    try:
        deployment = orjson.loads(Path(config.deployment).read_bytes())
        raw = deployment["pairs"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"deployment: cannot read pairs from {config.deployment} ({exc}); "
                          "point it at the deployment.json written by the harness's deploy step") from exc
    wanted = None if config.pairs == "all" else set(config.pairs)
    if config.shard is not None:  # this process trades only its hand of the selected pairs (bot.shard.plan)
        raw, wanted = shard_entries(raw, config.pairs, config.shard), None
    pairs: dict[str, PairInfo] = {}
    for i, p in enumerate(raw):
        if wanted is not None and p["id"] not in wanted:
            continue
        # Pairs are spread over accounts round-robin: each account's nonces are one queue at the
        # node, so more accounts means more independent queues.
        try:
            market = Pair.from_deployment(p)
        except ValueError as exc:
            raise ConfigError(f"deployment: {exc}") from exc
        pairs[market.id] = PairInfo(market, accounts[i % len(accounts)])
    if wanted is not None and (missing := wanted - set(pairs)):
        raise ConfigError(f"pairs: {sorted(missing)} are not in {config.deployment}; use ids from its 'pairs'")
    if not pairs:
        raise ConfigError(f"pairs: none selected from {config.deployment}")
    return pairs


@dataclass
class Summary:
    seconds: float
    counters: dict[str, int]
    latency_ms: dict[str, dict[str, float]]

    def render(self) -> str:
        lines = [f"bot ran {self.seconds:.1f} s"]
        keys = ("tx_accepted", "trades_ok", "trades_reverted", "trades_dropped", "trades_rejected", "trades_failed",
                "trades_skipped", "ticks_handled", "ticks_conflated{kind=trade}")
        lines.append("  " + "  ".join(f"{k}={self.counters.get(k, 0)}" for k in keys))
        errors = {k: v for k, v in self.counters.items() if k.startswith("errors")}
        lines.append("  errors by kind: " + (", ".join(f"{k[7:-1]}={v}" for k, v in sorted(errors.items())) or "none"))
        lines.append(f"  {'operation':<28}{'count':>8}{'mean':>9}{'p50':>9}{'p95':>9}{'p99':>9}  (ms)")
        for op, s in self.latency_ms.items():
            lines.append(f"  {op:<28}{s['count']:>8.0f}{s['mean']:>9.2f}{s['p50']:>9.2f}{s['p95']:>9.2f}"
                         f"{s['p99']:>9.2f}")
        return "\n".join(lines)


def summarize(telemetry: Telemetry) -> dict[str, dict[str, float]]:
    """Latency per operation over the retained intervals (the last ``keep`` seconds), in ms."""
    encoded: dict[str, list[str]] = {}
    for iv in telemetry.intervals_since(None):
        for op, enc in iv.histograms.items():
            if is_auxiliary_op(op):  # a pause split by generation, a subset of an operation: not operations
                continue
            encoded.setdefault(op, []).append(enc)
    merged: dict[str, HdrHistogram] = {}
    for op, encs in encoded.items():
        if (total := decoded_sum(encs)) is not None:
            merged[op] = total
    out: dict[str, dict[str, float]] = {}
    for op in sorted(merged):
        h = merged[op]
        out[op] = {"count": float(h.get_total_count()), "mean": h.get_mean_value() / 1000,
                   **{f"p{p}": h.get_value_at_percentile(p) / 1000 for p in (50, 95, 99)}}
    return out


class Bot:
    def __init__(self, config: BotConfig) -> None:
        self.config = config
        self.accounts = shard_accounts(config.accounts.load(), config.shard)
        self.addresses = [a.address for a in self.accounts]
        self.pairs = load_pairs(config, self.addresses)
        c = config
        self.telemetry = Telemetry(keep=c.telemetry.keep, interval_s=c.telemetry.interval_s)
        self.gc = GcWatch(self.telemetry)  # collector pauses into the telemetry (bot.telemetry.gcwatch)
        timeouts = Timeouts(connect=c.timeouts.connect, read=c.timeouts.read, total=c.timeouts.total)
        limits = PoolLimits(max_connections=c.engine.rpc_concurrency,
                            max_response_bytes=c.engine.rpc_max_response_bytes)
        batching = BatchPolicy(enabled=c.engine.rpc_batch, window=c.engine.rpc_batch_window,
                               max_size=c.engine.rpc_batch_size)
        # The real URLs: from the environment when the file holds only their redacted forms.
        http_urls, ws_url = c.endpoints.http_urls(), c.endpoints.ws_url()
        self.transports: list[HttpTransport | WsCallTransport] = (
            [HttpTransport(url, timeouts, limits, batching=batching) for url in http_urls]
            if c.engine.rpc_transport == "http" else
            # The same endpoints, each over one WebSocket on its host and port (ws_url_for).
            [WsCallTransport(url, timeouts) for url in http_urls])
        # One knob caps both what a Retry-After may park and what one call may wait on it; the
        # adaptive limit starts at, and never exceeds, the connection pool's size.
        self.rpc = EndpointPool(self.transports, RetryPolicy(max_retry_after=c.engine.max_retry_after),
                                HealthPolicy(max_retry_after=c.engine.max_retry_after),
                                limit_policy=LimitPolicy(max_window=c.engine.rpc_concurrency))
        self.ws = WsSubscriber(ws_url, backfill_client=self.rpc) if ws_url else None
        self.heads_key = self.ws.subscribe_new_heads() if self.ws else None
        self.signer = Signer(self.accounts, mode=c.engine.signing, workers=c.engine.workers)
        self.nonces = NonceManager(self.rpc)
        self.supervisor = Supervisor(telemetry=self.telemetry)
        # Receipts and fees are shared by every pair: a Retry-After slept inside either would stall all
        # confirmations or all submissions. They fail fast instead: the tracker fetches the block again
        # on its next pass, the fee oracle keeps its last fee.
        confirm = self.rpc.view(Lane.CONFIRM, fail_fast=True)
        self.receipts = ReceiptTracker(confirm, on_invalid=self._invalid)
        if self.ws is not None:
            # The subscription degraded (reconnecting for a while): receipts poll until it is live again.
            self.ws.on_link(self.receipts.use_subscription)
        self.fees = FeeOracle(confirm)
        self.sender: TxSender | None = None
        self.trader: Trader | None = None
        self.engine: Engine | None = None
        self.feed: FeedClient | None = None
        self.watchdog: Watchdog | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._api_runner: Any = None
        self.started_at = time.monotonic()
        # heap_blocks always; tracemalloc's heap_bytes and growth sites only with debug.heap_trace_frames
        self.heapwatch = HeapWatch(c.debug.heap_trace_frames)

    def __repr__(self) -> str:
        return f"<Bot pairs={len(self.pairs)} accounts={len(self.accounts)} {self.rpc!r}>"

    async def _pump_heads(self) -> None:
        """newHeads over WebSocket -> receipts and the fee oracle (no polling while subscribed)."""
        assert self.ws is not None
        await pump_heads(self.ws, self._on_head, on_invalid=self._invalid)

    def _on_head(self, head: shapes.Head) -> None:
        self.fees.on_head(head.base_fee)
        self.receipts.on_head(head.number)

    def _invalid(self, what: str) -> None:
        """A malformed item from the node, skipped: counted as ``invalid_responses{what=...}``."""
        self.telemetry.count_untagged(f"invalid_responses{{what={what}}}")

    async def start(self) -> None:
        c = self.config
        chain_id = shapes.small_quantity(await self.rpc.call("eth_chainId", [], timeout=c.timeouts.total),
                                         "eth_chainId")
        # Supervised like the other background tasks: a rotation that died once closed no interval
        # for the rest of the bot's life while /health stayed green (see the recorder's _Tagged.close).
        self.supervisor.spawn("telemetry", self.telemetry.run)
        self.heapwatch.start()
        register_heap_levels(self.telemetry, self.heapwatch)
        self.gc.install(threshold=c.engine.gc_threshold)
        self.telemetry.gauge_provider("tasks_down", lambda: float(len(self.supervisor.health()[1])))
        if self.ws is not None:
            await self.ws.start(spawn=lambda run: self.supervisor.spawn("ws", run))
            self.supervisor.spawn("heads", self._pump_heads)
            self._ws_gauges(self.ws)
        # Heads are pushed (on_head) while the subscription is live; polled otherwise.
        self.supervisor.spawn("receipts", self.receipts.run)
        await self.signer.warm_up()
        self.sender = TxSender(self.rpc, self.signer, self.nonces, self.receipts, self.fees,
                               config=SenderConfig(chain_id=chain_id, send_timeout=c.timeouts.submit,
                                                   confirm_timeout=c.timeouts.confirm,
                                                   max_in_flight=c.engine.max_in_flight),
                               on_latency=self.telemetry.record)
        params = StrategyParams(c.strategy.trade_size, c.strategy.deadband_bps, c.strategy.max_slippage_bps)
        # Reads through the pool's READ lane: they fail fast, so no actor sleeps on a backoff.
        leak = None
        if c.debug.leak_bytes_per_trade > 0:
            from bot.debug import PlantedLeak

            leak = PlantedLeak(c.debug.leak_bytes_per_trade)
            log.warning("debug.leak_bytes_per_trade = %d: keeping that many bytes per confirmed trade "
                        "(a planted leak, for testing a leak detector)", c.debug.leak_bytes_per_trade)
        self.trader = Trader(self.rpc.reads(), self.sender, self.telemetry, self.pairs, params,
                             read_timeout=c.timeouts.price_fetch, balance_timeout=c.timeouts.balance_check,
                             max_in_flight=c.engine.max_in_flight, slot_timeout=c.timeouts.handler, leak=leak,
                             burn_us=c.debug.burn_us_per_trade, price_delay_s=c.debug.delay_price_fetch_ms / 1000)
        if c.debug.burn_us_per_trade or c.debug.delay_price_fetch_ms:
            log.warning("debug: burn_us_per_trade = %d, delay_price_fetch_ms = %g: a planted slowdown (for proving "
                        "harness gate)", c.debug.burn_us_per_trade, c.debug.delay_price_fetch_ms)
        # A pair keeps only its newest queued trade signal: one it could not take in time is stale.
        conflate = frozenset({"trade"}) if c.engine.conflate_trades else frozenset()
        self.engine = Engine(self.trader.handle, EngineSettings(mailbox_size=c.engine.mailbox_size,
                                                                dispatch_slots=c.engine.dispatch_slots,
                                                                handler_timeout_s=c.timeouts.handler,
                                                                conflate=conflate),
                             observer=TelemetryObserver(self.telemetry))
        for pair_id in self.pairs:
            self.engine.add_pair(pair_id)
        register_engine_gauges(self.telemetry, self.engine)
        await self.engine.start()
        self.watchdog = Watchdog(self.engine.running_handlers, telemetry=self.telemetry)
        self.watchdog.start()
        self._gauges()
        self._tasks.append(asyncio.create_task(self._peaks(), name="peaks"))
        from bot.api import start_api

        self._api_runner = await start_api(self)
        if c.engine.gc_freeze:  # started up, not yet trading: what exists now lives as long as the bot
            self.gc.freeze()
        if c.feed.url:
            self.feed = FeedClient(c.feed.url, self.telemetry, self.engine.post, self.trader.reference, self.pairs)
            self.supervisor.spawn("feed", self.feed.run)
        log.info("bot started: %d pairs, %d accounts, chain %d, api http://%s:%d", len(self.pairs),
                 len(self.accounts), chain_id, c.api.host, c.api.port)

    def _gauges(self) -> None:
        t = self.telemetry
        assert self.trader is not None and self.sender is not None
        trader, sender = self.trader, self.sender
        t.gauge_provider("in_flight", lambda: float(trader.in_flight.now))
        t.gauge_provider("tx_in_flight", lambda: float(sender.statistics().in_flight))
        # The tightest endpoint's adaptive limit: below engine.rpc_concurrency after 429s.
        t.gauge_provider("rpc_limit", lambda: float(min((e.limit.limit for e in self.rpc.statistics().endpoints
                                                         if e.limit is not None), default=0)))
        t.gauge_provider("net_bytes_sent", lambda: float(self._net_bytes("bytes_sent")))
        t.gauge_provider("net_bytes_received", lambda: float(self._net_bytes("bytes_received")))
        leak = trader.leak
        if leak is not None:  # what the planted leak holds, so a test can tell it from the detector's figure
            t.gauge_provider("debug_leaked_bytes", lambda: float(leak.statistics().held_bytes))

    def _ws_gauges(self, ws: WsSubscriber) -> None:
        """Cumulative, so a reader that was not polling when the socket dropped still sees that it came back
        (the chaos scenarios read them): ``ws_connects`` counts connections that subscribed and caught up,
        ``ws_backfilled`` what the catching up delivered, ``receipts_fallbacks`` switches to polling."""
        t = self.telemetry
        t.gauge_provider("ws_connects", lambda: float(ws.statistics().connects))
        t.gauge_provider("ws_reconnects", lambda: float(ws.statistics().reconnects))
        t.gauge_provider("ws_backfilled", lambda: float(ws.statistics().backfilled))
        t.gauge_provider("receipts_fallbacks", lambda: float(self.receipts.statistics().fallbacks))

    def _net_bytes(self, which: str) -> int:
        """Bytes on the bot's own sockets: RPC over HTTP, chain subscriptions, and the feed."""
        total = sum(int(getattr(x.statistics(), which)) for x in self.transports)
        if self.ws is not None:
            total += int(getattr(self.ws.statistics(), which))
        if self.feed is not None and which == "bytes_received":
            total += self.feed.bytes_received
        return total

    async def _peaks(self) -> None:
        """Keep ``in_flight_max`` right for intervals in which nothing new entered."""
        assert self.trader is not None
        while True:
            await asyncio.sleep(self.telemetry.interval_s / 4)
            self.trader.in_flight.observe()

    async def stop(self) -> None:
        c = self.config
        # Heap tracing is for the run, not the shutdown: under memray it made the exit summary's Python
        # histogram walks take ~10 s with 100 pairs, past the harness's 15-s grace (memray's capture was lost).
        self.heapwatch.stop()
        await self.supervisor.stop("feed")  # stop taking signals first; receipts run on until the drain
        if self.feed is not None:
            await self.feed.stop()  # the client's own state; its task was the supervisor's
        if self.engine is not None:
            await self.engine.stop(deadline_s=c.timeouts.shutdown / 2, drain=False)
        if self.sender is not None:
            if not await self.sender.drain(c.timeouts.shutdown):
                log.warning("shutdown: transactions still in flight after %.0f s; recorded as failed",
                            c.timeouts.shutdown)
            await self.sender.aclose()
        if self.trader is not None:
            await self.trader.drain(1.0)
        if self._api_runner is not None:
            await self._api_runner.cleanup()
        await self.supervisor.aclose()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.watchdog is not None:
            await self.watchdog.stop()
        await self.receipts.aclose()
        if self.ws is not None:
            await self.ws.aclose()
        await self.signer.aclose()
        await self.rpc.aclose()
        self.gc.uninstall()  # before the last rotation, which then records its pending pauses
        await self.telemetry.stop()  # its task was the supervisor's: this closes the open interval

    async def submit_order(self, order: OrderRequest) -> dict[str, Any]:
        """``POST /orders``: queue a manual order on its pair's actor (risk-exit priority: it goes
        before pending strategy entries). The swap's outcome is counted like any trade."""
        if self.engine is None or order.pair not in self.pairs:
            raise LookupError(order.pair)
        slip = self.config.strategy.max_slippage_bps if order.max_slippage_bps is None else order.max_slippage_bps
        manual = ManualOrder(order.side, order.amount, slip)
        result = self.engine.post(order.pair, Message(Priority.RISK_EXIT, "order", manual))
        return {"pair": order.pair, "queued": result is not PutResult.REJECTED, "mailbox": result.value,
                "client_id": order.client_id}

    def ledger_dump(self, records: bool = True) -> dict[str, Any]:
        """``GET /ledger``: the transaction ledger and its per-account tallies (``bot.chain.ledger_view``)."""
        ledger = self.sender.ledger if self.sender is not None else Ledger(keep_recent=0)
        return ledger_document(ledger, self.nonces.start_nonces(), records=records)

    async def drain_ledger(self, within: float) -> dict[str, Any]:
        """``POST /ledger/drain``: wait, bounded, until every intent is terminal (nothing is stopped)."""
        t0 = time.monotonic()
        drained = True if self.sender is None else await self.sender.drain(within)
        in_flight = 0 if self.sender is None else self.sender.statistics().in_flight
        return {"drained": drained, "in_flight": in_flight, "waited_s": round(time.monotonic() - t0, 3)}

    def summary(self) -> Summary:
        counters = self.telemetry.counter_totals()
        return Summary(time.monotonic() - self.started_at, counters, summarize(self.telemetry))


async def _start(bot: Bot) -> None:
    """``bot.start()``; ``BotFatal`` when it fails on the outside world (the node, the API port) or a
    task gives up meanwhile. Anything else is a bug and propagates with its traceback (exit 1)."""
    starting = asyncio.create_task(bot.start(), name="bot-start")
    fatal = asyncio.create_task(bot.supervisor.wait_fatal())
    try:
        await asyncio.wait({starting, fatal}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        fatal.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    if starting.cancelled():
        raise BotFatal(f"could not start: {bot.supervisor.fatal}")
    try:
        starting.result()
    except (RpcError, OSError, TimeoutError) as exc:
        raise BotFatal(f"could not start: {type(exc).__name__}: {exc}") from exc


async def run_bot(config: BotConfig, seconds: float | None = None) -> int:
    """Run until SIGTERM/SIGINT or ``seconds``: 0 after a clean stop, 2 on a bad config,
    ``EXIT_FATAL`` when the bot could not start or a critical task exceeded its restart budget."""
    try:
        bot = Bot(config)
    except ValueError as exc:  # ConfigError, AccountLoadError: the message names the field and the fix
        print(f"bot: config error: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await _start(bot)
    except BotFatal as exc:
        print(f"bot: fatal: {redact_text(str(exc))}", file=sys.stderr, flush=True)
        try:
            await bot.stop()
        except Exception:  # the fatal error is the one to report; a teardown failure is only logged
            log.exception("stopping the bot after a failed start")
        return EXIT_FATAL
    stopping = asyncio.create_task(stop.wait())
    fatal = asyncio.create_task(bot.supervisor.wait_fatal())
    try:
        await asyncio.wait({stopping, fatal}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (stopping, fatal):
            waiter.cancel()
        await bot.stop()
    print(bot.summary().render(), flush=True)
    if bot.supervisor.fatal is not None:
        print(f"bot: fatal: {redact_text(bot.supervisor.fatal)}", file=sys.stderr, flush=True)
        return EXIT_FATAL
    return 0
