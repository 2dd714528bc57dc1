"""What the fault proxy injected, when and into which call: a bounded in-memory log with counts.

``describe`` reads a JSON-RPC request body only when a fault is injected (the clean path never
parses): the method, the id, and for ``eth_sendRawTransaction`` the transaction hash computed
locally as the bot does, so a ``loss`` on a send can be matched against the chain afterwards.

``InjectionLog`` keeps the newest ``maxlen`` entries (``GET /_proxy/log`` pages through them by
``seq``) and counts every entry by kind, evicted or not; with a ``sink`` path it also appends every
entry to a JSON-lines file (``faults.jsonl`` in a run folder), which is therefore complete.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from bot.rpc.codec import tx_hash
from harness.node.faultshapes import id_key

SEND = "eth_sendRawTransaction"


@dataclass(frozen=True)
class RequestInfo:
    """Who a fault hit: ``method`` (a batch: ``batch[n]:m1,m2``), ``request_id`` (a batch: the list of ids),
    and ``tx_hash`` for a send."""

    method: str | None = None
    request_id: Any = None
    tx_hash: str | None = None
    methods: Mapping[Any, str] | None = None  # id -> method, for the wrong shapes

    def __repr__(self) -> str:
        return f"RequestInfo({self.method!r}, id={self.request_id!r}, tx_hash={self.tx_hash!r})"


def describe(body: bytes) -> RequestInfo:
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return RequestInfo()
    calls = [c for c in (doc if isinstance(doc, list) else [doc]) if isinstance(c, dict)]
    methods = {id_key(c.get("id")): str(c.get("method")) for c in calls}
    hashes = [_send_hash(c) for c in calls]
    first_hash = next((h for h in hashes if h), None)
    if not isinstance(doc, list):
        single = calls[0] if calls else {}
        return RequestInfo(single.get("method"), single.get("id"), first_hash, methods)
    names = ",".join(dict.fromkeys(str(c.get("method")) for c in calls))
    return RequestInfo(f"batch[{len(calls)}]:{names}", [c.get("id") for c in calls], first_hash, methods)


def _send_hash(call: Mapping[str, Any]) -> str | None:
    params = call.get("params")
    if call.get("method") != SEND or not isinstance(params, list) or not params or not isinstance(params[0], str):
        return None
    try:
        return tx_hash(bytes.fromhex(params[0].removeprefix("0x")))
    except ValueError:
        return None


@dataclass(frozen=True)
class Injection:
    seq: int
    t: float  # seconds since the proxy started (monotonic)
    time: float  # Unix seconds
    kind: str
    method: str | None = None
    request_id: Any = None
    tx_hash: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "t": round(self.t, 6), "time": self.time, "kind": self.kind}
        for key in ("method", "request_id", "tx_hash"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.detail:
            out["detail"] = self.detail
        return out


class InjectionLog:
    """Bounded: the newest ``maxlen`` entries in memory; counts and the optional file sink see every entry."""

    def __init__(self, maxlen: int = 10_000, sink: Path | None = None) -> None:
        if maxlen < 1:
            raise ValueError(f"injection log maxlen must be >= 1, got {maxlen}")
        self.maxlen = maxlen
        self.sink = sink
        self._entries: collections.deque[Injection] = collections.deque(maxlen=maxlen)
        self._counts: collections.Counter[str] = collections.Counter()
        self._seq = 0
        self._file: IO[bytes] | None = sink.open("ab") if sink is not None else None

    def __repr__(self) -> str:
        return (f"<InjectionLog entries={len(self._entries)}/{self.maxlen} total={self._seq} "
                f"sink={self.sink}>")

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Injection]:
        return iter(tuple(self._entries))

    @property
    def total(self) -> int:
        return self._seq

    @property
    def evicted(self) -> int:
        return self._seq - len(self._entries)

    def add(self, t: float, kind: str, info: RequestInfo | None = None, detail: str = "") -> Injection:
        info = info or RequestInfo()
        entry = Injection(self._seq, t, time.time(), kind, info.method, info.request_id, info.tx_hash, detail)
        self._seq += 1
        self._entries.append(entry)
        self._counts[kind] += 1
        if self._file is not None:
            self._file.write(orjson.dumps(entry.to_json(), default=repr) + b"\n")
        return entry

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def since(self, seq: int, limit: int = 1000) -> list[Injection]:
        """Entries with ``seq >= seq`` still held, oldest first, at most ``limit``."""
        out = []
        for entry in self._entries:
            if entry.seq >= seq:
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
