"""The committed artifacts are what the sources compile to, and the ABIs match docs/DESIGN.md."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.node import compile as solc
from harness.node.abi import contract


def test_artifacts_carry_the_hash_of_the_current_sources() -> None:
    sha = solc.sources_sha256(solc.read_sources())
    committed = solc.load_committed()
    assert set(committed) == {"Token", "Pool", "Deployer"}
    for name, artifact in committed.items():
        assert artifact["sources_sha256"] == sha, f"{name}.json is stale: run scripts/compile_contracts.py"
        assert artifact["solc_version"].startswith("0.8.28")


def test_recompiling_reproduces_the_committed_artifacts() -> None:
    # solcjs takes ~2 s here; a byte-for-byte match proves the artifacts came from these sources.
    assert solc.compile_all() == solc.load_committed()


def test_any_source_edit_changes_the_hash() -> None:
    sources = solc.read_sources()
    edited = dict(sources, **{"Pool.sol": sources["Pool.sol"] + "\n"})
    assert solc.sources_sha256(edited) != solc.sources_sha256(sources)
    assert solc.sources_sha256(sources, {**solc.SETTINGS, "evmVersion": "paris"}) != solc.sources_sha256(sources)


def test_compiler_errors_are_reported_with_their_message() -> None:
    output = {"errors": [{"severity": "error", "formattedMessage": "ParserError: expected ';'"}]}
    with pytest.raises(HarnessError, match="expected ';'"):
        solc.artifacts_from_output(output, "0.8.28", "x")


def test_abis_match_the_design() -> None:
    pool, token = contract("Pool"), contract("Token")
    assert pool.function("getReserves").outputs == ("uint112", "uint112", "uint32")
    assert pool.function("swap").signature == "swap(uint256,bool,uint256,address)"
    assert pool.function("swap").outputs == ("uint256",)
    assert pool.function("addLiquidity").signature == "addLiquidity(uint256,uint256)"
    assert pool.events["Swap"].types == ("address", "uint256", "uint256", "uint256", "uint256", "address")
    assert pool.events["Swap"].indexed == (True, False, False, False, False, True)
    assert pool.events["Sync"].types == ("uint112", "uint112")
    # Uniswap V2's well-known topics: same events, same encoding.
    assert pool.events["Sync"].topic == "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
    assert pool.events["Swap"].topic == "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
    for fn in (
        "name",
        "symbol",
        "decimals",
        "totalSupply",
        "balanceOf",
        "transfer",
        "approve",
        "allowance",
        "transferFrom",
        "mint",
    ):
        token.function(fn)
    assert token.function("approve").selector.hex() == "095ea7b3"
    assert token.function("balanceOf").selector.hex() == "70a08231"


def test_encoding_round_trips_and_bad_calls_name_the_problem() -> None:
    token = contract("Token")
    data = token.encode_call("transfer", "0x" + "11" * 20, 5)
    assert data.startswith("0xa9059cbb") and len(data) == 2 + 8 + 128
    assert token.decode_result("balanceOf", "0x" + "00" * 31 + "07") == (7,)
    with pytest.raises(HarnessError, match="takes 2 arguments"):
        token.encode_call("transfer", 1)
    with pytest.raises(HarnessError, match="no function 'burn'"):
        token.encode_call("burn", 1)
    with pytest.raises(HarnessError, match="known"):
        contract("Nope")


def test_decode_event_splits_indexed_and_data() -> None:
    pool = contract("Pool")
    sender, to = "0x" + "aa" * 20, "0x" + "bb" * 20
    log = {
        "topics": [pool.events["Swap"].topic, "0x" + "00" * 12 + "aa" * 20, "0x" + "00" * 12 + "bb" * 20],
        "data": "0x" + "".join(f"{v:064x}" for v in (1, 0, 0, 2)),
    }
    name, args = pool.decode_event(log)
    assert name == "Swap"
    assert (args["sender"], args["to"]) == (sender, to)
    assert (args["amount0In"], args["amount1In"], args["amount0Out"], args["amount1Out"]) == (1, 0, 0, 2)
