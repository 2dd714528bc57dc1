"""harness.stats.histograms: hdrh-identical figures from numpy, merging, encoding, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import ConfigError
from harness.stats import histograms as H


def _hist(values: list[int]) -> HdrHistogram:
    h = H.new_histogram()
    for v in values:
        h.record_value(v)
    return h


values_st = st.lists(st.integers(min_value=1, max_value=60_000_000), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(values=values_st, q=st.floats(min_value=0.01, max_value=100.0))
def test_percentile_and_mean_match_hdrh(values: list[int], q: float) -> None:
    h = _hist(values)
    counts = H.counts_array(h)
    assert H.percentile_from_counts(counts, q) == h.get_value_at_percentile(q)
    assert H.mean_from_counts(counts) == pytest.approx(h.get_mean_value(), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(values_st, min_size=1, max_size=5))
def test_series_merge_equals_hdrh_add_and_encoding_round_trips(parts: list[list[int]]) -> None:
    hists = [_hist(p) for p in parts]
    merged = H.merge(hists)
    series = H.series_from_encoded([H.encode(h) for h in hists] + [None])
    assert series.n_intervals == len(parts) + 1
    assert series.total == sum(len(p) for p in parts)
    assert np.array_equal(series.merged_full(), H.counts_array(merged))
    for q in (50.0, 95.0, 99.0, 100.0):
        assert series.percentile_us(q) == merged.get_value_at_percentile(q)
    assert series.interval_counts()[-1] == 0  # the absent interval stays, empty


def test_merge_adds_counts_never_averages_percentiles() -> None:
    fast = _hist([1000] * 99)
    slow = _hist([100_000] * 1)
    merged = H.merge([fast, slow])
    # Averaging the two p99s would give ~50 ms; the merged p99 is the 99th of 100 samples: 1 ms.
    assert merged.get_value_at_percentile(99) == fast.get_value_at_percentile(99)
    assert merged.get_value_at_percentile(100) == slow.get_value_at_percentile(100)
    assert merged.get_total_count() == 100


def test_summary_and_subset() -> None:
    rng = np.random.default_rng(1)
    hists = [_hist(list(rng.integers(100, 5000, 50))) for _ in range(4)]
    s = H.series_from_histograms(hists)
    sub = s.subset([1, 3])
    assert sub.n_intervals == 2
    assert np.array_equal(sub.merged_full(), H.counts_array(H.merge([hists[1], hists[3]])))
    summary = H.summarize(H.merge(hists))
    assert summary.count == 200
    assert summary.min_us <= summary.p50_us <= summary.p99_us <= summary.max_us


def test_empty_summary_is_nan_not_zero() -> None:
    s = H.summarize(H.new_histogram())
    assert s.count == 0 and np.isnan(s.mean_us)


def test_garbage_encoding_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"interval 1.*not a valid HdrHistogram"):
        H.series_from_encoded([H.encode(_hist([5])), "bm90IGEgaGlzdG9ncmFt"], where="scenario x histogram 'op'")


def test_other_layout_is_re_recorded_into_the_standard_one() -> None:
    other = HdrHistogram(1, 3_600_000_000, 2)
    for v in (10, 2000, 300_000):
        other.record_value(v)
    h = H.decode(other.encode())
    assert h.counts_len == H.COUNTS_LEN
    assert h.get_total_count() == 3


def test_bad_percentile_is_refused() -> None:
    with pytest.raises(ConfigError, match="percentile"):
        H.percentile_from_counts(H.counts_array(_hist([1])), 0.0)
