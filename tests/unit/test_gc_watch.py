"""GC pauses (bot.telemetry.gcwatch): real collections timed, drained into the telemetry at rotation,
exported to Prometheus, and the collector left as it was found."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from prometheus_client.parser import text_string_to_metric_families

from bot.telemetry.gcwatch import COLLECTED, COLLECTIONS, GC_PAUSE_OP, PAUSE_US, GcWatch
from bot.telemetry.prometheus import make_registry, render
from bot.telemetry.recorder import TAG, Telemetry


@pytest.fixture
def watched() -> Iterator[tuple[Telemetry, GcWatch]]:
    t = Telemetry(operations=())
    w = GcWatch(t)
    w.install()
    try:
        yield t, w
    finally:
        w.uninstall()


def _cycles(n: int) -> None:
    for _ in range(n):
        a: dict[str, Any] = {}
        a["self"] = a  # garbage only a collection frees


def test_a_forced_collection_is_recorded_with_a_plausible_pause(watched: tuple[Telemetry, GcWatch]) -> None:
    t, w = watched
    gc.collect()  # clear what earlier tests left, so the next one frees exactly ours
    gc.disable()  # and no automatic collection lands between the statistics and the rotation
    try:
        t.rotate()
        before = w.statistics()
        _cycles(500)
        gc.collect()
        st = w.statistics()
        closed = t.rotate()
    finally:
        gc.enable()
    assert st.collections[2] == before.collections[2] + 1 and st.collected[2] - before.collected[2] >= 500
    hist = HdrHistogram.decode(closed.histograms[GC_PAUSE_OP])
    n = sum(closed.counters.get(k, 0) for k in COLLECTIONS)
    assert hist.get_total_count() == n >= 1
    # A full collection of this test process takes microseconds to a few hundred ms, never nothing or seconds.
    assert 1 <= hist.get_max_value() < 2_000_000
    assert closed.counters[COLLECTIONS[2]] >= 1
    assert closed.counters[COLLECTED[2]] >= 500
    total_us = sum(closed.counters.get(k, 0) for k in PAUSE_US)
    assert abs(total_us - (sum(st.pause_ns) - sum(before.pause_ns)) // 1000) <= 3  # floor per generation
    assert w.statistics().pending == 0


def test_counts_per_generation_match_the_collections_made(watched: tuple[Telemetry, GcWatch]) -> None:
    t, w = watched
    gc.disable()  # only the collections this test makes
    try:
        t.rotate()
        before = w.statistics().collections
        for _ in range(3):
            gc.collect(0)
        gc.collect(1)
        closed = t.rotate()
    finally:
        gc.enable()
    after = w.statistics().collections
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 1, 0]
    assert closed.counters[COLLECTIONS[0]] == 3
    assert closed.counters[COLLECTIONS[1]] == 1
    assert COLLECTIONS[2] not in closed.counters
    assert HdrHistogram.decode(closed.histograms[GC_PAUSE_OP]).get_total_count() == 4


def test_pauses_are_kept_out_of_a_ticks_tag(watched: tuple[Telemetry, GcWatch]) -> None:
    t, _ = watched
    token = TAG.set("sustained")  # a rotation that runs inside a tagged context
    try:
        gc.collect(0)
        closed = t.rotate()
    finally:
        TAG.reset(token)
    assert GC_PAUSE_OP in closed.histograms
    assert all(GC_PAUSE_OP not in sl.histograms for sl in closed.tags.values())


def test_uninstall_hands_over_pending_pauses_and_restores_the_collector() -> None:
    t = Telemetry(operations=())
    w = GcWatch(t)
    callbacks, threshold = list(gc.callbacks), gc.get_threshold()
    w.install(threshold=(5000, 20, 30))
    assert gc.get_threshold() == (5000, 20, 30)
    frozen = w.freeze()
    assert frozen > 1000 and gc.get_freeze_count() == frozen
    gc.collect(0)
    w.uninstall()
    assert gc.callbacks == callbacks and gc.get_threshold() == threshold and gc.get_freeze_count() == 0
    assert not w.statistics().installed
    closed = t.rotate()  # the pause from before uninstall is in the interval, the hook is gone
    assert closed.counters[COLLECTIONS[0]] >= 1
    gc.collect(0)
    assert COLLECTIONS[0] not in t.rotate().counters


def test_a_failing_rotation_hook_is_counted_and_the_interval_still_closes() -> None:
    t = Telemetry(operations=())

    def broken() -> None:
        raise RuntimeError("boom")

    t.add_rotation_hook(broken)
    t.record("trade_execution", 100)
    closed = t.rotate()
    assert closed.counters["rotation_hook_failures"] == 1 and "trade_execution" in closed.histograms
    t.remove_rotation_hook(broken)
    assert "rotation_hook_failures" not in t.rotate().counters


def _samples(t: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(render(make_registry(t, process=False)).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_exposes_every_generation_from_the_start_then_the_pauses() -> None:
    t = Telemetry(operations=())
    s = _samples(t)
    for g in "012":
        assert s[("bot_gc_collections_total", (("generation", g),))] == 0
        assert s[("bot_gc_collection_seconds_total", (("generation", g),))] == 0
    assert s[("bot_gc_pause_seconds_count", ())] == 0
    w = GcWatch(t)
    w.install()
    try:
        gc.collect()
        t.rotate()
        s = _samples(t)
    finally:
        w.uninstall()
    assert s[("bot_gc_collections_total", (("generation", "2"),))] >= 1
    assert s[("bot_gc_pause_seconds_count", ())] >= 1
    assert s[("bot_gc_pause_seconds_bucket", (("le", "+Inf"),))] == s[("bot_gc_pause_seconds_count", ())]
    seconds = sum(s[("bot_gc_collection_seconds_total", (("generation", g),))] for g in "012")
    assert seconds == pytest.approx(s[("bot_gc_pause_seconds_sum", ())], abs=1e-5)
    assert ("bot_gc_frozen_objects", ()) in s
