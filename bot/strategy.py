"""The bot's strategy: trade each pool toward the market's reference price (pure).

A market-data feed publishes a reference price per pair; when a pool's price deviates from it by
more than a deadband, the bot swaps a fixed size in the direction that moves the pool toward the
reference (buy the base token when the pool is cheap, sell it when the pool is rich). It is the
simplest strategy that is *real*: it reads chain state, checks it can pay, prices its slippage
limit from the same constant-product math the pool uses, and a stale view of the pool makes the
swap revert on its slippage limit rather than trade at a bad price.

Prices are quote per base. ``zero_for_one`` means token0 in, token1 out, as ``Pool.swap`` takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.market.prices import amount_out


@dataclass(frozen=True)
class StrategyParams:
    # The trade's value in the quote token's smallest unit (1e18 = one USD); paying base, the size
    # is converted at the pool's price, so every pair trades the same value whatever its price.
    trade_size: int = 10**18
    deadband_bps: float = 0.0  # no trade while |pool/ref - 1| is within this
    max_slippage_bps: float = 100.0  # minAmountOut = quoted * (1 - this)

    def __post_init__(self) -> None:
        if self.trade_size <= 0:
            raise ValueError("strategy.trade_size: must be a positive integer amount (wei)")
        if not 0 <= self.deadband_bps < 10_000:
            raise ValueError("strategy.deadband_bps: must be in [0, 10000)")
        if not 0 <= self.max_slippage_bps < 10_000:
            raise ValueError("strategy.max_slippage_bps: must be in [0, 10000)")


@dataclass(frozen=True)
class PoolView:
    reserve0: int
    reserve1: int
    base_is_token0: bool

    @property
    def price(self) -> float:
        """Quote per base."""
        if self.reserve0 == 0 or self.reserve1 == 0:
            return 0.0
        r_base, r_quote = (self.reserve0, self.reserve1) if self.base_is_token0 else (self.reserve1, self.reserve0)
        return r_quote / r_base


@dataclass(frozen=True)
class Order:
    zero_for_one: bool
    amount_in: int
    min_amount_out: int
    buys_base: bool
    pays_token0: bool


def decide(pool: PoolView, ref_price: float, params: StrategyParams) -> Order | None:
    """The order to send, or None when the pool is within the deadband of the reference."""
    price = pool.price
    if price <= 0 or ref_price <= 0:
        return None
    deviation_bps = (price / ref_price - 1.0) * 10_000
    if abs(deviation_bps) <= params.deadband_bps:
        return None
    buys_base = deviation_bps < 0  # pool price below reference: base is cheap here
    # Buying base means paying quote: token0 is paid iff quote is token0 (i.e. base is token1).
    pays_token0 = (not pool.base_is_token0) if buys_base else pool.base_is_token0
    r_in, r_out = (pool.reserve0, pool.reserve1) if pays_token0 else (pool.reserve1, pool.reserve0)
    pays_quote = buys_base
    amount_in = params.trade_size if pays_quote else int(params.trade_size / price)
    quoted = amount_out(amount_in, r_in, r_out)
    if quoted <= 0:
        return None
    # Integer math at 0.01 bp resolution: floats lose precision on 1e21-sized amounts.
    keep = 1_000_000 - round(params.max_slippage_bps * 100)
    min_out = quoted * keep // 1_000_000
    return Order(zero_for_one=pays_token0, amount_in=amount_in, min_amount_out=min_out,
                 buys_base=buys_base, pays_token0=pays_token0)
