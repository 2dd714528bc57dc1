"""What the fault proxy injected during a run, in ``results.json`` (top-level ``faults``; typed).

Present only when the run put the proxy between bot and node (``--network`` other than loopback,
``--faults`` or ``--fault-schedule``). ``injected`` counts every entry of the proxy's log by kind;
the log itself (time, kind, method, request id, transaction hash of a send) is the run folder's
``faults.jsonl``. ``from_json(to_json(f)) == f`` (tests/unit/test_run_faults.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Kind -> what the client saw, in the order the page lists them.
KINDS: dict[str, str] = {
    "loss": "the node answered; the reply was dropped (connection closed): a send may land unseen",
    "shape": "the node's reply rewritten as valid JSON of the wrong shape",
    "truncate": "the node's reply cut mid-body",
    "slow": "the node's reply trickled out slowly",
    "oversize": "the node's reply padded past the size limit",
    "rpc_error": "a JSON-RPC error instead of an answer (the node never saw it)",
    "http_5xx": "HTTP 503 (the node never saw it)",
    "rate_limited": "HTTP 429 with Retry-After (the node never saw it)",
    "drop": "the connection closed before forwarding (the node never saw it)",
    "garbage": "HTTP 200 with a body that is not JSON (the node never saw it)",
    "outage": "a request or handshake refused while the endpoint was down",
    "outage_start": "the endpoint went down",
    "outage_end": "the endpoint came back",
    "ws_garbage": "a garbage frame injected into a WebSocket",
    "ws_drop": "a WebSocket closed by the proxy",
    "plan": "the plan changed (schedule or control API)",
}


@dataclass(frozen=True)
class FaultsInjected:
    network: str  # loopback | same-region | cross-region | flaky
    plan: str  # the plan the proxy started with (the profile plus --faults), text form
    injected: Mapping[str, int] = field(default_factory=dict)  # log entries by kind
    faults: str | None = None  # --faults as given
    schedule: str = ""  # --fault-schedule's changes (on top of the profile), text form
    http_requests: int = 0
    forwarded: int = 0
    ws_connections: int = 0
    log: str | None = None  # the injection log, relative to the run folder
    log_entries: int = 0

    def __repr__(self) -> str:
        return f"FaultsInjected(network={self.network!r}, plan={self.plan!r}, injected={dict(self.injected)})"

    @property
    def total(self) -> int:
        return sum(n for k, n in self.injected.items() if k != "plan")

    def rows(self) -> list[tuple[str, int, str]]:
        """(kind, count, what the client saw), known kinds first in page order, every kind that occurred."""
        order = [k for k in KINDS if k in self.injected] + sorted(k for k in self.injected if k not in KINDS)
        return [(k, self.injected[k], KINDS.get(k, "")) for k in order]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FaultsInjected:
        return cls(network=str(d["network"]), plan=str(d["plan"]),
                   injected={str(k): int(v) for k, v in d.get("injected", {}).items()},
                   faults=d.get("faults"), schedule=str(d.get("schedule", "")),
                   http_requests=int(d.get("http_requests", 0)), forwarded=int(d.get("forwarded", 0)),
                   ws_connections=int(d.get("ws_connections", 0)), log=d.get("log"),
                   log_entries=int(d.get("log_entries", 0)))

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network, "plan": self.plan, "injected": dict(self.injected), "faults": self.faults,
                "schedule": self.schedule, "http_requests": self.http_requests, "forwarded": self.forwarded,
                "ws_connections": self.ws_connections, "log": self.log, "log_entries": self.log_entries}
