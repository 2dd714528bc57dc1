"""The public dev keys: the accounts anvil and hardhat derive from their test mnemonic.

Every copy of Foundry and Hardhat prints these keys, so anything they sign on a real chain is
anyone's to take. They must sign only for the local dev chain id (31337, both tools' default):
``Account`` asks ``is_dev_key`` once, when it is built, and refuses to sign for any other chain.

The keys are derived here (BIP-39 seed, BIP-32 path m/44'/60'/0'/0/i) for the first
``DEV_KEYS_SCANNED`` indices: as many as ``anvil-dev:N`` may ask for. The parent of the last level
is derived once, so the thousand children cost a thousand HMACs (a few ms, once per process),
not the thousand PBKDF2 runs that ``eth_account.from_mnemonic`` would pay.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from functools import cache

import coincurve

DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337
DEV_KEYS_SCANNED = 1000

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1's group order
_HARDENED = 0x8000_0000


def _child(key: int, chain: bytes, index: int) -> tuple[int, bytes]:
    """BIP-32 private child derivation (hardened when ``index`` has the top bit)."""
    if index & _HARDENED:
        data = b"\x00" + key.to_bytes(32, "big")
    else:
        data = coincurve.PrivateKey(key.to_bytes(32, "big")).public_key.format(compressed=True)
    digest = hmac.digest(chain, data + index.to_bytes(4, "big"), "sha512")
    child = (int.from_bytes(digest[:32], "big") + key) % _N
    if int.from_bytes(digest[:32], "big") >= _N or child == 0:
        raise ValueError(f"BIP-32 index {index} is invalid for this parent (probability ~2**-127)")
    return child, digest[32:]


def derive_keys(mnemonic: str, count: int, passphrase: str = "") -> tuple[bytes, ...]:
    """The private keys at m/44'/60'/0'/0/0 .. count-1 of ``mnemonic`` (no word-list check)."""
    words = unicodedata.normalize("NFKD", mnemonic).encode()
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase).encode()
    seed = hashlib.pbkdf2_hmac("sha512", words, salt, 2048)
    master = hmac.digest(b"Bitcoin seed", seed, "sha512")
    key, chain = int.from_bytes(master[:32], "big"), master[32:]
    for index in (44 | _HARDENED, 60 | _HARDENED, 0 | _HARDENED, 0):
        key, chain = _child(key, chain, index)
    parent_pub = coincurve.PrivateKey(key.to_bytes(32, "big")).public_key.format(compressed=True)
    keys = []
    for i in range(count):
        digest = hmac.digest(chain, parent_pub + i.to_bytes(4, "big"), "sha512")
        keys.append(((int.from_bytes(digest[:32], "big") + key) % _N).to_bytes(32, "big"))
    return tuple(keys)


@cache
def _dev_keys() -> frozenset[bytes]:
    return frozenset(derive_keys(DEV_MNEMONIC, DEV_KEYS_SCANNED))


def is_dev_key(secret: bytes) -> bool:
    """Whether ``secret`` (32 key bytes) is one of the public test-mnemonic keys."""
    return bytes(secret) in _dev_keys()
