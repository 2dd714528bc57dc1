"""Pool price math (exact, as Pool.sol) and the price/balance readers against a fake node."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chain import abi
from bot.market.balances import NATIVE, BalanceQuery, BalanceReader
from bot.market.prices import (
    Pair,
    PriceReader,
    Reserves,
    amount_out,
    mid_price,
    min_out_with_slippage,
    swap_outcome,
)
from bot.rpc.errors import RpcError, TransportError
from tests.unit.chain_fakes import FakeNode

reserve = st.integers(1, abi.MAX_UINT112)
A = "0x" + "0a" * 20
B = "0x" + "0b" * 20
POOL = "0x" + "99" * 20
OWNER = "0x" + "77" * 20


def _k_holds(a: int, r_in: int, r_out: int, out: int) -> bool:
    # Uniswap V2's independent check: the fee-adjusted product must not fall.
    bal_in, bal_out = r_in + a, r_out - out
    return (bal_in * 1000 - a * 3) * (bal_out * 1000) >= r_in * r_out * 1000**2


@given(a=st.integers(1, 2**100), r_in=reserve, r_out=reserve)
def test_amount_out_is_the_largest_output_the_fee_allows(a: int, r_in: int, r_out: int) -> None:
    out = amount_out(a, r_in, r_out)
    assert 0 <= out < r_out
    assert _k_holds(a, r_in, r_out, out)
    assert out + 1 >= r_out or not _k_holds(a, r_in, r_out, out + 1)


@given(a=st.integers(1, 2**90), extra=st.integers(1, 2**90), r_in=reserve, r_out=reserve)
def test_amount_out_is_monotone_in_input(a: int, extra: int, r_in: int, r_out: int) -> None:
    assert amount_out(a, r_in, r_out) <= amount_out(a + extra, r_in, r_out)


def test_amount_out_known_value_and_reverts() -> None:
    # 1 in against 1000/1000: 997*1000 // (1000*1000 + 997) = 0; 100 in -> 90.
    assert amount_out(100, 1000, 1000) == 90
    with pytest.raises(ValueError, match="amountIn"):
        amount_out(0, 1, 1)
    with pytest.raises(ValueError, match="liquidity"):
        amount_out(1, 0, 1)


def test_swap_outcome_reasons() -> None:
    r = Reserves(1000, 2000, 0)
    assert swap_outcome(r, 100, True, 0) == (amount_out(100, 1000, 2000), None)
    assert swap_outcome(r, 100, False, 0) == (amount_out(100, 2000, 1000), None)
    out, reason = swap_outcome(r, 100, True, 10**9)
    assert reason == "slippage" and out > 0
    assert swap_outcome(r, 1, False, 0) == (0, "output")  # 997*1000 // (2000*1000 + 997) == 0
    assert swap_outcome(r, 0, True, 0) == (0, "amountIn")
    assert min_out_with_slippage(10_000, 50) == 9_950
    with pytest.raises(ValueError, match="slippage_bps"):
        min_out_with_slippage(1, 10_001)


@given(r0=reserve, r1=reserve)
def test_mid_price_orientation(r0: int, r1: int) -> None:
    r = Reserves(r0, r1, 0)
    assert mid_price(r, True) == Fraction(r1, r0)
    assert mid_price(r, False) == 1 / mid_price(r, True)


def test_pair_validation_names_the_problem() -> None:
    entry = {"id": "T000/USD", "pool": POOL, "token0": A, "token1": B, "base": B, "quote": A}
    pair = Pair.from_deployment(entry)
    assert not pair.base_is_token0
    with pytest.raises(ValueError, match="missing pool"):
        Pair.from_deployment({k: v for k, v in entry.items() if k != "pool"})
    with pytest.raises(ValueError, match="base/quote"):
        Pair.from_deployment({**entry, "base": POOL})


def _reserves_word(r0: int, r1: int, ts: int = 1) -> bytes:
    return r0.to_bytes(32, "big") + r1.to_bytes(32, "big") + ts.to_bytes(32, "big")


async def test_price_reader_times_each_read_and_caches_only_fixed_blocks() -> None:
    node = FakeNode()
    node.eth_calls[(POOL, abi.GET_RESERVES)] = _reserves_word(4 * 10**18, 10**18)
    ticks = iter(range(0, 10**12, 3_000_000))  # each clock read is 3 ms later
    samples: list[tuple[str, int]] = []
    reader = PriceReader(node, on_latency=lambda op, us: samples.append((op, us)), clock_ns=lambda: next(ticks))
    pair = Pair("T/USD", POOL, A, B, base=B, quote=A)
    p = await reader.price(pair)
    assert p.price == 4 and float(p) == 4.0 and (p.reserve_base, p.reserve_quote) == (10**18, 4 * 10**18)
    assert samples == [("price_fetch", 3000)]
    await reader.price(pair, block=7)
    await reader.price(pair, block=7)
    await reader.price(pair)
    st = reader.statistics()
    assert (st.reads, st.cache_hits, st.cached) == (3, 1, 1)
    assert node.calls.count("eth_call") == 3


async def test_price_reader_batch_and_errors() -> None:
    node = FakeNode()
    node.eth_calls[(POOL, abi.GET_RESERVES)] = _reserves_word(10, 30)
    reader = PriceReader(node)
    pair = Pair("T/USD", POOL, A, B, base=A, quote=B)
    node.fail("eth_call", TransportError("reset"))
    res = await reader.prices([pair, pair])
    assert isinstance(res[0], RpcError)
    assert not isinstance(res[1], Exception) and res[1].price == 3
    empty = Pair("X/USD", "0x" + "98" * 20, A, B, base=A, quote=B)
    with pytest.raises(abi.AbiDecodeError, match="is the address a contract"):
        await reader.price(empty)
    mixed = await reader.prices([empty, pair])
    assert isinstance(mixed[0], abi.AbiDecodeError) and "X/USD" in str(mixed[0])
    assert not isinstance(mixed[1], Exception) and mixed[1].price == 3


async def test_balance_reader_native_erc20_and_batch() -> None:
    node = FakeNode()
    node.balances[OWNER] = 5 * 10**18
    node.eth_calls[(A, abi.encode_balance_of(OWNER))] = (123).to_bytes(32, "big")
    samples: list[str] = []
    reader = BalanceReader(node, on_latency=lambda op, us: samples.append(op))
    assert await reader.get(OWNER) == 5 * 10**18
    assert await reader.get(OWNER, A) == 123
    assert samples == ["balance_check", "balance_check"]
    got = await reader.many([BalanceQuery(OWNER), BalanceQuery(OWNER, A)], block=3)
    assert got == [5 * 10**18, 123]
    again = await reader.many([BalanceQuery(OWNER), BalanceQuery(OWNER, A)], block=3)
    assert again == got
    assert reader.statistics().cache_hits == 2
    assert len(samples) == 4  # cache hits are not reads, so they are not timed
    bad = await reader.many([BalanceQuery(OWNER, B), BalanceQuery(OWNER)])
    assert isinstance(bad[0], abi.AbiDecodeError) and bad[1] == 5 * 10**18
    with pytest.raises(ValueError, match="balance token"):
        BalanceQuery(OWNER, "usdc")
    assert BalanceQuery(OWNER).token == NATIVE
