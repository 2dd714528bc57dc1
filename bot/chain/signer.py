"""Where signing runs: inline on the event loop, in a thread pool, or in a process pool.

Signing is the bot's main CPU cost, so where it runs decides how much of the event loop it
takes. Measured with ``python -m bot.chain.bench_signing`` (2-core shared box, 64 in flight,
medians of 3): inline+direct ~25k tx/s (~40 µs of loop time per transaction), thread+direct
~16k, process+direct 6-10k, inline+eth_account ~3.2k, thread+eth_account ~2.7k. The pools'
per-call hand-off costs more than a direct signature, so **inline with the direct codec is the
default**: at the 1000 tx/s target it takes about 4% of one core. A pool only pays off with
the slow ``eth_account`` codec; the process mode exists for measurement and for signers slower
than this one.

Every mode bounds the number of signatures queued at once (``max_pending``): callers beyond it
wait on a semaphore rather than piling futures into an executor's unbounded queue.

The process pool is created with the ``spawn`` start method (forking a process that runs an
event loop and threads is unsafe) and receives the keys once, through its initializer, over
the pool's pipe; they are never logged or written anywhere.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import coincurve

from bot.chain.accounts import Account
from bot.chain.errors import DevKeyRefused
from bot.chain.tx import Codec, SignedTx, UnsignedTx, sign_direct

Mode = Literal["inline", "thread", "process"]
MODES: tuple[Mode, ...] = ("inline", "thread", "process")


@dataclass(frozen=True, slots=True)
class SignerStatistics:
    mode: str
    codec: str
    workers: int
    max_pending: int
    pending: int
    signed: int
    failed: int
    busy_seconds: float  # summed wall time inside sign calls (inline: event-loop time spent signing)


class Signer:
    def __init__(
        self,
        accounts: Sequence[Account],
        *,
        mode: Mode = "inline",
        codec: Codec = "direct",
        workers: int = 2,
        max_pending: int = 1024,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"signer.mode: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if workers < 1:
            raise ValueError(f"signer.workers must be >= 1, got {workers}")
        if max_pending < 1:
            raise ValueError(f"signer.max_pending must be >= 1, got {max_pending}")
        if mode == "process" and codec != "direct":
            # The worker signs from raw key bytes with the direct codec; eth_account would need a
            # LocalAccount per worker for an identical result at 5x the cost.
            raise ValueError("signer.codec: the process mode signs with the 'direct' codec only")
        self._accounts = {a.address: a for a in accounts}
        self.mode = mode
        self.codec: Codec = codec
        self.workers = workers if mode != "inline" else 0
        self.max_pending = max_pending
        self._slots = asyncio.Semaphore(max_pending)
        self._pending = 0
        self._signed = 0
        self._failed = 0
        self._busy = 0.0
        self._executor: Executor | None = None
        if mode == "thread":
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="signer")
        elif mode == "process":
            keys = {a.address: a._worker_key() for a in accounts}
            self._executor = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(keys,),
            )

    def _account(self, address: str) -> Account:
        try:
            return self._accounts[address]
        except KeyError:
            raise ValueError(f"signer: no key loaded for {address}; add it to the bot's accounts") from None

    async def sign(self, sender: str, tx: UnsignedTx) -> SignedTx:
        account = self._account(sender)
        try:
            # Here, not only in Account.sign: the process mode signs in a worker from the raw key.
            account.check_chain(tx.chain_id)
        except DevKeyRefused:
            self._failed += 1
            raise
        async with self._slots:
            self._pending += 1
            t0 = time.perf_counter()
            try:
                if self._executor is None:
                    signed = account.sign(tx, self.codec)
                elif self.mode == "thread":
                    loop = asyncio.get_running_loop()
                    signed = await loop.run_in_executor(self._executor, account.sign, tx, self.codec)
                else:
                    loop = asyncio.get_running_loop()
                    raw, h = await loop.run_in_executor(self._executor, _sign_in_worker, sender, tx)
                    signed = SignedTx(raw=raw, hash=h, nonce=tx.nonce, sender=sender)
            except BaseException:
                self._failed += 1
                raise
            finally:
                self._pending -= 1
                self._busy += time.perf_counter() - t0
            self._signed += 1
            return signed

    async def warm_up(self) -> None:
        """Start pool workers now, so the first real signature does not pay process start-up."""
        if self._executor is not None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._executor, _noop) for _ in range(self.workers)))

    async def aclose(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)

    def statistics(self) -> SignerStatistics:
        return SignerStatistics(
            mode=self.mode,
            codec=self.codec,
            workers=self.workers,
            max_pending=self.max_pending,
            pending=self._pending,
            signed=self._signed,
            failed=self._failed,
            busy_seconds=self._busy,
        )

    def __repr__(self) -> str:
        return (
            f"Signer(mode={self.mode}, codec={self.codec}, workers={self.workers}, "
            f"accounts={len(self._accounts)}, pending={self._pending}/{self.max_pending})"
        )


_worker_keys: dict[str, coincurve.PrivateKey] = {}


def _init_worker(keys: dict[str, bytes]) -> None:
    _worker_keys.update({addr: coincurve.PrivateKey(k) for addr, k in keys.items()})


def _sign_in_worker(sender: str, tx: UnsignedTx) -> tuple[bytes, str]:
    return sign_direct(_worker_keys[sender], tx)


def _noop() -> None:
    return None
