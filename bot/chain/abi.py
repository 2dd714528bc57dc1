"""ABI encoding for the calls the bot makes on Token and Pool (signatures from docs/DESIGN.md).

Selectors are computed from the signatures, not read from compiled artifacts, so this module
does not depend on the contracts build. Decoders check lengths and raise ``AbiDecodeError``
naming the call, because a wrong address (an EOA, or a contract without the function) returns
``0x`` from ``eth_call`` rather than an error.

Every argument and result here is a static 32-byte word (uint256, bool, address), so the words are
built and read here rather than by ``eth_abi``: importing ``eth_abi`` (with ``eth_utils``, ``rlp`` and
the ``pydantic`` they pull in) cost the bot 14 MB of its ~95 MB resident and ~150 modules, for a few
``int.to_bytes`` calls (docs/PERFORMANCE.md, "Memory budget at 100 pairs"). The rules are eth_abi 6's
(the hypothesis tests in tests/unit/test_chain_abi.py compare the bytes, and what each refuses).
"""

from __future__ import annotations

import re

from eth_hash.auto import keccak

from bot.rpc.errors import InvalidResponse

SWAP_SIG = "swap(uint256,bool,uint256,address)"
APPROVE_SIG = "approve(address,uint256)"
TRANSFER_SIG = "transfer(address,uint256)"
BALANCE_OF_SIG = "balanceOf(address)"
GET_RESERVES_SIG = "getReserves()"
TOKEN0_SIG = "token0()"
TOKEN1_SIG = "token1()"



def selector(signature: str) -> bytes:
    """The 4-byte function selector: the first bytes of the signature's keccak-256."""
    return bytes(keccak(signature.replace(" ", "").encode()))[:4]


SWAP = selector(SWAP_SIG)
APPROVE = selector(APPROVE_SIG)
TRANSFER = selector(TRANSFER_SIG)
BALANCE_OF = selector(BALANCE_OF_SIG)
GET_RESERVES = selector(GET_RESERVES_SIG)
TOKEN0 = selector(TOKEN0_SIG)
TOKEN1 = selector(TOKEN1_SIG)

MAX_UINT256 = 2**256 - 1
MAX_UINT112 = 2**112 - 1

# eth_utils' is_address: 40 hex digits, optionally 0x-prefixed, in any case (no checksum check).
_HEX_ADDRESS = re.compile("(0x)?[0-9a-f]{40}", re.IGNORECASE | re.ASCII)
_FALSE_WORD = bytes(32)
_TRUE_WORD = bytes(31) + b"\x01"
_ADDRESS_PAD = bytes(12)


class AbiEncodeError(ValueError):
    """A value the ABI type cannot hold (eth_abi's ``EncodingError``): a bug in the caller, not a node condition."""


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


def checksum_address(raw: bytes) -> str:
    """EIP-55 mixed-case hex of 20 address bytes (what eth_utils' ``to_checksum_address`` returns)."""
    text = raw.hex()
    digest = bytes(keccak(text.encode())).hex()
    return "0x" + "".join(c.upper() if d in "89abcdef" else c for c, d in zip(text, digest[:40], strict=True))


def uint256_word(value: int) -> bytes:
    # bool is an int to Python, not to the ABI (eth_abi refuses it too).
    if not isinstance(value, int) or isinstance(value, bool):
        raise AbiEncodeError(f"uint256: expected an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_UINT256:
        raise AbiEncodeError(f"uint256: {value} is outside [0, 2**256 - 1]")
    return value.to_bytes(32, "big")


def bool_word(value: bool) -> bytes:
    if not isinstance(value, bool):
        raise AbiEncodeError(f"bool: expected True or False, got {type(value).__name__}")
    return _TRUE_WORD if value else _FALSE_WORD


def address_word(value: str | bytes) -> bytes:
    """20 raw bytes, or 40 hex digits with an optional 0x in any case, left-padded to a word."""
    if isinstance(value, bytes | bytearray) and len(value) == 20:
        return _ADDRESS_PAD + bytes(value)
    if isinstance(value, str) and _HEX_ADDRESS.fullmatch(value):
        return _ADDRESS_PAD + bytes.fromhex(value[-40:])
    raise AbiEncodeError(f"address: {value!r:.60} is neither 20 bytes nor 40 hex digits")


def encode_swap(amount_in: int, zero_for_one: bool, min_amount_out: int, to: str) -> bytes:
    return b"".join((SWAP, uint256_word(amount_in), bool_word(zero_for_one), uint256_word(min_amount_out),
                     address_word(to)))


def encode_approve(spender: str, amount: int = MAX_UINT256) -> bytes:
    return APPROVE + address_word(spender) + uint256_word(amount)


def encode_transfer(to: str, amount: int) -> bytes:
    return TRANSFER + address_word(to) + uint256_word(amount)


def encode_balance_of(owner: str) -> bytes:
    return BALANCE_OF + address_word(owner)


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
    r0, r1, ts = (int.from_bytes(raw[i:i + 32], "big") for i in (0, 32, 64))
    if r0 > MAX_UINT112 or r1 > MAX_UINT112 or ts >= 2**32:
        raise AbiDecodeError("getReserves(): value out of range for (uint112, uint112, uint32)")
    return r0, r1, ts


def decode_uint256(result: str | bytes, what: str = "uint256") -> int:
    raw = _result_bytes(result, what, 32)
    return int.from_bytes(raw[:32], "big")


def decode_address(result: str | bytes, what: str = "address") -> str:
    raw = _result_bytes(result, what, 32)
    if any(raw[:12]):
        raise AbiDecodeError(f"{what}: upper 12 bytes of an address word are not zero")
    return "0x" + raw[12:32].hex()
