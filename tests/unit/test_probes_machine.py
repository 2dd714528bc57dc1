from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from harness.probes.machine import parse_stat, read_cpu_times

LINE = "cpu  360724 169 39301 431457 3159 0 5909 10634 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n"


def test_the_aggregate_line_is_read() -> None:
    t = parse_stat(LINE)
    assert t.steal == 10634 and t.busy == 360724 + 169 + 39301 + 0 + 5909
    assert t.total == t.busy + 431457 + 3159 + 10634


@given(st.lists(st.integers(0, 10_000), min_size=8, max_size=8), st.lists(st.integers(0, 10_000), min_size=8,
                                                                         max_size=8))
def test_shares_are_percentages_of_the_elapsed_time(a: list[int], d: list[int]) -> None:
    before = parse_stat("cpu " + " ".join(map(str, a)))
    after = parse_stat("cpu " + " ".join(str(x + y) for x, y in zip(a, d, strict=True)))
    s = after.since(before)
    assert 0.0 <= s["steal_percent"] <= 100.0 and 0.0 <= s["busy_percent"] <= 100.0
    assert s["steal_percent"] + s["busy_percent"] <= 100.01


def test_this_machine_reports_its_times() -> None:
    t = read_cpu_times()
    assert t is not None and t.total > 0


def _doc(steal: float | None) -> dict[str, object]:
    summary = {} if steal is None else {"machine": {"steal_percent": steal, "busy_percent": 40.0}}
    return {"scenarios": [{"id": "sustained", "summary": summary}]}


def test_runs_whose_host_took_different_cpu_are_different_machines() -> None:
    from harness.probes.machine import steal_shift

    assert steal_shift(_doc(6.0), _doc(7.5)) is None
    assert "23%" in (steal_shift(_doc(6.0), _doc(23.0)) or "")
    assert steal_shift(_doc(12.0), _doc(12.0)) is not None  # both stolen from: neither measures the code
    assert steal_shift(_doc(None), _doc(23.0)) is None  # not recorded: nothing to say


def test_a_fail_under_heavy_steal_is_inconclusive_and_a_pass_stands() -> None:
    from harness.slo.judge import judge_run
    from harness.slo.spec import load_default
    from harness.slo.synth import Synth, synth_results

    doc = synth_results(Synth(seed=3, slowdown=30.0, scenarios=("sustained",), sustained_s=20))
    calm = {(v["row"], v["stat"]): v["verdict"] for v in judge_run(doc, load_default(), n_boot=200)}
    assert "fail" in {calm[("trade_execution", s)] for s in ("mean", "p95", "p99")}
    for scn in doc["scenarios"]:
        scn["summary"]["machine"] = {"steal_percent": 25.0, "busy_percent": 60.0}
    stolen = {(v["row"], v["stat"]): v for v in judge_run(doc, load_default(), n_boot=200)}
    for key, verdict in calm.items():
        v = stolen[key]
        if verdict == "fail" and v["table"] in ("latency", "throughput"):
            assert v["verdict"] == "inconclusive" and "steal" in v["note"]
        elif verdict == "pass":
            assert v["verdict"] == "pass"


@given(st.lists(st.integers(0, 10_000), min_size=8, max_size=8), st.lists(st.integers(0, 10_000), min_size=8,
                                                                         max_size=8), st.floats(0, 20_000))
def test_other_processes_get_the_busy_time_that_is_not_ours(a: list[int], d: list[int], own: float) -> None:
    before = parse_stat("cpu " + " ".join(map(str, a)))
    after = parse_stat("cpu " + " ".join(str(x + y) for x, y in zip(a, d, strict=True)))
    s = after.since(before, own)
    assert 0.0 <= s["other_percent"] <= s["busy_percent"] + 0.01
    if after.total > before.total:
        busy = after.busy - before.busy
        expect = 100.0 * max(0.0, busy - own) / (after.total - before.total)
        assert abs(s["other_percent"] - expect) <= 0.01


def test_our_process_tree_cpu_counts_a_reaped_child() -> None:
    import subprocess
    import sys

    from harness.probes.machine import own_cpu_seconds

    before = own_cpu_seconds()
    # A child that burns CPU and exits: its time must stay in our tree's total once it is reaped.
    subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.3: pass"],
                   check=True)
    after = own_cpu_seconds()
    assert before is not None and after is not None
    assert after - before >= 0.25


