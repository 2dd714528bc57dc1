"""``TxSender``: allocate a nonce, build, sign, then perform what the transaction's lifecycle asks.

The pipeline for one intent (a ``TxRequest`` from one account):

1. ``tx_submission`` starts: the decision to send. Waiting for an in-flight slot, the fee
   oracle, the nonce, building and signing all count, as slo-tables.md defines.
2. The hash is computed locally and ``watch``ed *before* the first send, so its receipt cannot
   be missed.
3. From the signature on, a pure ``TxLifecycle`` (bot/chain/lifecycle.py) decides everything:
   which endpoint gets the same signed bytes on each attempt (the intent is never re-signed),
   when to retry, which endpoints to ask after an ambiguous outcome (every one that may hold the
   bytes), what a refusal means for the nonce, and the one terminal state. This shell only
   performs its actions: sends and lookups on named endpoints (``_routes``), bounded waits on
   the receipt, ledger transitions, nonce release / confirmation, hole filling and resyncs.
4. ``tx_submission`` ends when the lifecycle records ``submitted`` (``on_latency`` is called).
5. Every failure while performing an action is an event for the machine (a failed send, an
   unreachable lookup, a receipt that could not be read); a cancellation or a bug becomes
   ``Abandoned``. So the record always reaches a terminal state and frees its in-flight slot,
   and the nonce is never freed while bytes signed with it could still land.

Each pipeline runs in a task the sender owns, shielded from the caller: cancelling a caller
cannot leave a transaction half-recorded. Freed nonces below in-flight ones are holes that
stall every later transaction in the node's queue; a new intent reuses them first, and if none
comes within ``hole_fill_after`` seconds the sender fills them with a zero-value self-transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.chain import lifecycle as lc
from bot.chain._routes import Routes
from bot.chain.errors import TxFailed
from bot.chain.fee_oracle import FeeOracle
from bot.chain.ledger import Ledger, NonceFate, TxRecord, TxState
from bot.chain.nonces import NonceAllocator, NonceManager
from bot.chain.receipts import Receipt, ReceiptTracker
from bot.chain.signer import Signer
from bot.chain.tx import TxRequest, build
from bot.rpc.errors import RpcError
from bot.rpc.protocol import RpcClient

log = logging.getLogger(__name__)

LatencyHook = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class SenderConfig:
    chain_id: int
    send_timeout: float = 5.0
    send_attempts: int = 4
    confirm_timeout: float = 30.0
    pending_grace: float = 10.0
    max_pending_wait: float = 120.0
    lookup_attempts: int = 3
    max_in_flight: int = 1024
    hole_fill_after: float = 0.5
    keep_recent: int = 1000

    def __post_init__(self) -> None:
        for name in ("send_timeout", "confirm_timeout", "pending_grace", "max_pending_wait", "hole_fill_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sender.{name} must be > 0, got {getattr(self, name)}")
        for name in ("send_attempts", "lookup_attempts", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"sender.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    max_in_flight: int
    in_flight: int
    opened: int
    by_state: dict[str, int]
    fillers: int
    resyncs: int


@dataclass(slots=True, eq=False)
class _Flight:
    """One signed intent being driven by its lifecycle (the shell's side of it)."""

    rec: TxRecord
    alloc: NonceAllocator
    machine: lc.TxLifecycle
    t0: int
    acked: asyncio.Future[TxRecord] | None
    receipts: dict[str, asyncio.Future[Receipt]]
    fed: set[str] = field(default_factory=set)  # hashes whose receipt the machine already got
    watch_late: bool = False


class TxSender:
    def __init__(
        self,
        rpc: RpcClient,
        signer: Signer,
        nonces: NonceManager,
        receipts: ReceiptTracker,
        fees: FeeOracle,
        *,
        config: SenderConfig,
        on_latency: LatencyHook | None = None,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._routes = Routes(rpc)
        self._signer = signer
        self._nonces = nonces
        self._receipts = receipts
        self._fees = fees
        self.config = config
        self._policy = lc.LifecyclePolicy(
            send_attempts=config.send_attempts,
            confirm_timeout=config.confirm_timeout,
            pending_grace=config.pending_grace,
            max_pending_wait=config.max_pending_wait,
        )
        self._on_latency = on_latency
        self._clock = clock_ns
        self.ledger = Ledger(keep_recent=config.keep_recent)
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._done: dict[int, asyncio.Future[TxRecord]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fillers_pending: set[str] = set()
        self._resyncs_pending: set[str] = set()
        self._fillers = 0
        self._resyncs = 0
        self._closed = False

    # -- public API -------------------------------------------------------------------------

    async def submit(self, sender: str, request: TxRequest) -> TxRecord:
        """Returns once the node acknowledged the hash, or the intent ended (rejected/failed)."""
        if self._closed:
            raise RuntimeError("TxSender is closed")
        t0 = self._clock()
        acked: asyncio.Future[TxRecord] = asyncio.get_running_loop().create_future()
        self._spawn(self._pipeline(sender, request, t0, acked, filler=False))
        return await asyncio.shield(acked)

    async def wait(self, rec: TxRecord) -> TxRecord:
        """Wait for the record's terminal state (bounded: tracking ends by ``max_pending_wait``)."""
        fut = self._done.get(rec.id)
        if fut is None:
            return rec
        return await asyncio.shield(fut)

    async def execute(self, sender: str, request: TxRequest) -> TxRecord:
        return await self.wait(await self.submit(sender, request))

    def statistics(self) -> SenderStatistics:
        ls = self.ledger.statistics()
        return SenderStatistics(
            max_in_flight=self.config.max_in_flight,
            in_flight=ls.in_flight,
            opened=ls.opened,
            by_state=ls.by_state,
            fillers=self._fillers,
            resyncs=self._resyncs,
        )

    async def drain(self, within: float) -> bool:
        """Wait until every live record is terminal; False if ``within`` seconds ran out first."""
        try:
            async with asyncio.timeout(within):
                while self._done or self._tasks:
                    await asyncio.gather(*list(self._done.values()), *list(self._tasks), return_exceptions=True)
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        """Stop tracking; live records end as ``failed`` ("sender closed"), never vanish."""
        self._closed = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for rec in self.ledger.live():
            self._finish(rec, TxState.FAILED, error_kind=TxFailed.kind, reason="sender closed before an outcome")

    def __repr__(self) -> str:
        s = self.ledger.statistics()
        return (
            f"TxSender(in_flight={s.in_flight}/{self.config.max_in_flight}, opened={s.opened}, closed={self._closed})"
        )

    # -- pipeline: up to the signature ------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pipeline(
        self, sender: str, request: TxRequest, t0: int, acked: asyncio.Future[TxRecord] | None, *, filler: bool
    ) -> None:
        await self._slots.acquire()
        slot_held = True
        rec: TxRecord | None = None
        try:
            if not filler:
                rec = self._open(sender, request.label, t0)
            try:
                alloc = await self._nonces.allocator(sender)
                fees = await self._fees.fees()
            except RpcError as exc:
                if rec is not None:
                    self._finish(rec, TxState.FAILED, error_kind=exc.kind, reason=f"before nonce assignment: {exc}")
                return
            if rec is None:  # a filler: opened only if the hole is still there
                if not alloc.holes():
                    return  # a real intent reused the hole meanwhile
                rec = self._open(sender, request.label, t0)
            nonce = alloc.allocate()
            rec.nonce = nonce
            try:
                signed = await self._signer.sign(sender, build(self.config.chain_id, nonce, request, fees))
            except Exception as exc:
                alloc.release(nonce)
                self._finish(rec, TxState.FAILED, error_kind="sign", reason=f"signing failed: {exc!r}")
                return
            rec.hash = signed.hash
            rec.candidates.append(signed.hash)
            machine = lc.TxLifecycle(
                tx_hash=signed.hash, raw=signed.raw, nonce=nonce, endpoints=self._routes.ranked(), policy=self._policy
            )
            flight = _Flight(rec, alloc, machine, t0, acked, {signed.hash: self._receipts.watch(signed.hash)})
            alloc.mark_sent(nonce)
            self.ledger.transition(rec, TxState.SIGNED, self._clock())
            slot_held = False  # from here the flight owns the slot: released when the record ends
            await self._fly(flight)
        except BaseException as exc:
            if rec is not None and rec.state is TxState.CREATED:
                self._abandon(rec, exc)
            if not isinstance(exc, Exception):
                raise
            # A bug, now recorded on the transaction; logged here because no caller awaits this task.
            log.exception("tx pipeline for %s raised; recorded as %s", sender, rec.state if rec else "nothing")
        finally:
            if slot_held:
                self._slots.release()
            if acked is not None and not acked.done():
                if rec is not None:
                    acked.set_result(rec)
                else:
                    acked.set_exception(RuntimeError("submission ended before a record was opened"))

    def _open(self, sender: str, label: str, t0: int) -> TxRecord:
        rec = self.ledger.open(sender, label, t0)
        self._done[rec.id] = asyncio.get_running_loop().create_future()
        return rec

    def _abandon(self, rec: TxRecord, exc: BaseException) -> None:
        # Cancelled (sender closing) or a bug before the first send: no endpoint has the bytes.
        alloc = self._nonces.get(rec.sender)
        if rec.nonce is not None and alloc is not None:
            rec.nonce_fate = NonceFate.RELEASED
            with contextlib.suppress(Exception):
                alloc.release(rec.nonce)
        if rec.hash is not None:
            self._receipts.unwatch(rec.hash)
        self._finish(rec, TxState.FAILED, error_kind="internal", reason=f"abandoned: {exc!r}")

    # -- the lifecycle shell ----------------------------------------------------------------

    async def _fly(self, f: _Flight) -> None:
        loop = asyncio.get_running_loop()
        try:
            todo = deque(f.machine.start(loop.time()))
            while todo:
                act = todo.popleft()
                if f.machine.done and isinstance(act, lc.Send | lc.Lookup | lc.Wait):
                    continue  # superseded: the machine finished meanwhile
                events = await self._perform(f, act)
                # A receipt is the strongest evidence: fed first, it makes the other answers moot.
                for event in [*self._arrived(f), *events]:
                    todo.extend(f.machine.handle(event, loop.time()))
            if not f.machine.done:
                raise RuntimeError(f"lifecycle left with nothing to do: {f.machine!r}")
        except asyncio.CancelledError:
            self._settle(f, lc.Abandoned("tracking cancelled"))
            raise
        except Exception as exc:
            log.exception("lifecycle of tx %s raised; recording it as failed", f.rec.hash)
            self._settle(f, lc.Abandoned(f"internal error: {exc!r}", error_kind="internal"))
        finally:
            if not f.rec.terminal:  # the machine or the ledger itself failed: still one end, slot freed
                self._finish(f.rec, TxState.FAILED, error_kind="internal", reason="lifecycle failed", slot=True)
            if not f.watch_late:
                for h in f.receipts:
                    self._receipts.unwatch(h)

    def _settle(self, f: _Flight, event: lc.Abandoned) -> None:
        with contextlib.suppress(Exception):
            for act in f.machine.handle(event, asyncio.get_running_loop().time()):
                self._apply(f, act)

    async def _perform(self, f: _Flight, act: lc.Action) -> list[lc.Event]:
        cfg = self.config
        if isinstance(act, lc.Send):
            f.rec.attempts += len(act.endpoints)
            if act.tx_hash not in f.receipts:  # a replacement: watched before it is sent, like the original
                f.receipts[act.tx_hash] = self._receipts.watch(act.tx_hash)
                f.rec.candidates.append(act.tx_hash)
            sends = (self._routes.send(e, act.tx_hash, act.raw, act.attempt, cfg.send_timeout) for e in act.endpoints)
            return [*(await asyncio.gather(*sends))]
        if isinstance(act, lc.Lookup):
            lookups = (
                self._routes.lookup(
                    e, act.tx_hash, receipt=act.receipt, attempts=cfg.lookup_attempts, timeout=cfg.send_timeout
                )
                for e in act.endpoints
            )
            return [*(await asyncio.gather(*lookups))]
        if isinstance(act, lc.Wait):
            return await self._wait(f, act.seconds)
        self._apply(f, act)
        return []

    async def _wait(self, f: _Flight, seconds: float) -> list[lc.Event]:
        futs = [fut for h, fut in f.receipts.items() if h not in f.fed and not fut.cancelled()]
        if futs:
            done, _ = await asyncio.wait(futs, timeout=seconds)
            if any(not fut.cancelled() for fut in done):
                return []  # the loop feeds the receipt (``_arrived``)
        else:
            await asyncio.sleep(seconds)  # the tracker dropped our waiter: only lookups can tell now
        return [lc.Elapsed()]

    def _arrived(self, f: _Flight) -> list[lc.Event]:
        out: list[lc.Event] = []
        for h, fut in f.receipts.items():
            if h not in f.fed and fut.done() and not fut.cancelled() and fut.exception() is None:
                f.fed.add(h)
                out.append(lc.Mined(fut.result()))
        return out

    def _apply(self, f: _Flight, act: lc.Action) -> None:
        rec = f.rec
        if isinstance(act, lc.Record):
            now = self._clock()
            self.ledger.transition(rec, act.state, now, error_kind=act.error_kind, reason=act.reason)
            if act.state is TxState.SUBMITTED:
                self._latency(f.t0, now)
            _resolve(f.acked, rec)
        elif isinstance(act, lc.Finish):
            rec.hash = act.tx_hash or rec.hash
            if act.receipt is not None:
                rec.block, rec.gas_used = act.receipt.block_number, act.receipt.gas_used
            self._finish(rec, act.state, error_kind=act.error_kind, reason=act.reason, slot=True)
            _resolve(f.acked, rec)
        elif isinstance(act, lc.ReleaseNonce):
            rec.nonce_fate = NonceFate.RELEASED
            f.alloc.release(act.nonce)
        elif isinstance(act, lc.ConfirmNonce):
            rec.nonce_fate = NonceFate.CONFIRMED
            f.alloc.confirm(act.nonce)
            if act.resync:
                self._schedule_resync(rec.sender)
        elif isinstance(act, lc.FillHoles):
            self._schedule_hole_fill(rec.sender, f.alloc)
        elif isinstance(act, lc.WatchLate):
            # The receipt waiters stay (bounded by the tracker's max_watching) so that a late
            # inclusion still marks the nonce taken.
            f.watch_late = True
            rec.nonce_fate = NonceFate.HELD
            for h in act.tx_hashes:
                fut = f.receipts.get(h)
                if fut is not None:
                    fut.add_done_callback(_confirm_when_mined(f.alloc, act.nonce))
        else:
            raise TypeError(f"not an action the shell performs synchronously: {act!r}")

    def _latency(self, t0: int, now: int) -> None:
        if self._on_latency is None:
            return
        try:
            self._on_latency("tx_submission", max((now - t0) // 1000, 1))
        except Exception:
            # A telemetry bug must not strand a transaction the node already holds.
            log.exception("on_latency hook failed")

    def _finish(
        self,
        rec: TxRecord,
        state: TxState,
        *,
        error_kind: str | None = None,
        reason: str | None = None,
        slot: bool = False,
    ) -> None:
        self.ledger.transition(rec, state, self._clock(), error_kind=error_kind, reason=reason)
        if slot:
            self._slots.release()
        fut = self._done.pop(rec.id, None)
        if fut is not None and not fut.done():
            fut.set_result(rec)

    # -- background repairs -----------------------------------------------------------------

    def _schedule_hole_fill(self, sender: str, alloc: NonceAllocator) -> None:
        if self._closed or sender in self._fillers_pending or not alloc.holes():
            return
        self._fillers_pending.add(sender)
        self._spawn(self._fill_holes(sender, alloc))

    async def _fill_holes(self, sender: str, alloc: NonceAllocator) -> None:
        try:
            await asyncio.sleep(self.config.hole_fill_after)
            for _ in range(len(alloc.holes())):
                if not alloc.holes():
                    break
                self._fillers += 1
                filler = TxRequest(to=sender, value=0, label="nonce_filler")
                # Only until the node has it: a filler cannot be mined before any lower hole is
                # filled too, so waiting for its receipt here would stall the holes after it.
                acked: asyncio.Future[TxRecord] = asyncio.get_running_loop().create_future()
                self._spawn(self._pipeline(sender, filler, self._clock(), acked, filler=True))
                with contextlib.suppress(Exception):
                    await asyncio.shield(acked)
        finally:
            self._fillers_pending.discard(sender)

    def _schedule_resync(self, sender: str) -> None:
        if self._closed or sender in self._resyncs_pending:
            return
        self._resyncs_pending.add(sender)
        self._spawn(self._resync(sender))

    async def _resync(self, sender: str) -> None:
        try:
            self._resyncs += 1
            await self._nonces.resync(sender)
        except RpcError as exc:
            log.warning("nonce resync for %s failed: %s", sender, exc)
        finally:
            self._resyncs_pending.discard(sender)


def _resolve(acked: asyncio.Future[TxRecord] | None, rec: TxRecord) -> None:
    if acked is not None and not acked.done():
        acked.set_result(rec)


def _confirm_when_mined(alloc: NonceAllocator, nonce: int) -> Callable[[asyncio.Future[Receipt]], None]:
    def done(fut: asyncio.Future[Receipt]) -> None:
        if not fut.cancelled():
            alloc.confirm(nonce)

    return done
