"""Sender throughput against a raw client of pre-signed transactions, on the same node.

``python -m bot.chain.bench_sender --url http://127.0.0.1:8545 [--count 3000] [--concurrency 64]``

Needs an anvil dev node (dev accounts 0 and 1 funded), ideally with interval mining and no
block gas limit (``--block-time 0.1 --disable-block-gas-limit``). Three measurements:

- ``raw``: transactions pre-signed before the clock starts, sent with ``send_raw_transaction``
  from account 0, ``--concurrency`` in flight: the ceiling for this client and node;
- ``sender accept``: ``TxSender.submit`` from account 1 (nonce, fees, build, sign, send),
  same concurrency, until every hash is acknowledged;
- ``sender mined``: the same intents until every one reached a terminal state.

With ``--rate R --seconds S`` it runs open loop instead (one intent every 1/R s, never waiting
for earlier ones) and prints mean/p50/p95/p99 of ``tx_submission`` (as the sender records it),
of intent->ack (from the *intended* start, free of coordinated omission) and intent->mined.

Loopback, one process, client and node sharing the machine's cores: numbers are conditions-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from bot.chain.accounts import from_mnemonic
from bot.chain.fee_oracle import FeeOracle
from bot.chain.fees import price
from bot.chain.nonces import NonceManager
from bot.chain.receipts import ReceiptTracker
from bot.chain.sender import SenderConfig, TxSender
from bot.chain.signer import Mode, Signer
from bot.chain.tx import TxRequest, build
from bot.rpc import HttpTransport


async def _bounded(concurrency: int, jobs: list[object]) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(job: object) -> None:
        async with sem:
            await job  # type: ignore[misc]

    await asyncio.gather(*(one(j) for j in jobs))


async def _diagnose(rpc: HttpTransport, sender: TxSender, address: str) -> None:
    """Why did the drain time out? Print what the node holds for the stuck account."""
    latest = int(await rpc.call("eth_getTransactionCount", [address, "latest"]), 16)
    pending = int(await rpc.call("eth_getTransactionCount", [address, "pending"]), 16)
    print(f"STUCK: latest nonce {latest}, pending nonce {pending}, pool {await rpc.call('txpool_status')}")
    live = sorted(sender.ledger.live(), key=lambda r: r.nonce if r.nonce is not None else -1)
    for rec in live[:3]:
        tx = await rpc.call("eth_getTransactionByHash", [rec.hash])
        print(f"  live nonce {rec.nonce} {rec.state} attempts={rec.attempts} node has it: {tx is not None}")
    block = await rpc.call("eth_getBlockByNumber", ["latest", False])
    print(f"  head {int(block['number'], 16)} base fee {int(block['baseFeePerGas'], 16)} gas limit {block['gasLimit']}")


async def run(url: str, count: int, concurrency: int, mode: Mode, drain_s: float = 120.0) -> None:
    a0, a1 = from_mnemonic(count=2)
    async with HttpTransport(url) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        block = await rpc.call("eth_getBlockByNumber", ["latest", False])
        base0 = int(block["baseFeePerGas"], 16)
        fees = price(base0)
        n0 = int(await rpc.call("eth_getTransactionCount", [a0.address, "pending"]), 16)
        pay = TxRequest(to=a1.address, value=1)
        raws = [a0.sign(build(chain_id, n0 + i, pay, fees)).raw for i in range(count)]
        t0 = time.perf_counter()
        await _bounded(concurrency, [rpc.send_raw_transaction(r) for r in raws])
        raw_s = time.perf_counter() - t0
        print(f"raw pre-signed     {count / raw_s:8.0f} tx/s accepted  ({count} in {raw_s:.2f}s)")

        tracker = ReceiptTracker(rpc, poll_interval=0.02)
        tracker.start()
        signer = Signer([a1], mode=mode)
        await signer.warm_up()
        sender = TxSender(
            rpc,
            signer,
            NonceManager(rpc),
            tracker,
            FeeOracle(rpc),
            config=SenderConfig(
                chain_id=chain_id, max_in_flight=max(count, 1), confirm_timeout=60.0, keep_recent=count
            ),
        )
        try:
            back = TxRequest(to=a0.address, value=1)
            t0 = time.perf_counter()
            recs = []

            async def submit() -> None:
                recs.append(await sender.submit(a1.address, back))

            await _bounded(concurrency, [submit() for _ in range(count)])
            acc_s = time.perf_counter() - t0
            ok = await sender.drain(drain_s)
            if not ok:
                await _diagnose(rpc, sender, a1.address)
            mined_s = time.perf_counter() - t0
            st = sender.statistics()
            print(f"sender accept      {count / acc_s:8.0f} tx/s acknowledged ({count} in {acc_s:.2f}s, signer={mode})")
            print(f"sender mined       {count / mined_s:8.0f} tx/s to terminal  (drained={ok}, states={st.by_state})")
            print(f"signer             {signer.statistics()}")
            reasons = Counter(
                (r.state.value, r.error_kind, (r.reason or "")[:60]) for r in sender.ledger.recent() if r.error_kind
            )
            for (state, kind, reason), n in reasons.most_common(5):
                print(f"  {n:5d} x {state} ({kind}): {reason}")
            block = await rpc.call("eth_getBlockByNumber", ["latest", False])
            end_fee = int(block["baseFeePerGas"], 16)
            print(f"base fee           {end_fee} wei at the end, {base0} wei at the start")
        finally:
            await sender.aclose()
            await tracker.aclose()
            await signer.aclose()


async def run_paced(url: str, rate: float, seconds: float, mode: Mode) -> None:
    """Open loop: one intent every 1/rate s, never waiting for earlier ones; latency percentiles."""
    from hdrh.histogram import HdrHistogram  # local: only this mode needs it

    (a0, a1) = from_mnemonic(count=2)
    total = int(rate * seconds)
    submission = HdrHistogram(1, 60_000_000, 3)  # the sender's own tx_submission samples (µs)
    from_intent = HdrHistogram(1, 60_000_000, 3)  # intended start -> ack (coordinated-omission free)
    to_receipt = HdrHistogram(1, 60_000_000, 3)  # intended start -> terminal state
    async with HttpTransport(url) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        tracker = ReceiptTracker(rpc, poll_interval=0.01)
        tracker.start()
        signer = Signer([a1], mode=mode)
        sender = TxSender(
            rpc,
            signer,
            NonceManager(rpc),
            tracker,
            FeeOracle(rpc),
            config=SenderConfig(chain_id=chain_id, confirm_timeout=60.0, keep_recent=total),
            on_latency=lambda op, us: submission.record_value(us),
        )
        pay = TxRequest(to=a0.address, value=1)
        loop = asyncio.get_running_loop()

        async def one(intended: float) -> None:
            rec = await sender.submit(a1.address, pay)
            from_intent.record_value(max(int((loop.time() - intended) * 1e6), 1))
            await sender.wait(rec)
            to_receipt.record_value(max(int((loop.time() - intended) * 1e6), 1))

        try:
            start = loop.time() + 0.1
            tasks = []
            for i in range(total):
                intended = start + i / rate
                delay = intended - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(intended)))
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            print(f"open loop {rate:.0f}/s for {seconds:.0f}s, signer={mode}: {sender.statistics().by_state}")
            for name, h in (("tx_submission", submission), ("intent->ack", from_intent), ("intent->mined", to_receipt)):
                ms = [h.get_mean_value() / 1000] + [h.get_value_at_percentile(q) / 1000 for q in (50, 95, 99)]
                print(f"  {name:14s} mean {ms[0]:7.2f} ms  p50 {ms[1]:7.2f}  p95 {ms[2]:7.2f}  p99 {ms[3]:7.2f}")
        finally:
            await sender.aclose()
            await tracker.aclose()
            await signer.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--signer", choices=["inline", "thread", "process"], default="inline")
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--rate", type=float, default=0.0, help="open-loop intents per second (0: closed-loop burst)")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    if args.rate and not (0 < args.rate <= 5000 and 0 < args.seconds <= 300):
        ap.error("--rate must be in (0, 5000] and --seconds in (0, 300]")
    if not 1 <= args.count <= 100_000 or not 1 <= args.concurrency <= 4096:
        ap.error("--count must be in 1..100000 and --concurrency in 1..4096")
    if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        ap.error("--url: this benchmark sends load; point it at a local node (http://127.0.0.1:PORT)")
    coro = (
        run_paced(args.url, args.rate, args.seconds, args.signer)
        if args.rate
        else run(args.url, args.count, args.concurrency, args.signer)
    )
    if args.uvloop:
        import uvloop  # local: optional speed-up

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
