"""The report's dense histogram arithmetic agrees exactly with hdrh's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.report import histograms as H
from harness.results import ResultsError

samples = st.lists(st.integers(min_value=1, max_value=60_000_000), min_size=1, max_size=300)


def _hdr(values: list[int]) -> HdrHistogram:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    return h


def _dense(values: list[int]) -> H.Dense:
    return H.decode(_hdr(values).encode().decode("ascii"))


@settings(max_examples=60, deadline=None)
@given(values=samples, p=st.floats(min_value=0.1, max_value=100.0))
def test_percentile_and_mean_match_hdrh(values: list[int], p: float) -> None:
    h = _hdr(values)
    d = _dense(values)
    assert d.total == len(values)
    assert H.percentile_ms(d, p) == h.get_value_at_percentile(p) / 1000.0
    assert H.mean_ms(d) == pytest.approx(h.get_mean_value() / 1000.0, rel=1e-12)
    assert H.max_ms(d) == h.get_max_value() / 1000.0


@settings(max_examples=40, deadline=None)
@given(a=samples, b=samples)
def test_merge_equals_recording_everything_in_one(a: list[int], b: list[int]) -> None:
    merged = H.merge([_dense(a), _dense(b)])
    assert merged is not None
    assert np.array_equal(merged.counts, _dense(a + b).counts)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.integers(min_value=1, max_value=60_000_000), min_size=1, max_size=50))
def test_layout_matches_hdrh_equivalent_values(values: list[int]) -> None:
    h = HdrHistogram(1, 60_000_000, 3)
    lay = H.layout(1, 60_000_000, 3)
    for v in values:
        i = h._counts_index_for(v)
        assert lay.lowest[i] == h.get_lowest_equivalent_value(v)
        assert lay.highest[i] == h.get_highest_equivalent_value(v)


def test_spectrum_is_monotone_and_stops_where_samples_run_out() -> None:
    rng = np.random.default_rng(3)
    d = _dense([int(x) for x in rng.lognormal(8, 0.6, 500)])
    x, y = H.spectrum_ms(d)
    assert np.all(np.diff(y) >= 0) and np.all(np.diff(x) > 0)
    assert x[-1] <= 500  # 1/(1-p) beyond the sample count would only repeat the maximum
    assert x[0] == 1.0


def test_stat_names_and_errors() -> None:
    d = _dense([1000, 2000, 3000, 4000])
    assert H.stat_ms(d, "p50") == H.percentile_ms(d, 50)
    assert H.stat_ms(d, "p99.9") == H.percentile_ms(d, 99.9)
    assert H.stat_ms(d, "max") == H.max_ms(d)
    for bad in ("median", "p", "p101", "q99"):
        with pytest.raises(ValueError, match="use 'mean', 'max' or 'p<percentile>'"):
            H.stat_ms(d, bad)


def test_empty_histogram_gives_nan_not_zero() -> None:
    d = H.decode(HdrHistogram(1, 60_000_000, 3).encode().decode("ascii"))
    assert math.isnan(H.mean_ms(d)) and math.isnan(H.percentile_ms(d, 99)) and math.isnan(H.max_ms(d))
    assert H.merge([]) is None


def test_undecodable_histogram_names_where() -> None:
    with pytest.raises(ResultsError, match="scenario 'x' op at t=3s"):
        H.decode("AAAAAAAAAAAA", "scenario 'x' op at t=3s")
