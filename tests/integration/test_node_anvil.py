"""The real anvil: starts on a free loopback port, each mining mode mines as configured, stops with no orphan."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError, HarnessError
from harness.node.anvil import ANVIL_ENV, Anvil, AnvilOptions
from harness.node.endpoint import ExternalNode, NodeConfig, start_node
from harness.node.jsonrpc import NodeRpc
from harness.node.mining import MiningMode
from tests.conftest import AnvilFactory
from tests.waiting import value

pytestmark = pytest.mark.integration


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


async def _block_number(url: str) -> int:
    async with NodeRpc(url) as rpc:
        return int(await rpc.call("eth_blockNumber"), 16)


async def _send_transfer(url: str) -> str:
    async with NodeRpc(url) as rpc:
        accounts = await rpc.call("eth_accounts")
        tx_hash: str = await rpc.call("eth_sendTransaction", [{"from": accounts[0], "to": accounts[1], "value": "0x1"}])
        return tx_hash


async def test_start_answers_and_stop_leaves_no_process(tmp_path: Path) -> None:
    node = Anvil(tmp_path)
    async with node:
        assert node.running
        assert node.url.startswith("http://127.0.0.1:")
        assert node.ws_url == node.url.replace("http://", "ws://")
        assert node.version.startswith("anvil/")
        assert node.chain_id == 31337
        assert node.mining == "automine"
        assert f"pid={node.pid}" in repr(node)
        pid = node.pid
        assert pid is not None
        assert os.readlink(f"/proc/{pid}/exe").endswith("/anvil")  # the binary, not the node wrapper
        assert await _block_number(node.url) == 0
    assert _pid_gone(pid)
    assert not node.running
    assert node.log_path is not None and node.log_path.parent == tmp_path
    assert "Listening on" in node.log_path.read_text()


async def test_anvil_fixture_is_automine(anvil: Anvil) -> None:
    await _send_transfer(anvil.url)
    # automine mines the transaction into its own block, but the send can answer a moment before
    # the block is visible to eth_blockNumber: wait for it (bounded) rather than race it
    deadline = time.monotonic() + 5
    while await _block_number(anvil.url) < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert await _block_number(anvil.url) == 1


async def test_interval_mining_makes_blocks_on_its_own(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.interval(0.05)))
    assert node.mining == "interval:0.05s"
    deadline = time.monotonic() + 10
    while await _block_number(node.url) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await _block_number(node.url) >= 3


async def test_manual_mining_waits_for_evm_mine(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.manual()))
    tx = await _send_transfer(node.url)
    async with NodeRpc(node.url) as rpc:
        assert await rpc.call("eth_getTransactionReceipt", [tx]) is None
        assert int(await rpc.call("eth_blockNumber"), 16) == 0
        await rpc.call("evm_mine")
        receipt = await rpc.call("eth_getTransactionReceipt", [tx])
    assert receipt is not None and receipt["status"] == "0x1"


async def test_options_reach_anvil(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(chain_id=1337, accounts=3, gas_limit=100_000_000, quiet=True))
    async with NodeRpc(node.url) as rpc:
        assert int(await rpc.call("eth_chainId"), 16) == 1337
        assert len(await rpc.call("eth_accounts")) == 3
        block = await rpc.call("eth_getBlockByNumber", ["latest", False])
    assert int(block["gasLimit"], 16) == 100_000_000
    assert node.log_path is not None and "Listening on" not in node.log_path.read_text()


async def test_several_anvils_run_side_by_side(anvil_factory: AnvilFactory) -> None:
    nodes = await asyncio.gather(*(anvil_factory() for _ in range(3)))
    assert len({n.port for n in nodes}) == 3
    assert len({n.log_path for n in nodes}) == 3


async def test_a_bad_flag_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    node = Anvil(tmp_path, AnvilOptions(extra_args=("--no-such-flag",)))
    with pytest.raises(HarnessError, match="exited with code") as info:
        await node.start()
    assert "no-such-flag" in str(info.value)
    assert not node.running


def test_missing_binary_names_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ANVIL_ENV, str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=ANVIL_ENV):
        asyncio.run(Anvil(tmp_path).start())


def test_anvil_dies_when_the_harness_is_killed(tmp_path: Path) -> None:
    script = (
        "import asyncio, sys, time\n"
        "from harness.node.anvil import Anvil\n"
        "async def main():\n"
        f"    node = Anvil({str(tmp_path)!r})\n"
        "    await node.start()\n"
        "    print(node.pid, flush=True)\n"
        "    time.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert harness.stdout is not None
        pid = int(harness.stdout.readline())
        assert not _pid_gone(pid)
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _pid_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _pid_gone(pid), f"anvil {pid} outlived the killed harness"
    finally:
        if harness.poll() is None:
            harness.kill()


async def test_external_node_reads_facts_from_the_endpoint(anvil: Anvil) -> None:
    async with start_node(NodeConfig(url=anvil.url)) as node:
        assert isinstance(node, ExternalNode)
        assert (node.kind, node.chain_id, node.version, node.pid) == ("endpoint", 31337, anvil.version, None)
        assert node.ws_url == anvil.ws_url
        assert node.mining == "unknown"


async def test_external_node_that_does_not_answer_is_a_clear_error() -> None:
    with pytest.raises(HarnessError, match="does not answer eth_chainId"):
        async with ExternalNode("http://127.0.0.1:9", timeout_s=2.0):
            pass
    with pytest.raises(ConfigError, match="http"):
        ExternalNode("localhost:8545")


async def test_start_node_runs_anvil_by_default(tmp_path: Path) -> None:
    async with start_node(NodeConfig(run_dir=tmp_path, anvil=AnvilOptions(mining=MiningMode.manual()))) as node:
        assert isinstance(node, Anvil)
        assert node.mining == "manual"
        pid = node.pid
    assert pid is not None and _pid_gone(pid)


async def test_quiet_mode_retries_when_its_port_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import harness.node.anvil as anvil_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real = anvil_module._free_port
    monkeypatch.setattr(anvil_module, "_free_port", lambda: next(ports, None) or real())
    try:
        async with Anvil(tmp_path, AnvilOptions(quiet=True)) as node:
            assert node.port != taken.getsockname()[1]
            assert await _block_number(node.url) == 0
            assert node.log_path is not None and "in use" in node.log_path.read_text()
    finally:
        taken.close()


def _default_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_anvil_through_the_context_manager(tmp_path: Path) -> None:
    script = (
        "import asyncio\n"
        "from harness.node.anvil import Anvil\n"
        "async def main():\n"
        f"    async with Anvil({str(tmp_path)!r}) as node:\n"
        "        print(node.pid, flush=True)\n"
        "        try:\n"
        "            await asyncio.sleep(60)\n"
        "        finally:\n"
        "            print('cleanup', flush=True)\n"
        "asyncio.run(main())\n"
    )
    # A background job of a non-interactive shell (CI's runner may be one) inherits SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: the child gets the terminal's default, as Ctrl-C does.
    harness = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=Path(__file__).parents[2], preexec_fn=_default_sigint,
    )
    try:
        assert harness.stdout is not None
        pid = int(harness.stdout.readline())
        harness.send_signal(signal.SIGINT)
        assert harness.stdout.readline().strip() == b"cleanup"
        harness.wait(timeout=15)
        assert _pid_gone(pid)
    finally:
        if harness.poll() is None:
            harness.kill()


async def _states_on_disk_after_mining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       history_states: int | None, blocks: int) -> list[Path]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # anvil writes its overflow states under ~/.foundry
    async with Anvil(tmp_path, AnvilOptions(history_states=history_states, quiet=True)) as node:
        async with NodeRpc(node.url) as rpc:
            # Automine: a block per transfer, each a state that differs from the last.
            sender = (await rpc.call("eth_accounts"))[0]
            for _ in range(blocks):
                await rpc.call("eth_sendTransaction", [{"from": sender, "to": "0x" + "11" * 20, "value": "0x1"}])
        return [p for p in (home / ".foundry").rglob("*") if p.is_file()] if (home / ".foundry").exists() else []


async def test_old_block_states_are_not_written_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A day of runs once filled the disk with ~/.foundry/anvil/tmp/anvil-state-*: anvil persists
    # every state past its in-memory window and never deletes them. 600 blocks spill with
    # anvil's default (the control: the check can see a spill), and none may with ours.
    (tmp_path / "full").mkdir()
    (tmp_path / "pruned").mkdir()
    assert await _states_on_disk_after_mining(tmp_path / "full", monkeypatch, None, 600) != []
    ours = AnvilOptions().history_states
    assert await _states_on_disk_after_mining(tmp_path / "pruned", monkeypatch, ours, 600) == []


def test_full_history_is_anvils_default_and_opt_in() -> None:
    # None is the documented way back to anvil's own behaviour; the flag must then be absent.
    assert "--prune-history" not in AnvilOptions(history_states=None).argv(Path("anvil"), 1)
    assert AnvilOptions().argv(Path("anvil"), 1)[-2:] == ["--prune-history", "500"]
    assert AnvilOptions(history_states=0).argv(Path("anvil"), 1)[-1] == "--prune-history"  # bare: none kept
    with pytest.raises(ConfigError, match="history_states"):
        AnvilOptions(history_states=-1)


async def test_a_node_keeping_no_past_states_still_reverts_and_serves_receipts(tmp_path: Path) -> None:
    # What a soak's node (history_states=0) must still do for the harness: revert to a snapshot,
    # and answer receipts and blocks of long-confirmed trades (the ledger check reads them at the end).
    async with Anvil(tmp_path, AnvilOptions(history_states=0, quiet=True)) as node, NodeRpc(node.url) as rpc:
        sender = (await rpc.call("eth_accounts"))[0]

        async def mined(tx: str) -> int:
            # automine answers the send before its block is sealed: wait for the receipt (bounded)
            receipt = await value(lambda: rpc.call("eth_getTransactionReceipt", [tx]), what=f"receipt of {tx}")
            assert receipt["status"] == "0x1"
            return int(receipt["blockNumber"], 16)

        first = await rpc.call("eth_sendTransaction", [{"from": sender, "to": "0x" + "11" * 20, "value": "0x1"}])
        at_snapshot = await mined(first)
        snap = await rpc.call("evm_snapshot")
        last = ""
        for _ in range(20):
            last = await rpc.call("eth_sendTransaction", [{"from": sender, "to": "0x" + "22" * 20, "value": "0x1"}])
        assert await mined(last) == at_snapshot + 20
        assert await mined(first) == at_snapshot  # a receipt 20 blocks old, with no past states kept
        assert await rpc.call("evm_revert", [snap]) is True
        assert int(await rpc.call("eth_blockNumber"), 16) == at_snapshot
        assert await mined(first) == at_snapshot
