"""The two inputs of a reconciliation (pure): the bot's ledger as ``GET /ledger`` served it, and chain facts.

``LedgerDump.from_json`` reads the document of ``bot.chain.ledger_view`` strictly: a missing or
mistyped field raises ``ValueError`` naming it, so a bot that answers garbage makes the session
"not reconciled, because ..." instead of a clean-looking zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.run.nonceset import Range, normalize

MINED = frozenset({"mined_ok", "reverted"})
TERMINAL = frozenset({*MINED, "dropped", "rejected", "failed"})


def _int(d: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> int | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{where}.{key}: expected an integer, got {v!r:.80}")
    return v


def _req_int(d: Mapping[str, Any], key: str, where: str) -> int:
    v = _int(d, key, where)
    assert v is not None
    return v


def _str(d: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str):
        raise ValueError(f"{where}.{key}: expected a string, got {v!r:.80}")
    return v


def _ranges(d: Mapping[str, Any], key: str, where: str) -> tuple[Range, ...]:
    raw = d.get(key, [])
    if not isinstance(raw, list) or not all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
        for r in raw
    ):
        raise ValueError(f"{where}.{key}: expected a list of [lo, hi] integer pairs, got {raw!r:.80}")
    return tuple(normalize((int(r[0]), int(r[1])) for r in raw))


@dataclass(frozen=True)
class DumpRecord:
    id: int
    sender: str
    nonce: int | None
    hash: str | None
    hashes: tuple[str, ...]  # every candidate sent (the intent's bytes and any replacement)
    state: str
    label: str = ""
    error_kind: str | None = None
    nonce_fate: str | None = None  # released | confirmed | held | None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def mined(self) -> bool:
        return self.state in MINED

    @property
    def may_land(self) -> bool:
        """Failed without the bot declaring its bytes gone: a late landing is explained."""
        return self.state == "failed" and bool(self.hashes) and self.nonce_fate != "released"

    @classmethod
    def from_json(cls, d: Any, where: str) -> DumpRecord:
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {d!r:.80}")
        h = _str(d, "hash", where, optional=True)
        raw_hashes = d.get("hashes", [h] if h else [])
        if not isinstance(raw_hashes, list) or not all(isinstance(x, str) for x in raw_hashes):
            raise ValueError(f"{where}.hashes: expected a list of hash strings, got {raw_hashes!r:.80}")
        hashes = tuple(x.lower() for x in raw_hashes)
        if h is not None and h.lower() not in hashes:
            hashes = (h.lower(), *hashes)
        state = _str(d, "state", where)
        assert state is not None
        return cls(id=_req_int(d, "id", where), sender=str(_str(d, "sender", where)),
                   nonce=_int(d, "nonce", where, optional=True), hash=None if h is None else h.lower(),
                   hashes=hashes, state=state, label=_str(d, "label", where, optional=True) or "",
                   error_kind=_str(d, "error_kind", where, optional=True),
                   nonce_fate=_str(d, "nonce_fate", where, optional=True))


@dataclass(frozen=True)
class DumpAccount:
    address: str
    start_nonce: int | None  # None: this bot process never used the account
    mined: int = 0  # records ended mined_ok or reverted
    fillers: int = 0
    mined_nonces: tuple[Range, ...] = ()
    may_land: int = 0
    may_land_nonces: tuple[Range, ...] = ()
    doubled: int = 0
    doubled_nonces: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, address: str, d: Any) -> DumpAccount:
        where = f"accounts[{address}]"
        if not isinstance(d, Mapping):
            raise ValueError(f"{where}: expected an object, got {d!r:.80}")
        doubled_nonces = d.get("doubled_nonces", [])
        if not isinstance(doubled_nonces, list) or not all(isinstance(n, int) for n in doubled_nonces):
            raise ValueError(f"{where}.doubled_nonces: expected a list of integers")
        return cls(address, _int(d, "start_nonce", where, optional=True), _req_int(d, "mined", where),
                   _int(d, "fillers", where, optional=True) or 0, _ranges(d, "mined_nonces", where),
                   _int(d, "may_land", where, optional=True) or 0, _ranges(d, "may_land_nonces", where),
                   _int(d, "doubled", where, optional=True) or 0, tuple(int(n) for n in doubled_nonces))


@dataclass(frozen=True)
class LedgerDump:
    opened: int
    in_flight: int
    evicted: int  # terminal records only the account tallies remember
    records: tuple[DumpRecord, ...] = ()
    accounts: Mapping[str, DumpAccount] = field(default_factory=dict)
    keep_recent: int = 0

    def __repr__(self) -> str:
        return (f"LedgerDump(opened={self.opened}, in_flight={self.in_flight}, records={len(self.records)}, "
                f"evicted={self.evicted}, accounts={len(self.accounts)})")

    @property
    def fingerprint(self) -> tuple[int, int, int]:
        """Changes whenever an intent opens or settles: equal before and after the chain was read means the
        chain facts and the ledger describe one moment."""
        return (self.opened, self.in_flight, sum(a.mined for a in self.accounts.values()))

    @classmethod
    def from_json(cls, d: Any) -> LedgerDump:
        if not isinstance(d, Mapping):
            raise ValueError(f"ledger: expected a JSON object, got {d!r:.80}")
        if d.get("version") != 1:
            raise ValueError(f"ledger.version: this harness reads version 1, got {d.get('version')!r}")
        accounts = d.get("accounts")
        if not isinstance(accounts, Mapping):
            raise ValueError("ledger.accounts: expected an object keyed by address")
        records = d.get("records", [])
        if not isinstance(records, list):
            raise ValueError("ledger.records: expected a list")
        return cls(_req_int(d, "opened", "ledger"), _req_int(d, "in_flight", "ledger"),
                   _req_int(d, "evicted", "ledger"),
                   tuple(DumpRecord.from_json(r, f"ledger.records[{i}]") for i, r in enumerate(records)),
                   {str(a): DumpAccount.from_json(str(a), v) for a, v in accounts.items()},
                   _int(d, "keep_recent", "ledger", optional=True) or 0)


@dataclass(frozen=True)
class TxFact:
    """What the node says about one hash: ``block`` None while it is only in the pool."""

    hash: str
    sender: str
    nonce: int
    block: int | None
    status: int | None = None  # the receipt's, when mined


@dataclass(frozen=True)
class ChainFacts:
    txs: Mapping[str, TxFact | None]  # every hash looked up (lower case); None: the node does not know it
    counts: Mapping[str, int]  # account -> eth_getTransactionCount(addr, "latest")
    sampled: bool = False  # more hashes than the cap: a sample was looked up
    note: str = ""

    def __repr__(self) -> str:
        known = sum(1 for f in self.txs.values() if f is not None)
        return (f"ChainFacts(looked_up={len(self.txs)}, known={known}, accounts={len(self.counts)}, "
                f"sampled={self.sampled})")
