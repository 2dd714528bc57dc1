"""The fault proxy in a run: started in the stack, its injections recorded in the run folder and results.

``start_proxy`` puts a ``FaultProxy`` (``--network``, ``--faults``, ``--fault-schedule``: see
``harness.node.faultnet``) between the bot and the node and streams its log to ``faults.jsonl``.
When the stack closes (the bot already stopped, the proxy not yet) it writes ``faults.json``, the
counts; ``record_faults`` (called by ``finalize``, after the stack) puts them into ``results.json``
as the top-level ``faults`` section and lists the log among the artifacts. The hand-off is a file
because the results writer is born after the stack and the proxy is gone before the verdicts.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from harness.node.faultnet import ProxySetup
from harness.node.faultproxy import FaultProxy
from harness.results.faults import FaultsInjected
from harness.results.writer import ResultsWriter
from harness.run import progress as progress_ui

LOG_NAME = "faults.jsonl"
SUMMARY_NAME = "faults.json"


async def start_proxy(setup: ProxySetup, node_url: str, run_dir: Path, exits: contextlib.AsyncExitStack,
                      ui: progress_ui.Ui) -> FaultProxy:
    proxy = await exits.enter_async_context(
        FaultProxy(node_url, setup.plan, schedule=setup.schedule, log_path=run_dir / LOG_NAME))
    # Registered after the proxy, so it runs before the proxy stops and after everything started later (the bot).
    exits.callback(write_summary, proxy, setup, run_dir)
    schedule = f"; schedule {setup.schedule}" if setup.schedule else ""
    ui.log(f"fault proxy at {proxy.url} (control {proxy.control_url}), network {setup.network}: {setup.plan}{schedule}")
    return proxy


def summary(proxy: FaultProxy, setup: ProxySetup) -> FaultsInjected:
    stats = proxy.statistics()
    return FaultsInjected(network=setup.network, plan=str(setup.plan), injected=dict(stats.injected),
                          faults=setup.faults, schedule=str(setup.schedule), http_requests=stats.http_requests,
                          forwarded=stats.forwarded, ws_connections=stats.ws_connections, log=LOG_NAME,
                          log_entries=proxy.log.total)


def write_summary(proxy: FaultProxy, setup: ProxySetup, run_dir: Path) -> None:
    proxy.log.flush()
    (run_dir / SUMMARY_NAME).write_bytes(orjson.dumps(summary(proxy, setup).to_json(), option=orjson.OPT_INDENT_2))


def record_faults(writer: ResultsWriter) -> FaultsInjected | None:
    """``faults.json`` of the run folder into results.json (nothing when the run used no proxy)."""
    path = writer.run_dir / SUMMARY_NAME
    if not path.exists():
        return None
    faults = FaultsInjected.from_json(orjson.loads(path.read_bytes()))
    writer.set_faults(faults)
    if faults.log and (writer.run_dir / faults.log).exists():
        writer.add_artifact("logs", writer.run_dir / faults.log)
    return faults
