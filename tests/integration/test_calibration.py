"""Machine calibration: real figures against a real anvil leave nothing in its pool; the pure parts hold
for any figures (hypothesis)."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.node.anvil import Anvil, AnvilOptions
from harness.node.jsonrpc import NodeRpc
from harness.node.mining import MiningMode
from harness.probes.calibration import (
    SHIFT_FLOOR,
    Calibration,
    calibrate,
    calibration_shift,
    cpu_reference,
    dev_account,
    node_ceiling,
)
from tests.conftest import AnvilFactory

LAST = 9  # the anvil fixture's ten dev accounts: the last is the one the bot never gets


async def _nonce_and_pool(url: str, address: str) -> tuple[int, int, int]:
    async with NodeRpc(url) as rpc:
        nonce = int(await rpc.call("eth_getTransactionCount", [address, "latest"]), 16)
        pool = await rpc.call("txpool_status")
    return nonce, int(pool["pending"], 16), int(pool["queued"], 16)


@pytest.mark.integration
async def test_calibration_figures_are_real_and_its_transfers_are_all_mined(anvil: Anvil) -> None:
    account = dev_account(LAST)
    before, _, _ = await _nonce_and_pool(anvil.url, account.address)
    # A generous bound on the wait for mining: a loaded machine must not turn into a failed test.
    cal = await calibrate(anvil.url, account, count=300, reps=3, budget_s=30.0)
    for f in fields(Calibration):
        v = getattr(cal, f.name)
        if f.name != "node_mined":
            assert math.isfinite(v) and v >= 0, (f.name, v)
    assert cal.cpu_ref_per_s > 0 and cal.sign_per_s > 0 and cal.node_accept_per_s > 0 and cal.seconds > 0
    assert cal.node_mined
    after, pending, queued = await _nonce_and_pool(anvil.url, account.address)
    assert after - before == 300 * 3
    assert (pending, queued) == (0, 0)
    assert Calibration.from_dict(json.loads(json.dumps(cal.as_dict()))) == cal


@pytest.mark.integration
async def test_node_ceiling_under_interval_mining_accepts_a_hex_key_and_drains(anvil_factory: AnvilFactory) -> None:
    node = await anvil_factory(AnvilOptions(mining=MiningMode.interval(0.05), disable_block_gas_limit=True,
                                            quiet=True, accounts=6))
    from harness.node.keys import DEV_PRIVATE_KEYS

    address = dev_account(5).address
    rate, spread = await node_ceiling(node.url, DEV_PRIVATE_KEYS[5], count=200, reps=2)
    assert rate > 0 and math.isfinite(rate) and 0 <= spread < math.inf
    nonce, pending, queued = await _nonce_and_pool(node.url, address)
    assert nonce == 400 and (pending, queued) == (0, 0)


def test_cpu_reference_needs_two_reps_and_gives_a_rate() -> None:
    rate, spread = cpu_reference(3)
    assert rate > 0 and spread >= 0
    with pytest.raises(ValueError, match="reps must be >= 2"):
        cpu_reference(1)


_rate = st.floats(min_value=1.0, max_value=1e9, allow_nan=False)
_spread = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
calibrations = st.builds(
    Calibration,
    cpu_ref_per_s=_rate, cpu_ref_spread=_spread, sign_per_s=_rate, sign_spread=_spread,
    node_accept_per_s=_rate, node_accept_spread=_spread, node_mined=st.booleans(),
    seconds=st.floats(min_value=0.0, max_value=60.0),
)
FIGURES = {"cpu_ref_per_s": "CPU reference", "sign_per_s": "signing", "node_accept_per_s": "node ceiling"}


@given(calibrations)
def test_as_dict_round_trips_through_json(cal: Calibration) -> None:
    text = json.dumps(cal.as_dict(), allow_nan=False)
    assert Calibration.from_dict(json.loads(text)) == cal


@given(calibrations)
def test_identical_calibrations_agree(cal: Calibration) -> None:
    assert calibration_shift(cal.as_dict(), cal.as_dict()) is None


@settings(max_examples=200)
@given(calibrations, st.sampled_from(sorted(FIGURES)), st.sampled_from([3.0, 1 / 3]))
def test_a_threefold_change_of_any_figure_is_named(cal: Calibration, key: str, factor: float) -> None:
    moved = replace(cal, **{key: getattr(cal, key) * factor})
    for base, head in ((cal, moved), (moved, cal)):
        said = calibration_shift(base.as_dict(), head.as_dict())
        assert said is not None and FIGURES[key] in said
        assert all(name not in said for k, name in FIGURES.items() if k != key)


def test_a_change_within_the_noise_is_not_a_shift_and_the_sentence_says_how_much() -> None:
    base = Calibration(3e7, 0.05, 9000.0, 0.05, 2454.0, 0.4, True, 2.0)
    assert calibration_shift(base.as_dict(), replace(base, node_accept_per_s=3300.0).as_dict()) is None  # x1.34 < 1.4
    assert calibration_shift(base.as_dict(), replace(base, cpu_ref_per_s=3e7 * (1 + SHIFT_FLOOR / 2)).as_dict()) is None
    said = calibration_shift(base.as_dict(), replace(base, node_accept_per_s=6010.0).as_dict())
    assert said == "node ceiling 2,454 -> 6,010 tx/s (x2.45), beyond its noise (±40%)"
    assert calibration_shift(None, base.as_dict()) is None


def test_from_dict_names_a_missing_or_mistyped_figure() -> None:
    d = Calibration(3e7, 0.05, 9000.0, 0.05, 2454.0, 0.4, True, 2.0).as_dict()
    with pytest.raises(ValueError, match="node_accept_per_s"):
        Calibration.from_dict({k: v for k, v in d.items() if k != "node_accept_per_s"})
    with pytest.raises(ValueError, match="node_mined"):
        Calibration.from_dict({**d, "node_mined": 1})
    with pytest.raises(ValueError, match="cpu_ref_per_s"):
        Calibration.from_dict({**d, "cpu_ref_per_s": "fast"})


@pytest.mark.integration
async def test_manual_mining_is_mined_explicitly_and_a_pool_with_others_work_is_never_emptied(
    anvil_factory: AnvilFactory,
) -> None:
    from bot.chain.fees import price
    from bot.chain.tx import TxRequest, build
    from bot.rpc import HttpTransport
    from harness.probes.calibration import _requeue

    node = await anvil_factory(AnvilOptions(mining=MiningMode.manual(), quiet=True))
    ours, theirs = dev_account(LAST), dev_account(3)
    cal = await calibrate(node.url, ours, count=100, reps=2, budget_s=30.0)
    assert cal.node_mined and await _nonce_and_pool(node.url, ours.address) == (200, 0, 0)

    async with HttpTransport(node.url) as rpc:
        raw = theirs.sign(build(31337, 0, TxRequest(to=theirs.address, value=1), price(10**9))).raw
        await rpc.send_raw_transaction(raw)
        assert not await _requeue(rpc, ours.address, [])
    assert await _nonce_and_pool(node.url, theirs.address) == (0, 1, 0)  # still there, unmined