def _busy_doc(other: float | None, steal: float = 1.0) -> dict[str, object]:
    machine: dict[str, float] = {"steal_percent": steal, "busy_percent": 60.0}
    if other is not None:
        machine["other_percent"] = other
    return {"scenarios": [{"id": "stress", "summary": {"machine": machine}}]}


def test_a_machine_busy_with_other_processes_is_named() -> None:
    from harness.probes.machine import busy_machine, steal_shift

    assert busy_machine(_busy_doc(2.0), ["stress"]) is None
    assert "other processes" in (busy_machine(_busy_doc(35.0), ["stress"]) or "")
    assert "steal" in (busy_machine(_busy_doc(2.0, steal=25.0), ["stress"]) or "")
    assert busy_machine(_busy_doc(None), ["stress"]) is None  # older runs: not recorded
    assert steal_shift(_busy_doc(2.0), _busy_doc(35.0), "stress") is not None
    assert steal_shift(_busy_doc(2.0), _busy_doc(3.0), "stress") is None


def test_a_fail_while_other_processes_took_the_cpu_is_inconclusive() -> None:
    from harness.slo.judge import judge_run
    from harness.slo.spec import load_default
    from harness.slo.synth import Synth, synth_results

    doc = synth_results(Synth(seed=3, slowdown=30.0, scenarios=("sustained",), sustained_s=20))
    for scn in doc["scenarios"]:
        scn["summary"]["machine"] = {"steal_percent": 0.5, "busy_percent": 90.0, "other_percent": 40.0}
    verdicts = judge_run(doc, load_default(), n_boot=200)
    latency = [v for v in verdicts if v["row"] == "trade_execution"]
    assert latency and all(v["verdict"] != "fail" for v in latency)
    assert any("other processes" in v["note"] for v in latency)


def test_a_throughput_fail_that_no_cpu_credit_could_rescue_stands() -> None:
    from harness.slo.judge import _not_the_bots

    doc = {"scenarios": [{"id": "stress", "summary": {"machine": {"steal_percent": 0.0, "other_percent": 22.0}}}]}
    far = {"row": "transactions_per_sec", "table": "throughput", "scenario": "stress", "verdict": "fail",
           "value": 200.0, "ci": [111.0, 360.0], "threshold": {"op": ">=", "value": 500.0}, "note": "x"}
    kept = _not_the_bots(far, doc)
    assert kept["verdict"] == "fail" and "crediting the 22%" in kept["note"]
    near = {**far, "ci": [300.0, 450.0]}  # 450 / 0.78 = 577 >= 500: the machine may have cost it the pass
    assert _not_the_bots(near, doc)["verdict"] == "inconclusive"
    latency = {**far, "table": "latency", "threshold": {"op": "<", "value": 10.0}, "value": 80.0, "ci": [70.0, 90.0]}
    assert _not_the_bots(latency, doc)["verdict"] == "inconclusive"  # no credit for queueing


def test_a_fail_under_memray_is_inconclusive_and_a_leak_is_still_judged() -> None:
    from harness.slo.judge import _not_under_memray

    rss = {"row": "memory_rss", "table": "resources", "scenario": "soak", "verdict": "fail", "value": 300.0,
           "threshold": {"op": "<", "value": 256.0}, "note": "peak"}
    leak = {**rss, "row": "memory_leak", "note": "leak detector: leak"}
    plain: dict[str, object] = {"conditions": {}}
    traced = {"conditions": {"instrumented": {"memray": True}}}
    older = {"conditions": {}, "x_memray": {"top": []}}  # written before the condition existed
    assert _not_under_memray(rss, plain)["verdict"] == "fail"
    for doc in (traced, older):
        judged = _not_under_memray(rss, doc)
        assert judged["verdict"] == "inconclusive" and "--no-memray" in judged["note"] and "peak" in judged["note"]
        assert _not_under_memray(leak, doc)["verdict"] == "fail"  # growth is not memray's: judged as without it
        assert _not_under_memray({**rss, "verdict": "pass"}, doc)["verdict"] == "pass"
