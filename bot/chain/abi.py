"""ABI encoding for the calls the bot makes on Token and Pool (signatures from docs/DESIGN.md).

Selectors are computed from the signatures, not read from compiled artifacts, so this module
does not depend on the contracts build. Decoders check lengths and raise ``AbiDecodeError``
naming the call, because a wrong address (an EOA, or a contract without the function) returns
``0x`` from ``eth_call`` rather than an error.
"""

from __future__ import annotations

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector

from bot.rpc.errors import InvalidResponse

SWAP_SIG = "swap(uint256,bool,uint256,address)"
APPROVE_SIG = "approve(address,uint256)"
TRANSFER_SIG = "transfer(address,uint256)"
BALANCE_OF_SIG = "balanceOf(address)"
GET_RESERVES_SIG = "getReserves()"
TOKEN0_SIG = "token0()"
TOKEN1_SIG = "token1()"

SWAP = function_signature_to_4byte_selector(SWAP_SIG)
APPROVE = function_signature_to_4byte_selector(APPROVE_SIG)
TRANSFER = function_signature_to_4byte_selector(TRANSFER_SIG)
BALANCE_OF = function_signature_to_4byte_selector(BALANCE_OF_SIG)
GET_RESERVES = function_signature_to_4byte_selector(GET_RESERVES_SIG)
TOKEN0 = function_signature_to_4byte_selector(TOKEN0_SIG)
TOKEN1 = function_signature_to_4byte_selector(TOKEN1_SIG)

MAX_UINT256 = 2**256 - 1
MAX_UINT112 = 2**112 - 1


class AbiDecodeError(InvalidResponse, ValueError):
    """An ``eth_call`` result that does not have the shape the function returns.

    Garbage from the node, so an ``InvalidResponse``: a trade that meets one ends as a counted
    failure (``errors{kind=invalid_response}``) like any other bad answer. Still a ``ValueError``
    for callers written before that.
    """


def address_bytes(address: str, field: str = "address") -> bytes:
    text = address[2:] if address.lower().startswith("0x") else address
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{field}: {address!r} is not hex; give a 0x-prefixed 20-byte address") from None
    if len(raw) != 20:
        raise ValueError(f"{field}: {address!r} has {len(raw)} bytes; an address has 20")
    return raw


def encode_swap(amount_in: int, zero_for_one: bool, min_amount_out: int, to: str) -> bytes:
    return SWAP + encode(["uint256", "bool", "uint256", "address"], [amount_in, zero_for_one, min_amount_out, to])


def encode_approve(spender: str, amount: int = MAX_UINT256) -> bytes:
    return APPROVE + encode(["address", "uint256"], [spender, amount])


def encode_transfer(to: str, amount: int) -> bytes:
    return TRANSFER + encode(["address", "uint256"], [to, amount])


def encode_balance_of(owner: str) -> bytes:
    return BALANCE_OF + encode(["address"], [owner])


def _result_bytes(result: str | bytes, what: str, size: int) -> bytes:
    if not isinstance(result, str | bytes):  # JSON can carry anything where hex data belongs
        raise AbiDecodeError(f"{what}: expected hex data, got {type(result).__name__}")
    if isinstance(result, str):
        try:
            raw = bytes.fromhex(result[2:] if result.startswith("0x") else result)
        except ValueError:
            raise AbiDecodeError(f"{what}: result {result[:20]!r} is not hex") from None
    else:
        raw = result
    if len(raw) < size:
        raise AbiDecodeError(
            f"{what}: got {len(raw)} bytes, expected {size}; is the address a contract with this function?"
        )
    return raw


def decode_reserves(result: str | bytes) -> tuple[int, int, int]:
    """(reserve0, reserve1, blockTimestampLast) from ``getReserves()``; rejects out-of-range words."""
    raw = _result_bytes(result, "getReserves()", 96)
    r0, r1, ts = decode(["uint256", "uint256", "uint256"], raw[:96])
    if r0 > MAX_UINT112 or r1 > MAX_UINT112 or ts >= 2**32:
        raise AbiDecodeError("getReserves(): value out of range for (uint112, uint112, uint32)")
    return int(r0), int(r1), int(ts)


def decode_uint256(result: str | bytes, what: str = "uint256") -> int:
    raw = _result_bytes(result, what, 32)
    return int.from_bytes(raw[:32], "big")


def decode_address(result: str | bytes, what: str = "address") -> str:
    raw = _result_bytes(result, what, 32)
    if any(raw[:12]):
        raise AbiDecodeError(f"{what}: upper 12 bytes of an address word are not zero")
    return "0x" + raw[12:32].hex()
