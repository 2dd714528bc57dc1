"""Every signer mode yields the same signed bytes, bounds its queue, and reports statistics."""

from __future__ import annotations

import asyncio

import pytest

from bot.chain.accounts import from_mnemonic
from bot.chain.fees import Fees
from bot.chain.signer import MODES, Mode, Signer
from bot.chain.tx import TxRequest, build

ACCOUNTS = from_mnemonic(count=2)
FEES = Fees(max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9)


@pytest.mark.parametrize("mode", MODES)
async def test_modes_agree_with_inline_eth_account(mode: Mode) -> None:
    signer = Signer(ACCOUNTS, mode=mode, workers=2, max_pending=8)
    try:
        txs = [build(31337, n, TxRequest(to=ACCOUNTS[1].address, value=n), FEES) for n in range(20)]
        signed = await asyncio.gather(*(signer.sign(ACCOUNTS[n % 2].address, tx) for n, tx in enumerate(txs)))
        for n, (tx, s) in enumerate(zip(txs, signed, strict=True)):
            ref = ACCOUNTS[n % 2].sign(tx, "eth_account")
            assert (s.raw, s.hash, s.nonce, s.sender) == (ref.raw, ref.hash, tx.nonce, ACCOUNTS[n % 2].address)
        stats = signer.statistics()
        assert (stats.signed, stats.failed, stats.pending, stats.max_pending) == (20, 0, 0, 8)
        assert mode in repr(signer)
    finally:
        await signer.aclose()


async def test_pending_is_bounded() -> None:
    signer = Signer(ACCOUNTS, mode="thread", workers=1, max_pending=3)
    peak = 0
    tx = build(31337, 0, TxRequest(to=ACCOUNTS[1].address), FEES)

    async def watch() -> None:
        nonlocal peak
        for _ in range(200):
            peak = max(peak, signer.statistics().pending)
            await asyncio.sleep(0)

    try:
        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(signer.sign(ACCOUNTS[0].address, tx) for _ in range(30)))
        await watcher
        assert 1 <= peak <= 3
    finally:
        await signer.aclose()


async def test_unknown_sender_and_bad_config() -> None:
    signer = Signer(ACCOUNTS[:1])
    with pytest.raises(ValueError, match="no key loaded"):
        await signer.sign(ACCOUNTS[1].address, build(31337, 0, TxRequest(to=ACCOUNTS[1].address), FEES))
    with pytest.raises(ValueError, match=r"signer\.mode"):
        Signer(ACCOUNTS, mode="gpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"signer\.codec"):
        Signer(ACCOUNTS, mode="process", codec="eth_account")
    with pytest.raises(ValueError, match="max_pending"):
        Signer(ACCOUNTS, max_pending=0)
