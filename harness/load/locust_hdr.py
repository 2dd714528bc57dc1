"""HdrHistograms recorded inside a Locust process, and the report each worker ships to the master.

This module runs inside Locust's gevent-patched processes (``locust_events`` imports it) as well as
in the harness's asyncio process, so it imports nothing but ``hdrh`` and the harness's recorder
conventions: no asyncio, no aiohttp.

Conventions are the harness's (``harness.load.recorder``): microseconds into
``HdrHistogram(1, 60_000_000, 3)``; a sample lands in the wall-clock second in which its response
completed; failures are counted, not timed (a fast refusal would flatter the latency). Locust's users
are closed-loop and time a request from its *actual* start, so the one operation is recorded under
``api_request.service`` (service time, in the harness's naming): there is no intended start to
correct from.

A report is the delta since the previous one: per second ``{requests, failures, histogram}``, a
histogram per endpoint, and ``final`` once the process has stopped its users (nothing follows it).
On the wire it is plain JSON-able data (string keys, base64 histograms), since Locust sends worker
reports through msgpack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from harness.errors import HarnessError
from harness.load.recorder import HIST_HIGHEST_US, HIST_LOWEST_US, new_histogram

OP = "api_request.service"
REQUESTS, FAILURES = "api_requests", "api_failures"
REPORT_KEY = "tb_hdr"  # our entry in Locust's worker report dict (Locust owns "stats" and "errors")
WIRE_VERSION = 1
# The environment a Locust process reads (set by harness.load.locust_runner).
ENV_OUT = "TB_LOCUST_HDR_OUT"  # master or single process: write the merged run here when quitting
ENV_RAW_DIR = "TB_LOCUST_RAW_DIR"  # tests only: every process that ran users dumps its raw samples here
ENV_USER_RATE = "TB_LOCUST_USER_RATE"  # default of --tb-user-rate
FINAL_REPORT_WAIT_S = 15.0  # workers report every 3 s: the master's longest wait for their final reports


def to_us(response_time_ms: float) -> int:
    """Locust's float milliseconds as the harness's integer microseconds, clamped into the histogram's range."""
    return min(max(round(response_time_ms * 1000.0), HIST_LOWEST_US), HIST_HIGHEST_US)


@dataclass(frozen=True)
class SecondDelta:
    requests: int
    failures: int
    histogram: str | None  # the successes' latencies, encoded; None when there were none


@dataclass(frozen=True)
class WorkerReport:
    """What one Locust process recorded since its previous report."""

    seconds: Mapping[int, SecondDelta] = field(default_factory=dict)  # unix second -> delta
    by_name: Mapping[str, str] = field(default_factory=dict)  # "GET /health" -> encoded successes
    final: bool = False  # the process stopped its users before this report: nothing follows
    first_start: float | None = None  # unix time the earliest request in it started
    last_end: float | None = None  # ... and the latest completed

    @property
    def requests(self) -> int:
        return sum(d.requests for d in self.seconds.values())

    @property
    def failures(self) -> int:
        return sum(d.failures for d in self.seconds.values())

    def __repr__(self) -> str:
        return (f"WorkerReport({len(self.seconds)} s, {self.requests} requests, {self.failures} failures, "
                f"final={self.final})")

    def to_wire(self) -> dict[str, Any]:
        return {"v": WIRE_VERSION, "final": self.final, "by_name": dict(self.by_name),
                "span": [self.first_start, self.last_end],
                "seconds": {str(s): [d.requests, d.failures, d.histogram] for s, d in self.seconds.items()}}

    @classmethod
    def from_wire(cls, data: Any) -> WorkerReport:
        """Parses a report as received; anything else is a ``HarnessError`` naming what is wrong."""
        if not isinstance(data, Mapping) or data.get("v") != WIRE_VERSION:
            raise HarnessError(f"a Locust worker's HdrHistogram report is not version {WIRE_VERSION} "
                               "(is the worker running this harness's locustfile, of the same version?)")
        seconds: dict[int, SecondDelta] = {}
        try:
            for key, (reqs, fails, enc) in data["seconds"].items():
                if not (isinstance(reqs, int) and isinstance(fails, int) and 0 <= fails <= reqs):
                    raise ValueError(f"second {key}: counts {reqs!r}/{fails!r}")
                if not (enc is None or isinstance(enc, str)):
                    raise ValueError(f"second {key}: histogram is {type(enc).__name__}")
                seconds[int(key)] = SecondDelta(reqs, fails, enc)
            by_name = {str(k): str(v) for k, v in data["by_name"].items()}
            final = bool(data["final"])
            first, last = (None if t is None else float(t) for t in data["span"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HarnessError(f"a Locust worker's HdrHistogram report is malformed ({exc})") from None
        return cls(seconds, by_name, final, first, last)


def _encode(h: HdrHistogram | None) -> str | None:
    if h is None or h.get_total_count() == 0:
        return None
    enc = h.encode()
    return enc.decode() if isinstance(enc, bytes) else str(enc)


class SecondRecorder:
    """One Locust process's samples since its last report.

    Called from Locust's ``request`` event in whichever greenlet made the request. gevent switches
    greenlets only at I/O, and ``record``/``drain`` do none, so a report never splits a sample.
    ``keep_raw`` also keeps every sample as given (for the test that checks percentiles exactly).
    """

    def __init__(self, *, keep_raw: bool = False) -> None:
        self._hist: dict[int, HdrHistogram] = {}
        self._counts: dict[int, list[int]] = {}  # second -> [requests, failures]
        self._by_name: dict[str, HdrHistogram] = {}
        self.keep_raw = keep_raw
        self.raw: list[tuple[str, float, bool]] = []
        self.recorded = 0
        self._first_start: float | None = None
        self._last_end: float | None = None

    def __repr__(self) -> str:
        return f"<SecondRecorder {self.recorded} recorded, {len(self._counts)} s pending, raw={self.keep_raw}>"

    def record(self, name: str, response_time_ms: float, failed: bool, now: float) -> None:
        sec = int(now)
        start = now - response_time_ms / 1000.0
        if self._first_start is None or start < self._first_start:
            self._first_start = start
        if self._last_end is None or now > self._last_end:
            self._last_end = now
        counts = self._counts.setdefault(sec, [0, 0])
        counts[0] += 1
        self.recorded += 1
        if self.keep_raw:
            self.raw.append((name, float(response_time_ms), failed))
        if failed:
            counts[1] += 1
            return
        us = to_us(response_time_ms)
        h = self._hist.get(sec)
        if h is None:
            h = self._hist[sec] = new_histogram()
        h.record_value(us)
        hn = self._by_name.get(name)
        if hn is None:
            hn = self._by_name[name] = new_histogram()
        hn.record_value(us)

    def drain(self, *, final: bool) -> WorkerReport:
        """The delta since the last drain; the recorder starts empty again."""
        seconds = {s: SecondDelta(c[0], c[1], _encode(self._hist.get(s))) for s, c in sorted(self._counts.items())}
        by_name = {n: e for n, h in self._by_name.items() if (e := _encode(h)) is not None}
        span = (self._first_start, self._last_end)
        self._hist, self._counts, self._by_name = {}, {}, {}
        self._first_start = self._last_end = None
        return WorkerReport(seconds, by_name, final, *span)

    def clear(self) -> None:
        self._hist, self._counts, self._by_name = {}, {}, {}
        self._first_start = self._last_end = None
        self.raw = []
        self.recorded = 0
