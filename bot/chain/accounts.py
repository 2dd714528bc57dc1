"""Signing accounts: a private key that never leaves this object in readable form.

An ``Account`` shows only its address in ``repr``/``str``, refuses to be pickled or copied (so it
cannot leak into a results file, a log record's args or a process-pool argument by accident), and
never puts key material into an exception message. Loaders accept keys from config values, an
environment variable, a key file, or a mnemonic (anvil's dev accounts by default).

The process-pool signer needs the key in its worker processes; it gets it through
``Account._worker_key()``, which is deliberately private and used only there (the bytes travel
over the pool's pipe to a child of this process, never to disk or a log).

A public dev key (``bot.chain.devkeys``: the test mnemonic anvil and hardhat fund) signs only for
chain id 31337; for any other chain ``sign`` and ``check_chain`` raise ``DevKeyRefused``.

``eth_account`` is imported only where it is needed: by the ``eth_account`` signing codec and to derive
keys from a mnemonic other than the dev one. Importing it (py_ecc, eth_keyfile, eth_keys: 110 modules)
cost every bot process 3.6 MB resident and ~1 s of start-up on the project's VM (py_ecc builds its
tables at import); keys and addresses come from coincurve and keccak, as eth_account's own coincurve
backend computes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import coincurve
from eth_hash.auto import keccak

from bot.chain.abi import checksum_address
from bot.chain.devkeys import DEV_CHAIN_ID, DEV_MNEMONIC, derive_keys, is_dev_key
from bot.chain.errors import DevKeyRefused
from bot.chain.tx import Codec, SignedTx, UnsignedTx, sign_direct

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# The mnemonic anvil and hardhat derive their ten funded dev accounts from (public knowledge).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
_DERIVATION = "m/44'/60'/0'/0/{index}"
_MAX_DERIVED = 1000


class AccountLoadError(ValueError):
    """A key could not be loaded; the message names the source and the fix, never the key."""


class Account:
    """One signing account. ``repr`` shows the address only."""

    __slots__ = ("_ckey", "_local", "address", "is_dev")

    def __init__(self, key: bytes) -> None:
        """``key``: 32 raw key bytes; coincurve refuses 0 and values at or above the curve order (ValueError)."""
        self._ckey = coincurve.PrivateKey(bytes(key))
        self._local: LocalAccount | None = None  # the eth_account codec's signer, built on its first use
        self.address: str = address_of(self._ckey.public_key)
        # Decided once: the check on every signature is then one attribute read.
        self.is_dev: bool = is_dev_key(self._ckey.secret)

    @classmethod
    def from_key(cls, key: str | bytes, *, source: str = "private key") -> Account:
        if isinstance(key, str):
            text = key.strip()
            text = text[2:] if text.lower().startswith("0x") else text
            if len(text) != 64:
                raise AccountLoadError(
                    f"{source}: expected 32 bytes as 64 hex digits (optionally 0x-prefixed), "
                    f"got {len(text)} characters; give the raw private key, not an address or mnemonic"
                )
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raise AccountLoadError(f"{source}: the private key is not valid hex") from None
        else:
            raw = bytes(key)
            if len(raw) != 32:
                raise AccountLoadError(f"{source}: expected 32 key bytes, got {len(raw)}")
        try:
            return cls(raw)
        except Exception:  # none of the key library's messages may be shown
            raise AccountLoadError(
                f"{source}: not a valid secp256k1 private key (must be non-zero and below the curve order)"
            ) from None

    def check_chain(self, chain_id: int) -> None:
        """Raise ``DevKeyRefused`` if this is a public dev key and ``chain_id`` is not the dev chain."""
        if self.is_dev and chain_id != DEV_CHAIN_ID:
            raise DevKeyRefused(self.address, chain_id, DEV_CHAIN_ID)

    def sign(self, tx: UnsignedTx, codec: Codec = "direct") -> SignedTx:
        self.check_chain(tx.chain_id)
        if codec == "direct":
            raw, h = sign_direct(self._ckey, tx)
        elif codec == "eth_account":
            signed = self._eth_account().sign_transaction(tx.as_eth_account_dict())
            raw, h = bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()
        else:
            raise ValueError(f"signer.codec: unknown codec {codec!r}; use 'direct' or 'eth_account'")
        return SignedTx(raw=raw, hash=h, nonce=tx.nonce, sender=self.address)

    def _eth_account(self) -> LocalAccount:
        if self._local is None:
            from eth_account import Account as EthAccount  # local: see the module docstring

            self._local = EthAccount.from_key(self._ckey.secret)
        return self._local

    def _worker_key(self) -> bytes:
        return bytes(self._ckey.secret)

    def __repr__(self) -> str:
        return f"Account({self.address})"

    def __str__(self) -> str:
        return self.address

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Account) and other.address == self.address

    def __hash__(self) -> int:
        return hash(self.address)

    def _refuse(self, *_: object) -> NoReturn:
        raise TypeError("Account holds a private key and cannot be pickled, copied or serialised")

    __reduce__ = __reduce_ex__ = __getstate__ = __copy__ = __deepcopy__ = _refuse


def address_of(public_key: coincurve.PublicKey) -> str:
    """The checksummed address of a public key: the last 20 bytes of the keccak of its 64 raw bytes."""
    return checksum_address(bytes(keccak(public_key.format(compressed=False)[1:]))[-20:])


def from_mnemonic(mnemonic: str = ANVIL_MNEMONIC, count: int = 1, *, start: int = 0) -> list[Account]:
    """Derive ``count`` accounts on the standard path m/44'/60'/0'/0/i."""
    if not 1 <= count <= _MAX_DERIVED:
        raise AccountLoadError(f"accounts.count: must be between 1 and {_MAX_DERIVED}, got {count}")
    if mnemonic == DEV_MNEMONIC:
        # A known-valid mnemonic on the same path: bot.chain.devkeys derives the keys eth_account does
        # (its test compares them), without the import.
        return [Account(k) for k in derive_keys(mnemonic, start + count)[start:]]
    from eth_account import Account as EthAccount  # local: see the module docstring

    EthAccount.enable_unaudited_hdwallet_features()
    out: list[Account] = []
    for i in range(start, start + count):
        try:
            local = EthAccount.from_mnemonic(mnemonic, account_path=_DERIVATION.format(index=i))
        except Exception:
            raise AccountLoadError(
                "accounts.mnemonic: not a valid BIP-39 mnemonic (check the word list and word count)"
            ) from None
        out.append(Account(bytes(local.key)))
    return out


