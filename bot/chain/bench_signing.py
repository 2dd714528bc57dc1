"""Measure signing throughput per signer mode and codec: ``python -m bot.chain.bench_signing``.

Signs ``--count`` transactions with ``--concurrency`` outstanding at once, in one event loop,
and prints tx/s per configuration. The figures depend on the machine and its load; run it on a
quiet machine and repeat (``--repeat``) before drawing conclusions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bot.chain.accounts import from_mnemonic
from bot.chain.fees import Fees
from bot.chain.signer import Mode, Signer
from bot.chain.tx import Codec, TxRequest, build

CONFIGS: tuple[tuple[Mode, Codec], ...] = (
    ("inline", "direct"),
    ("inline", "eth_account"),
    ("thread", "direct"),
    ("thread", "eth_account"),
    ("process", "direct"),
)


async def _run(mode: Mode, codec: Codec, count: int, concurrency: int, workers: int) -> float:
    (account,) = from_mnemonic(count=1)
    signer = Signer([account], mode=mode, codec=codec, workers=workers, max_pending=concurrency)
    try:
        await signer.warm_up()
        req = TxRequest(to="0x" + "22" * 20, value=1)
        fees = Fees(max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9)
        txs = [build(31337, n, req, fees) for n in range(count)]
        t0 = time.perf_counter()
        for i in range(0, count, concurrency):
            await asyncio.gather(*(signer.sign(account.address, tx) for tx in txs[i : i + concurrency]))
        return count / (time.perf_counter() - t0)
    finally:
        await signer.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not 1 <= args.count <= 1_000_000 or not 1 <= args.repeat <= 20:
        ap.error("--count must be in 1..1000000 and --repeat in 1..20")
    for mode, codec in CONFIGS:
        rates = [
            asyncio.run(_run(mode, codec, args.count, args.concurrency, args.workers)) for _ in range(args.repeat)
        ]
        print(
            f"{mode:8s} {codec:12s} median {statistics.median(rates):8.0f} tx/s  "
            f"(runs: {', '.join(f'{r:.0f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
