"""What the collector's hook shares with the recorder and the harness, without importing ``gcwatch``.

``gcwatch`` imports the recorder, so the recorder cannot import it back; both import this module, which
imports nothing of the project (the harness reads the names below without loading the bot's telemetry).

The contract of ``GcClock``: ``GcWatch``'s hook sets ``long_end_ns`` to ``time.perf_counter_ns()`` at the stop
of every collection that paused for ``LONG_PAUSE_NS`` or more (the collector holds the GIL, so a pause stops the
event loop whichever thread collected). The recorder reads it when it records a latency
operation: a sample of ``micros`` recorded at ``now`` spans ``[now - micros, now]``, and the last long pause,
which ended at or before ``now``, overlaps it exactly when it ended after the sample began; an earlier long
pause ended earlier still, so the last one is the only one that needs keeping. ``0``: no long pause yet.

Auxiliary histograms (``is_auxiliary_op``): recorded beside the operations, never operations themselves:

- ``gc_pause.gen0`` .. ``gc_pause.gen2``: the pauses of one generation (``gc_pause`` holds all of them);
- ``<op>.gc_overlap``: the samples of ``op`` that overlapped a long pause (a subset of ``op``'s samples,
  under the same tag).
"""

from __future__ import annotations

GC_PAUSE_OP = "gc_pause"
GC_PAUSE_GEN_OPS = tuple(f"{GC_PAUSE_OP}.gen{g}" for g in (0, 1, 2))  # indexed by generation
GC_OVERLAP_SUFFIX = ".gc_overlap"
# A "long" pause for the overlap: gen-0 collections of tens of µs overlap nearly every 30-ms trade, so
# counting them would say only that trades are longer than gen-0 pauses; 1 ms is a few percent of a trade,
# the order at which a pause can move it into the slowest 1%.
LONG_PAUSE_NS = 1_000_000


class GcClock:
    """The end (``perf_counter_ns``) of the last collection that paused for ``LONG_PAUSE_NS`` or more."""

    __slots__ = ("long_end_ns",)

    def __init__(self) -> None:
        self.long_end_ns = 0

    def __repr__(self) -> str:
        return f"<GcClock long_end_ns={self.long_end_ns}>"


def overlap_op(op: str) -> str:
    """``overlap_op("trade_execution") == "trade_execution.gc_overlap"``."""
    return op + GC_OVERLAP_SUFFIX


def is_auxiliary_op(name: str) -> bool:
    """A histogram key that is not an operation: never judged, tabled, plotted or compared as one."""
    return name.endswith(GC_OVERLAP_SUFFIX) or name in GC_PAUSE_GEN_OPS
