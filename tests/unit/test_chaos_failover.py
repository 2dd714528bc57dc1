"""The chaos measurements from the proxies' records (harness.stats.failover): against brute force, by hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.stats.failover import Outage, Reply, carrier, early_requests, failover_times, percentile, summarize

times = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False)
proxies = st.sampled_from(["A", "B"])
statuses = st.sampled_from([0, 200, 200, 200, 429, 503])


@st.composite
def replies(draw: st.DrawFn) -> list[Reply]:
    out = []
    for _ in range(draw(st.integers(0, 40))):
        arrived = draw(times)
        out.append(Reply(draw(proxies), arrived, arrived + draw(st.floats(0.0, 2.0)), draw(statuses)))
    return out


@st.composite
def outages(draw: st.DrawFn) -> list[Outage]:
    starts = sorted(draw(st.lists(times, max_size=6, unique=True)))
    return [Outage(t, draw(proxies), 1.0) for t in starts]


def _brute_failover(outs: list[Outage], reps: list[Reply], end: float) -> list[float | None]:
    out: list[float | None] = []
    for i, o in enumerate(outs):
        horizon = outs[i + 1].start if i + 1 < len(outs) else end
        got = [r.answered - o.start for r in reps
               if r.proxy != o.proxy and 200 <= r.status < 300 and o.start <= r.answered < horizon]
        out.append(min(got) if got else None)
    return out


@given(outages(), replies(), times)
def test_failover_time_is_the_first_success_through_another_proxy(outs: list[Outage], reps: list[Reply],
                                                                 end: float) -> None:
    got = failover_times(outs, reps, end)
    assert got == _brute_failover(outs, reps, end)
    assert all(t is None or t >= 0 for t in got)


@given(outages(), replies(), times)
def test_traffic_on_the_proxy_that_is_down_never_counts_as_a_failover(outs: list[Outage], reps: list[Reply],
                                                                      end: float) -> None:
    outs = [Outage(o.start, "A", o.seconds) for o in outs]
    base = failover_times(outs, reps, end)
    noise = [Reply("A", o.start, o.start + 0.001, 200) for o in outs]  # the downed proxy "answering"
    assert failover_times(outs, reps + noise, end) == base


def test_failover_examples() -> None:
    reps = [Reply("A", 0.5, 0.6, 200), Reply("A", 10.0, 10.0, 0), Reply("B", 10.0, 10.05, 200),
            Reply("B", 10.2, 10.3, 200), Reply("A", 20.1, 20.4, 200)]
    outs = [Outage(10.0, "A", 1.0), Outage(20.0, "B", 1.0), Outage(30.0, "A", 1.0)]
    got = failover_times(outs, reps, end=40.0)
    assert got[0] == pytest.approx(0.05) and got[1] == pytest.approx(0.4) and got[2] is None
    s = summarize(got)
    assert (s.n, s.unobserved) == (2, 1)
    assert s.p50_ms == pytest.approx(50.0) and s.p99_ms == pytest.approx(400.0) and s.max_ms == pytest.approx(400.0)
    assert summarize([None]).p99_ms is None


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1), st.floats(0.0, 100.0))
def test_nearest_rank_percentile(values: list[float], q: float) -> None:
    s = sorted(values)
    p = percentile(s, q)
    assert p in s
    assert sum(v <= p for v in s) >= math.ceil(q / 100 * len(s))  # at least q% at or below it
    assert percentile(s, 100.0) == s[-1] and percentile(s, 0.0) == s[0]


@given(st.lists(times, max_size=40), st.lists(times, max_size=10), st.floats(0.0, 5.0), st.floats(0.0, 1.0))
def test_early_requests_are_those_inside_a_park(reqs: list[float], limited: list[float], cap: float,
                                                 grace: float) -> None:
    got = early_requests(reqs, limited, cap, grace)
    want = [r for r in reqs if any(t + grace < r < t + cap for t in limited if t <= r - grace)]
    assert got == want


def test_early_requests_examples() -> None:
    # a 429 at 1.0, the bot's park 2 s: a request in flight at 1.1 is forgiven, 2.0 is early, 3.0 is on time
    assert early_requests([1.1, 2.0, 3.0, 3.5], [1.0], cap=2.0, grace=0.25) == [2.0]
    # the latest 429 decides: 3.0 was answered 429 again, so 4.5 is still inside its park
    assert early_requests([3.0, 4.5, 5.1], [1.0, 3.0], cap=2.0, grace=0.25) == [4.5]


def test_carrier_is_the_proxy_with_most_recent_requests() -> None:
    reps = [Reply("A", 0.1, 0.2, 200)] * 5 + [Reply("B", 0.8, 0.9, 200)] * 2 + [Reply("A", 0.9, 0.95, 200)]
    assert carrier(reps, now=1.0, window=0.5) == "B"  # in [0.5, 1.0): B twice, A once
    assert carrier(reps, now=1.0, window=1.0) == "A"
    assert carrier(reps, now=5.0) is None