def from_keys(keys: Iterable[str], *, source: str = "accounts.keys") -> list[Account]:
    out = [Account.from_key(k, source=f"{source}[{i}]") for i, k in enumerate(keys)]
    if not out:
        raise AccountLoadError(f"{source}: no keys given; list at least one private key")
    _reject_duplicates(out, source)
    return out


def from_env(var: str = "BOT_PRIVATE_KEYS", environ: dict[str, str] | None = None) -> list[Account]:
    """Comma- or whitespace-separated keys from an environment variable."""
    env = os.environ if environ is None else environ
    value = env.get(var)
    if value is None or not value.strip():
        raise AccountLoadError(f"environment variable {var} is not set; export it with comma-separated keys")
    return from_keys(value.replace(",", " ").split(), source=f"${var}")


def from_file(path: str | Path) -> list[Account]:
    """One key per line; blank lines and lines starting with '#' are ignored."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AccountLoadError(f"accounts.key_file: cannot read {p}: {exc.strerror}") from None
    lines = [ln.strip() for ln in text.splitlines()]
    return from_keys([ln for ln in lines if ln and not ln.startswith("#")], source=f"key file {p}")


def _reject_duplicates(accounts: Sequence[Account], source: str) -> None:
    seen: set[str] = set()
    for acc in accounts:
        if acc.address in seen:
            raise AccountLoadError(
                f"{source}: {acc.address} is listed twice; two nonce allocators for one account would collide"
            )
        seen.add(acc.address)


def load(
    *,
    keys: Sequence[str] | None = None,
    key_file: str | Path | None = None,
    env: str | None = None,
    mnemonic: str | None = None,
    count: int = 1,
) -> list[Account]:
    """One entry point for config: exactly one source, else an error naming the choices.

    With no source at all the anvil dev mnemonic is used (``count`` accounts): the project's
    default chain is a local anvil whose dev keys are public.
    """
    given = [name for name, v in (("keys", keys), ("key_file", key_file), ("env", env), ("mnemonic", mnemonic)) if v]
    if len(given) > 1:
        raise AccountLoadError(f"accounts: give one key source, not {' and '.join(given)}")
    if keys:
        return from_keys(keys)
    if key_file:
        return from_file(key_file)
    if env:
        return from_env(env)
    return from_mnemonic(mnemonic or ANVIL_MNEMONIC, count)
