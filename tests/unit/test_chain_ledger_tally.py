"""The ledger's never-evicted per-account tallies and its JSON document (``GET /ledger``)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from bot.chain.ledger import Ledger, NonceFate, TxState
from bot.chain.ledger_view import ledger_document
from bot.chain.tally import NonceRanges
from bot.chain.tx import TxRequest
from harness.run.ledgerdump import ChainFacts, LedgerDump, TxFact
from harness.run.reconcile import reconcile
from tests.unit.chain_fakes import FakeNode
from tests.unit.test_chain_sender import ME, PAY, _stack
from tests.waiting import until


@given(st.lists(st.integers(0, 200), max_size=300))
def test_nonce_ranges_are_the_set_they_were_given(values: list[int]) -> None:
    r = NonceRanges()
    seen: set[int] = set()
    for v in values:
        assert r.add(v) is (v not in seen)
        seen.add(v)
    assert len(r) == len(seen)
    assert {n for lo, hi in r.ranges() for n in range(lo, hi + 1)} == seen
    pairs = r.ranges()
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(pairs))  # disjoint, never adjacent
    assert r.highest == (max(seen) if seen else None)
    assert all(v in r for v in seen) and 201 not in r


def _settle(ledger: Ledger, nonce: int, state: TxState, *, fate: NonceFate | None = None, label: str = "swap") -> None:
    rec = ledger.open("0xA", label, 0)
    rec.nonce, rec.hash = nonce, f"0x{nonce:064x}"
    rec.candidates.append(rec.hash)
    rec.nonce_fate = fate
    ledger.transition(rec, TxState.SIGNED, 1)
    ledger.transition(rec, TxState.SUBMITTED, 2)
    ledger.transition(rec, state, 3)


def test_tallies_outlive_the_ring_and_the_document_says_what_it_holds() -> None:
    ledger = Ledger(keep_recent=2)
    for n in range(5):
        _settle(ledger, n, TxState.MINED_OK, fate=NonceFate.CONFIRMED)
    _settle(ledger, 5, TxState.FAILED, fate=NonceFate.HELD)  # may land
    _settle(ledger, 6, TxState.DROPPED, fate=NonceFate.RELEASED)
    _settle(ledger, 6, TxState.MINED_OK, fate=NonceFate.CONFIRMED, label="nonce_filler")
    _settle(ledger, 6, TxState.MINED_OK, fate=NonceFate.CONFIRMED)  # a ledger bug: a nonce mined twice
    live = ledger.open("0xA", "swap", 9)
    doc = ledger_document(ledger, {"0xA": 0})
    assert (doc["opened"], doc["in_flight"], doc["evicted"]) == (10, 1, 7)
    assert [r["id"] for r in doc["records"]] == [live.id, 8, 9]  # live first, then the ring
    acct = doc["accounts"]["0xA"]
    assert acct["start_nonce"] == 0 and acct["mined"] == 7 and acct["fillers"] == 1
    assert acct["mined_nonces"] == [[0, 4], [6, 6]] and acct["highest_confirmed"] == 6
    assert (acct["may_land"], acct["may_land_nonces"]) == (1, [[5, 5]])
    assert (acct["doubled"], acct["doubled_nonces"]) == (1, [6])
    assert "records" not in ledger_document(ledger, {}, records=False)
    assert ledger_document(ledger, {})["accounts"]["0xA"]["start_nonce"] is None


def _facts(node: FakeNode, dump: LedgerDump) -> ChainFacts:
    txs: dict[str, TxFact | None] = {}
    for r in dump.records:
        for h in r.hashes:
            if h in node.mined:
                tx, block, status = node.mined[h]
                txs[h] = TxFact(h, tx.sender, tx.nonce, block, status)
            elif h in node.pool:
                txs[h] = TxFact(h, node.pool[h].sender, node.pool[h].nonce, None)
            else:
                txs[h] = None
    return ChainFacts(txs, {a: node.nonces.get(a.lower(), 0) for a in dump.accounts})


async def test_a_senders_ledger_with_a_drop_a_filler_and_a_late_landing_reconciles() -> None:
    # The bot's own dump, reconciled against the in-memory chain: a dropped transaction whose hole a
    # filler took, a revert, and one that ended failed "still pending" and then landed.
    s = await _stack(FakeNode(), max_pending_wait=0.3, confirm_timeout=0.1, pending_grace=0.1)
    try:
        recs = [await s.sender.submit(ME, PAY) for _ in range(3)]
        s.node.drop(recs[0].hash or "")
        s.start_mining()
        assert [(await s.sender.wait(r)).state for r in recs] == [TxState.DROPPED, TxState.MINED_OK, TxState.MINED_OK]
        assert (await s.sender.execute(ME, TxRequest(to=ME, data=b"\xde\xad", gas=100_000))).state is TxState.REVERTED
        await s.stop_mining()
        late = await s.sender.execute(ME, PAY)  # nobody mines: failed, nonce held
        assert late.state is TxState.FAILED and late.nonce_fate is NonceFate.HELD
        s.start_mining()
        assert await s.sender.drain(5.0)
        await until(lambda: late.hash in s.node.mined, what="the late transaction mined")
        start = s.nonces.start_nonces()
        dump = LedgerDump.from_json(ledger_document(s.sender.ledger, start))
        out = reconcile(dump, _facts(s.node, dump), session=1)
        c = out.check.counts
        assert (c.lost, c.doubled, c.unexplained, c.not_terminal) == (0, 0, 0, 0), out.discrepancies
        assert c.explained_late == 1 and c.mined_confirmed == 4  # 2 trades, the revert, the filler
        assert [d.kind for d in out.discrepancies] == ["late"]
        (bal,) = out.accounts
        assert bal.balanced and (bal.chain_txs, bal.mined, bal.fillers, bal.late) == (5, 4, 1, 1)
    finally:
        await s.stop_mining()
        await s.sender.aclose()
        await s.tracker.aclose()
