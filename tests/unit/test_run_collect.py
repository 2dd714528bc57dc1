from __future__ import annotations

from hdrh.histogram import HdrHistogram

from harness.run.collect import merge_intervals, totals


def _hist(*values: int) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values:
        h.record_value(v)
    enc = h.encode()
    return enc.decode() if isinstance(enc, bytes) else enc


def test_bot_and_feed_intervals_merge_by_second_and_keep_histograms_exact() -> None:
    t0 = 1000.0
    bot = [
        {"seq": 1, "start": 999.0, "end": 1000.0, "histograms": {"x": _hist(1)}, "counters": {"trades_ok": 9}},
        {"seq": 2, "start": 1000.0, "end": 1001.0, "histograms": {"x": _hist(100, 200)},
         "counters": {"trades_ok": 2, "trades_reverted": 1, "in_flight_max": 7}},
        {"seq": 3, "start": 1001.0, "end": 1002.0, "histograms": {"x": _hist(300)},
         "counters": {"trades_ok": 1, "trades_failed": 2, "in_flight_max": 3, "tx_accepted": 4}},
    ]
    feed = [{"start": 0.0, "end": 1.0, "sent": 3, "dropped": 0}, {"start": 1.0, "end": 2.0, "sent": 5, "dropped": 1}]
    ivs = merge_intervals(t0, bot, feed, duration_s=3)
    assert [iv["start"] for iv in ivs] == [0.0, 1.0, 2.0]  # the pre-t0 interval is ignored, an empty 3rd second kept
    assert ivs[0]["counters"] == {"ok": 2, "errors": 1, "in_flight_max": 7, "sent": 3, "dropped": 0}
    assert ivs[1]["counters"]["errors"] == 2 and ivs[1]["counters"]["tx_accepted"] == 4
    h = HdrHistogram.decode(ivs[0]["histograms"]["x"])
    assert h.get_total_count() == 2 and h.get_max_value() >= 200
    t = totals(ivs)
    assert t["ok"] == 3 and t["errors"] == 3 and t["sent"] == 8 and t["in_flight_max"] == 7


def test_two_bot_intervals_in_one_second_are_merged_not_overwritten() -> None:
    bot = [
        {"start": 10.0, "end": 10.5, "histograms": {"x": _hist(5)}, "counters": {"trades_ok": 1}},
        {"start": 10.5, "end": 10.9, "histograms": {"x": _hist(7)}, "counters": {"trades_ok": 1}},
    ]
    ivs = merge_intervals(10.0, bot)
    assert len(ivs) == 1 and ivs[0]["counters"]["ok"] == 2
    assert HdrHistogram.decode(ivs[0]["histograms"]["x"]).get_total_count() == 2
