"""bot.shard.merge.decoded_sum: the exact sum of encoded HdrHistograms, freeing each decoded one as soon
as it is added (hdrh's histogram/encoder reference cycle otherwise held them all until a collection)."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.shard.merge import decoded_sum, merge_encoded
from bot.telemetry.recorder import new_histogram

COUNTS_BYTES = 17_408 * 8  # one HdrHistogram(1, 60 s, 3 figures): its counts array


def _encoded(values: list[int]) -> str:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return str(h.encode().decode("ascii"))


@given(st.lists(st.lists(st.integers(0, 60_000_000), min_size=1, max_size=30), min_size=1, max_size=8))
@settings(max_examples=40, deadline=None)
def test_the_sum_is_every_value_once(parts: list[list[int]]) -> None:
    total = decoded_sum(_encoded(p) for p in parts)
    expected = new_histogram()
    for v in (v for p in parts for v in p):
        expected.record_value(v)
    assert total is not None
    assert total.get_total_count() == expected.get_total_count()
    assert (total.get_min_value(), total.get_max_value()) == (expected.get_min_value(), expected.get_max_value())
    for q in (50, 90, 99, 99.9, 100):
        assert total.get_value_at_percentile(q) == expected.get_value_at_percentile(q)
    merged = HdrHistogram.decode(merge_encoded([_encoded(p) for p in parts]))
    assert merged.get_total_count() == expected.get_total_count()


def test_nothing_to_sum_is_none() -> None:
    assert decoded_sum([]) is None


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def test_decoded_histograms_do_not_pile_up_while_summing() -> None:
    encoded = [_encoded([i + 1, 1000 * (i + 1)]) for i in range(40)]
    gc.collect()
    with _no_cyclic_gc():  # what a frozen, rarely collected heap looks like: only refcounts free memory
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            start = tracemalloc.get_traced_memory()[0]
            total = decoded_sum(encoded)
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
    assert total is not None and total.get_total_count() == 80
    # The sum plus one decoded histogram at a time (each holds its counts, decoded via a payload buffer);
    # all 40 kept alive would be over 5 MB.
    assert peak < 6 * COUNTS_BYTES, f"peak {peak / 1e6:.2f} MB while summing 40 histograms"
