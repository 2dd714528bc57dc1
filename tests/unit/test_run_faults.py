"""Network profiles and the proxy in a run: options, the plans they make, the record in results.json and
the run page."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessError
from harness.node.faultnet import NETWORKS, proxy_setup
from harness.node.faultplan import FaultPlan
from harness.report import write_run_report
from harness.results import Run, schema, validate_results
from harness.results.faults import KINDS, FaultsInjected
from harness.results.writer import ResultsWriter
from harness.run import progress as progress_ui
from harness.run.faultsrun import LOG_NAME, record_faults, start_proxy
from harness.run.options import RunOptions
from tests.unit.fault_upstream import call, start_upstream
from tests.unit.report_data import results


def _profile_pattern() -> re.Pattern[str]:
    return re.compile(schema()["$defs"]["conditions"]["properties"]["network_profile"]["pattern"])


def test_the_profiles_are_the_documented_parameters() -> None:
    assert proxy_setup("loopback") is None
    plans = {name: setup.plan for name in NETWORKS if (setup := proxy_setup(name)) is not None}
    assert plans == {
        "same-region": FaultPlan(latency_ms=1, jitter_ms=0.5),
        "cross-region": FaultPlan(latency_ms=70, jitter_ms=10),
        "flaky": FaultPlan(latency_ms=70, jitter_ms=10, loss_rate=0.01, http_5xx_rate=0.005, outage_every=(60, 2)),
    }
    setup = proxy_setup("cross-region")
    assert setup is not None
    assert setup.network_profile == "cross-region proxy:latency=70ms,jitter=10ms,seed=0"


@pytest.mark.parametrize(("network", "faults", "schedule"), [
    ("loopback", "loss=0.01", None), ("same-region", None, None), ("cross-region", "5xx=0.01", None),
    ("flaky", "loss=0.01", "10s: 429=0.1 | 20s:"), ("loopback", None, "5s: 5xx=1"),
])
def test_recorded_profiles_are_valid_conditions(network: str, faults: str | None, schedule: str | None) -> None:
    setup = proxy_setup(network, faults, schedule)
    assert setup is not None and _profile_pattern().fullmatch(setup.network_profile)
    assert _profile_pattern().fullmatch("loopback")


def test_faults_are_added_on_top_of_the_network() -> None:
    setup = proxy_setup("flaky", "loss=0.02,latency=5ms", "10s: 5xx=0.1 | 20s:")
    assert setup is not None
    assert setup.plan == FaultPlan(latency_ms=75, jitter_ms=10, loss_rate=0.03, http_5xx_rate=0.005,
                                   outage_every=(60, 2))
    flaky = NETWORKS["flaky"]
    assert flaky is not None
    assert setup.schedule.plan_at(10) == flaky.plus(FaultPlan(http_5xx_rate=0.1))
    assert setup.schedule.plan_at(25) == flaky  # "clean" on a schedule is the bare network, never better than it


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"network": "moon"}, "--network: 'moon' is not a profile; give one of loopback, same-region"),
    ({"faults": "loss=2"}, r"--faults: fault plan: loss rate must be in \[0, 1\]"),
    ({"network": "flaky", "faults": "loss=0.99"}, "--faults on top of --network flaky: .*add up to"),
    ({"fault_schedule": "5s: bogus=1"}, r"--fault-schedule: fault schedule: change 1 \(at 5s\)"),
])
def test_bad_options_fail_before_anything_starts(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RunOptions(**kwargs)
    assert isinstance(ConfigError("x"), HarnessError)  # the CLI's exit 3 with the message


def test_run_options_carry_the_setup() -> None:
    assert RunOptions().proxy is None
    setup = RunOptions(network="same-region", faults="wsgarbage=0.01").proxy
    assert setup is not None and setup.plan == FaultPlan(latency_ms=1, jitter_ms=0.5, ws_garbage_rate=0.01)


@given(st.builds(FaultsInjected, network=st.sampled_from(list(NETWORKS)), plan=st.text(max_size=30),
                 injected=st.dictionaries(st.sampled_from(list(KINDS)), st.integers(0, 10**6)),
                 faults=st.none() | st.text(max_size=20), schedule=st.text(max_size=20),
                 http_requests=st.integers(0, 10**9), log=st.none() | st.just(LOG_NAME),
                 log_entries=st.integers(0, 10**9)))
def test_faults_section_round_trips(faults: FaultsInjected) -> None:
    assert FaultsInjected.from_json(orjson.loads(orjson.dumps(faults.to_json()))) == faults


def test_rows_list_what_the_client_saw_in_page_order() -> None:
    f = FaultsInjected("flaky", "loss=0.01", {"plan": 1, "http_5xx": 2, "loss": 3, "odd": 1})
    assert [r[0] for r in f.rows()] == ["loss", "http_5xx", "plan", "odd"]
    assert f.total == 6 and "dropped" in f.rows()[0][2]


async def test_a_run_records_what_the_proxy_injected(tmp_path: Path) -> None:
    node, cleanup = await start_upstream()
    setup = proxy_setup("same-region", "5xx=1")
    assert setup is not None
    try:
        async with contextlib.AsyncExitStack() as exits:
            proxy = await start_proxy(setup, node.url, tmp_path, exits, progress_ui.Ui(enabled=False))
            async with aiohttp.ClientSession() as session:
                for i in range(3):
                    async with session.post(proxy.url, json=call("eth_blockNumber", [], i)) as resp:
                        assert resp.status == 503
    finally:
        await cleanup()
    doc = results()
    writer = ResultsWriter(tmp_path, doc["run_id"], "quick", doc["conditions"])
    faults = record_faults(writer)
    assert faults is not None and faults.injected == {"http_5xx": 3}
    assert (faults.network, faults.plan, faults.faults) == ("same-region", str(setup.plan), "5xx=1")
    assert faults.http_requests == 3 and faults.forwarded == 0 and faults.log_entries == 3
    assert writer.run.faults == faults and LOG_NAME in writer.run.artifacts.to_json()["logs"]
    validate_results(writer.doc, "results.json")
    assert Run.from_json(writer.doc).faults == faults
    assert len((tmp_path / LOG_NAME).read_bytes().splitlines()) == 3


def test_no_proxy_no_section(tmp_path: Path) -> None:
    doc = results()
    writer = ResultsWriter(tmp_path, doc["run_id"], "quick", doc["conditions"])
    assert record_faults(writer) is None and writer.run.faults is None and "faults" not in writer.doc


def test_the_page_states_the_network_and_the_faults(tmp_path: Path) -> None:
    doc = results()
    doc["scenarios"] = doc["scenarios"][:1]
    doc["conditions"]["network_profile"] = "flaky proxy:latency=70ms,jitter=10ms,5xx=0.005,loss=0.01,seed=0"
    doc["faults"] = FaultsInjected("flaky", "latency=70ms,jitter=10ms,5xx=0.005,loss=0.01,seed=0",
                                   {"loss": 12, "http_5xx": 5, "outage_start": 2}, http_requests=1200,
                                   forwarded=1195, log=LOG_NAME, log_entries=19).to_json()
    html = write_run_report(doc, tmp_path / "r").read_text(encoding="utf-8")
    assert 'id="network-profile">flaky proxy:latency=70ms' in html
    table = html[html.index('id="faults-table"'):]
    table = table[: table.index("</table>")]
    assert re.findall(r'data-kind="([a-z_0-9]+)"', table) == ["loss", "http_5xx", "outage_start"]
    assert f'href="{LOG_NAME}"' in html and "1,195 reached the node" in html
    doc.pop("faults")
    html = write_run_report(doc, tmp_path / "plain").read_text(encoding="utf-8")
    assert "faults-table" not in html
