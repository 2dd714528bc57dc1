"""The ledger as a JSON document, for ``GET /ledger`` and the harness's reconciliation (pure).

Document (``version`` 1)::

    {"version": 1, "keep_recent": 1000, "opened": 5210, "in_flight": 0, "evicted": 4210,
     "records": [{"id", "sender", "nonce", "hash", "hashes", "state", "label", "error_kind",
                  "nonce_fate", "block"}, ...],
     "accounts": {"0xabc…": {"start_nonce": 7, "states": {...}, "mined": 812, "fillers": 2,
                             "mined_nonces": [[7, 818]], "highest_confirmed": 818,
                             "may_land": 0, "may_land_nonces": [], "doubled": 0, "doubled_nonces": []}}}

``records`` are the live records and the ring of recent terminal ones (at most ``keep_recent`` +
the in-flight limit); ``evicted`` terminal records are known only through ``accounts``, whose
tallies are never evicted. ``hash`` is the candidate the outcome is about (the mined one, when a
replacement was mined); ``hashes`` every candidate sent. ``start_nonce`` is the account's pending
transaction count when this bot process first used it (None: not used yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.chain.ledger import Ledger, TxRecord

VERSION = 1


def record_json(rec: TxRecord) -> dict[str, Any]:
    hashes = list(rec.candidates) or ([rec.hash] if rec.hash else [])
    return {
        "id": rec.id, "sender": rec.sender, "nonce": rec.nonce, "hash": rec.hash, "hashes": hashes,
        "state": rec.state.value, "label": rec.label, "error_kind": rec.error_kind,
        "nonce_fate": None if rec.nonce_fate is None else rec.nonce_fate.value, "block": rec.block,
    }


def ledger_document(ledger: Ledger, start_nonces: Mapping[str, int], *, records: bool = True) -> dict[str, Any]:
    """The document above; ``records=False`` leaves the records out (a cheap "did anything move?")."""
    live = ledger.live()
    accounts: dict[str, Any] = {}
    for addr, tally in ledger.tallies().items():
        accounts[addr] = {"start_nonce": start_nonces.get(addr), **tally.as_json()}
    doc: dict[str, Any] = {
        "version": VERSION, "keep_recent": ledger.keep_recent, "opened": ledger.opened, "in_flight": len(live),
        "evicted": ledger.evicted, "accounts": accounts,
    }
    if records:
        doc["records"] = [record_json(r) for r in (*live, *ledger.recent())]
    return doc
