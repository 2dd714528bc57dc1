"""Merging the shards' reports (pure): telemetry intervals, histograms, gauges, ledgers, the feed split."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.shard.merge import IntervalAligner, merge_drains, merge_encoded, merge_gauges, merge_ledgers
from bot.shard.relay import Splitter
from bot.telemetry.recorder import new_histogram


def _enc(values: list[int]) -> str:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return str(h.encode().decode("ascii"))


values = st.lists(st.integers(1, 60_000_000), min_size=1, max_size=50)


# Encoding a histogram takes ~0.3 ms, more on a loaded machine: no per-example deadline.
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(st.lists(values, min_size=1, max_size=4))
def test_a_merged_histogram_is_the_histogram_of_all_values(parts: list[list[int]]) -> None:
    merged = HdrHistogram.decode(merge_encoded([_enc(p) for p in parts]))
    whole = HdrHistogram.decode(_enc([v for p in parts for v in p]))
    assert merged.get_total_count() == whole.get_total_count()
    # Bucket for bucket: every percentile, the mean and the extremes follow.
    assert bytes(merged.counts) == bytes(whole.counts)
    assert (merged.get_min_value(), merged.get_max_value()) == (whole.get_min_value(), whole.get_max_value())
    assert merged.get_value_at_percentile(99) == whole.get_value_at_percentile(99)


def _intervals(phase: float, n: int, counts: list[int], tag_every: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        c = counts[i % len(counts)]
        iv: dict[str, Any] = {"seq": i, "start": 100.0 + phase + i, "end": 101.0 + phase + i,
                                 "histograms": {"trade_execution": _enc([1000 + c])} if c else {},
                                 "counters": {"trades_ok": c, "errors{kind=timeout}": i % 2}}
        if tag_every and i % tag_every == 0:
            iv["tags"] = {"sustained": {"histograms": {}, "counters": {"trades_ok": c}}}
        out.append(iv)
    return out


shard_streams = st.lists(
    st.tuples(st.floats(-0.99, 0.99), st.integers(0, 12), st.lists(st.integers(0, 5), min_size=1, max_size=4),
              st.integers(0, 3)), min_size=1, max_size=4)


@SLOW
@given(shard_streams, st.lists(st.integers(0, 3), max_size=60))
def test_merged_counts_equal_the_sums_whatever_the_phases_and_pull_order(
    streams: list[tuple[float, int, list[int], int]], pulls: list[int]
) -> None:
    shards = [_intervals(phase, n, counts, tag) for phase, n, counts, tag in streams]
    al = IntervalAligner(len(shards), origin=100.0, width=1.0, max_lag_s=3.0)
    cursor = [0] * len(shards)
    closed: list[dict[str, Any]] = []
    now = 100.0
    for p in [*pulls, *list(range(len(shards))) * 13]:  # random pulls, then every shard drained
        s = p % len(shards)
        if cursor[s] < len(shards[s]):
            al.add(s, [shards[s][cursor[s]]])
            cursor[s] += 1
        now += 0.3
        closed += al.close_ready(now, range(len(shards)))
    closed += al.close_ready(now + 1000, [])  # every shard gone: whatever is left closes
    assert [iv["seq"] for iv in closed] == list(range(len(closed)))
    assert all(b["start"] == a["end"] for a, b in itertools.pairwise(closed))
    for key in ("trades_ok", "errors{kind=timeout}"):
        want = sum(int(iv["counters"][key]) for s in shards for iv in s)
        assert sum(int(iv["counters"].get(key, 0)) for iv in closed) == want
    want_tag = sum(int(iv["tags"]["sustained"]["counters"]["trades_ok"]) for s in shards for iv in s
                   if "tags" in iv)
    got_tag = sum(int(iv.get("tags", {}).get("sustained", {}).get("counters", {}).get("trades_ok", 0))
                  for iv in closed)
    assert got_tag == want_tag
    n_hist = sum(HdrHistogram.decode(iv["histograms"]["trade_execution"]).get_total_count()
                 for s in shards for iv in s if iv["histograms"])
    got_hist = sum(HdrHistogram.decode(iv["histograms"]["trade_execution"]).get_total_count()
                   for iv in closed if "trade_execution" in iv["histograms"])
    assert got_hist == n_hist


def test_a_bin_waits_for_every_live_shard_and_is_forced_after_the_lag() -> None:
    al = IntervalAligner(2, origin=0.0, width=1.0, max_lag_s=5.0)
    al.add(0, [{"seq": 0, "start": 0.1, "end": 1.1, "histograms": {}, "counters": {"x": 1}},
               {"seq": 1, "start": 1.1, "end": 2.1, "histograms": {}, "counters": {"x": 2}}])
    assert al.close_ready(3.0, [0, 1]) == []  # shard 1 said nothing yet
    al.add(1, [{"seq": 0, "start": 0.6, "end": 1.6, "histograms": {}, "counters": {"x": 10}}])
    first = al.close_ready(3.0, [0, 1])  # bin 0 (shard 0's 0.6 and shard 1's 1.1 midpoints) is complete
    assert [(iv["seq"], iv["counters"]) for iv in first] == [(0, {"x": 1}), (1, {"x": 12})]
    assert al.close_ready(6.9, [0, 1]) == []
    forced = al.close_ready(7.0, [0, 1])  # bin 2 ends at 3.0: forced at 3.0 + 5.0? not yet; bin 1 done
    assert forced == []
    forced = al.close_ready(8.0, [0, 1])
    assert [iv["seq"] for iv in forced] == [2] and al.statistics().forced == 1
    al.add(1, [{"seq": 1, "start": 1.6, "end": 2.6, "histograms": {}, "counters": {"x": 100}}])  # late
    assert al.statistics().late == 1
    assert al.close_ready(8.5, []) == []  # with no shard left, nothing past what one reported closes early
    out = al.close_ready(100.0, [])
    assert sum(iv["counters"].get("x", 0) for iv in out) == 100
    payload = al.payload(1, 100.0, {"in_flight": 3})
    assert payload["seq"] == al.statistics().seq and all(iv["seq"] > 1 for iv in payload["intervals"])


def test_gauges_sum_except_lag_and_rate_limit() -> None:
    got = merge_gauges([{"in_flight": 3, "loop_lag_ms": 1.5, "rpc_limit": 64}, {"in_flight": 4, "loop_lag_ms": 9.0,
                                                                                 "rpc_limit": 16}])
    assert got == {"in_flight": 7.0, "loop_lag_ms": 9.0, "rpc_limit": 16.0}


def _ledger(addr: str, ids: list[int]) -> dict[str, Any]:
    return {"version": 1, "keep_recent": 1000, "opened": len(ids), "in_flight": 0, "evicted": 0,
            "accounts": {addr: {"start_nonce": 0, "mined": len(ids)}},
            "records": [{"id": i, "sender": addr, "nonce": i, "hash": f"0x{i}", "state": "mined_ok"} for i in ids]}


def test_ledgers_merge_as_a_union_with_unique_ids() -> None:
    merged = merge_ledgers([_ledger("0xa", [1, 2, 3]), _ledger("0xb", [1, 2])])
    assert merged["opened"] == 5 and merged["keep_recent"] == 2000 and set(merged["accounts"]) == {"0xa", "0xb"}
    ids = [r["id"] for r in merged["records"]]
    assert len(set(ids)) == 5
    assert {r["shard"] for r in merged["records"] if r["sender"] == "0xb"} == {1}
    counts_only = merge_ledgers([{k: v for k, v in _ledger("0xa", [1]).items() if k != "records"}])
    assert "records" not in counts_only
    with pytest.raises(ValueError, match="shards 0 and 1"):
        merge_ledgers([_ledger("0xa", [1]), _ledger("0xa", [2])])
    with pytest.raises(ValueError, match="shard 1: ledger version 2"):
        merge_ledgers([_ledger("0xa", [1]), {"version": 2}])


def test_drains_merge() -> None:
    got = merge_drains([{"drained": True, "in_flight": 0, "waited_s": 0.2},
                        {"drained": False, "in_flight": 3, "waited_s": 5.0}])
    assert (got["drained"], got["in_flight"], got["waited_s"]) == (False, 3, 5.0)


def test_the_feed_is_split_by_owner_with_each_shards_own_numbering() -> None:
    sp = Splitter({"A": 0, "B": 1}, 2)
    frame = orjson.dumps([{"seq": 0, "pair": "A"}, {"seq": 1, "pair": "B"}, {"seq": 2, "pair": "B"}])
    out = {s: orjson.loads(f) for s, (f, _) in sp.split(frame).items()}
    assert [t["seq"] for t in out[0]] == [0] and [t["seq"] for t in out[1]] == [0, 1]
    # Upstream skipped 3 ticks (seq 3-5): shard 0's stream shows the same gap, so the merged
    # ticks_missed equals a single bot's.
    out = {s: orjson.loads(f) for s, (f, _) in sp.split(orjson.dumps({"seq": 6, "pair": "B"})).items()}
    assert list(out) == [1] and out[1][0]["seq"] == 2
    out = {s: orjson.loads(f) for s, (f, _) in sp.split(orjson.dumps({"seq": 7, "pair": "A"})).items()}
    assert out[0][0]["seq"] == 1 + 3 and sp.gaps == 3
    # What a single bot would count invalid goes to shard 0 untouched.
    assert sp.split(b"not json") == {0: (b"not json", 1)}
    out = {s: orjson.loads(f) for s, (f, _) in sp.split(orjson.dumps([{"seq": 8, "pair": "Z"}, 5])).items()}
    assert list(out) == [0] and out[0][1] == 5 and out[0][0]["pair"] == "Z"
