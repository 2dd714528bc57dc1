from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.market.prices import amount_out
from bot.strategy import PoolView, StrategyParams, decide

reserves = st.integers(min_value=10**15, max_value=10**30)


@given(reserves, reserves, st.integers(min_value=1, max_value=10**24))
def test_amount_out_keeps_the_constant_product(r_in: int, r_out: int, a: int) -> None:
    out = amount_out(a, r_in, r_out)
    assert 0 <= out < r_out
    # The invariant a constant-product pool with a fee enforces: k never decreases.
    assert (r_in + a) * (r_out - out) >= r_in * r_out


def test_cheap_pool_buys_base_and_rich_pool_sells_it() -> None:
    pool = PoolView(reserve0=1000 * 10**18, reserve1=2000 * 10**18, base_is_token0=True)  # price 2.0
    buy = decide(pool, ref_price=2.2, params=StrategyParams())
    sell = decide(pool, ref_price=1.8, params=StrategyParams())
    assert buy is not None and buy.buys_base and not buy.zero_for_one  # pay quote (token1) for base
    assert sell is not None and not sell.buys_base and sell.zero_for_one  # pay base (token0)


def test_orientation_flips_when_base_is_token1() -> None:
    pool = PoolView(reserve0=2000 * 10**18, reserve1=1000 * 10**18, base_is_token0=False)  # price 2.0
    buy = decide(pool, ref_price=2.2, params=StrategyParams())
    assert buy is not None and buy.buys_base and buy.zero_for_one  # quote is token0


def test_deadband_suppresses_small_deviations() -> None:
    pool = PoolView(reserve0=10**21, reserve1=10**21, base_is_token0=True)
    assert decide(pool, 1.004, StrategyParams(deadband_bps=50)) is None
    assert decide(pool, 1.006, StrategyParams(deadband_bps=50)) is not None


@given(st.floats(min_value=0, max_value=500))
def test_min_out_respects_slippage(slip: float) -> None:
    pool = PoolView(reserve0=10**21, reserve1=3 * 10**21, base_is_token0=True)
    order = decide(pool, 2.0, StrategyParams(max_slippage_bps=slip))
    assert order is not None
    quoted = amount_out(order.amount_in, pool.reserve0, pool.reserve1)
    assert order.min_amount_out <= quoted
    # 0.01 bp resolution
    assert order.min_amount_out >= quoted * (1 - slip / 10_000) - quoted * 1e-6


def test_trade_value_is_the_same_in_quote_terms_whichever_side_pays() -> None:
    pool = PoolView(reserve0=1000 * 10**18, reserve1=4000 * 10**18, base_is_token0=True)  # price 4.0
    params = StrategyParams(trade_size=8 * 10**18)
    buy = decide(pool, 5.0, params)
    sell = decide(pool, 3.0, params)
    assert buy is not None and buy.amount_in == 8 * 10**18  # pays 8 quote
    assert sell is not None and sell.amount_in == 2 * 10**18  # pays 2 base, worth 8 quote
