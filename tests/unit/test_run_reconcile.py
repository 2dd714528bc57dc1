"""The ledger reconciled against the chain: planted lost / doubled / late / non-terminal cases are found,
a clean ledger is clean; the chain facts are bounded; the section, its row and its page."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.results.ledger import AccountBalance, Discrepancy, LedgerCounts, LedgerReconciliation, SessionCheck
from harness.results.model import Run
from harness.results.validate import validate_results
from harness.run import nonceset
from harness.run.chainfacts import FactLimits, choose, gather
from harness.run.ledgerdump import ChainFacts, DumpAccount, DumpRecord, LedgerDump, TxFact
from harness.run.reconcile import reconcile
from harness.slo.judge import judge_run
from harness.slo.spec import load_default

# -- a generated world: what each intent did, the ledger the bot would report, the chain it left ---------

OUTCOMES = ("mined_ok", "reverted", "dropped", "rejected", "failed_released", "failed_absent", "failed_landed")
_hashes = (f"0x{i:064x}" for i in itertools.count(1))


@dataclass
class Intent:
    outcome: str
    nonce: int
    hash: str
    evicted: bool

    @property
    def on_chain(self) -> bool:
        return self.outcome in ("mined_ok", "reverted", "failed_landed")

    def record(self, rid: int, sender: str) -> DumpRecord:
        state = self.outcome.split("_")[0] if self.outcome.startswith("failed") else self.outcome
        fate = {"failed_released": "released", "dropped": "released", "rejected": "released",
                "failed_absent": "held", "failed_landed": "held"}.get(self.outcome, "confirmed")
        return DumpRecord(rid, sender, self.nonce, self.hash, (self.hash,), state, "swap", None, fate)


@dataclass
class World:
    accounts: dict[str, tuple[int, list[Intent]]]  # address -> (start nonce, intents)
    extra_records: list[DumpRecord] = field(default_factory=list)
    extra_txs: dict[str, TxFact | None] = field(default_factory=dict)
    count_delta: dict[str, int] = field(default_factory=dict)
    doubled: dict[str, list[int]] = field(default_factory=dict)

    def dump(self) -> LedgerDump:
        records, accounts, rid = [], {}, 0
        for addr, (start, intents) in self.accounts.items():
            mined = [i.nonce for i in intents if i.outcome in ("mined_ok", "reverted")]
            may = [i.nonce for i in intents if i.outcome in ("failed_absent", "failed_landed")]
            dbl = self.doubled.get(addr, [])
            accounts[addr] = DumpAccount(addr, start, len(mined) + len(dbl), 0, tuple(nonceset.of(mined)), len(may),
                                         tuple(nonceset.of(may)), len(dbl), tuple(dbl))
            for i in intents:
                rid += 1
                if not i.evicted:
                    records.append(i.record(rid, addr))
        records += self.extra_records
        live = sum(1 for r in records if not r.terminal)
        return LedgerDump(rid + len(self.extra_records), live, sum(i.evicted for _, ii in self.accounts.values()
                                                                   for i in ii), tuple(records), accounts)

    def facts(self) -> ChainFacts:
        txs: dict[str, TxFact | None] = {}
        counts = {}
        for addr, (start, intents) in self.accounts.items():
            for i in intents:
                status = 0 if i.outcome == "reverted" else 1
                txs[i.hash] = TxFact(i.hash, addr, i.nonce, 100 + i.nonce, status) if i.on_chain else None
            counts[addr] = start + sum(i.on_chain for i in intents) + self.count_delta.get(addr, 0)
        txs.update(self.extra_txs)
        return ChainFacts(txs, counts)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    accounts = {}
    for a in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, 40))
        cur, intents = start, list[Intent]()
        for outcome in draw(st.lists(st.sampled_from(OUTCOMES), max_size=25)):
            evicted = draw(st.booleans())
            # Held and never landed: the chain never reaches its nonce. Else the next nonce (a released
            # one is reused by the next intent).
            nonce = 10_000 + len(intents) if outcome == "failed_absent" else cur
            intents.append(Intent(outcome, nonce, next(_hashes), evicted))
            if outcome in ("mined_ok", "reverted", "failed_landed"):
                cur += 1
        accounts[f"0x{a + 1:040x}"] = (start, intents)
    return World(accounts)


def _run(w: World) -> tuple[LedgerCounts, list[Discrepancy], tuple[AccountBalance, ...]]:
    out = reconcile(w.dump(), w.facts(), session=1)
    assert out.check.reconciled, out.check.note
    return out.check.counts, list(out.discrepancies), out.accounts


def _kinds(ds: list[Discrepancy]) -> set[str]:
    return {d.kind for d in ds}


@given(worlds())
def test_a_clean_ledger_is_clean(w: World) -> None:
    c, ds, balances = _run(w)
    assert (c.lost, c.doubled, c.unexplained, c.not_terminal) == (0, 0, 0, 0), ds
    intents = [i for _, ii in w.accounts.values() for i in ii]
    assert c.explained_late == sum(i.outcome == "failed_landed" for i in intents)
    assert c.mined_confirmed == sum(i.outcome in ("mined_ok", "reverted") for i in intents)
    assert c.reported == len(intents) and c.checked == sum(not i.evicted for i in intents)
    assert _kinds(ds) <= {"late"} and all(b.balanced for b in balances)


def _pick(w: World, data: st.DataObject, want: Callable[[Intent], bool]) -> tuple[str, Intent]:
    found = [(a, i) for a, (_, ii) in w.accounts.items() for i in ii if want(i)]
    if not found:
        a, (start, intents) = next(iter(w.accounts.items()))
        cur = start + sum(i.on_chain for i in intents)  # above every landed nonce
        intents.append(Intent("mined_ok", cur, next(_hashes), False))
        return a, intents[-1]
    return data.draw(st.sampled_from(found))


@given(worlds(), st.data())
def test_a_mined_record_missing_from_the_chain_is_lost(w: World, data: st.DataObject) -> None:
    _, victim = _pick(w, data, lambda i: i.outcome == "mined_ok" and not i.evicted)
    w.extra_txs[victim.hash] = None  # the node never heard of it
    c, ds, _ = _run(w)
    assert c.lost >= 1 and any(d.kind == "lost" and victim.hash in d.hashes for d in ds)


@given(worlds(), st.data())
def test_a_mined_nonce_the_chain_never_reached_is_lost_even_after_eviction(w: World, data: st.DataObject) -> None:
    addr, top = _pick(w, data, lambda i: False)  # a fresh mined intent on top of the account
    top.evicted = data.draw(st.booleans())
    w.extra_txs[top.hash] = None
    w.count_delta[addr] = -1  # the chain holds one transaction fewer than the ledger says
    c, ds, balances = _run(w)
    assert c.lost == 1 and c.doubled == 0, ds
    assert any(d.kind == "lost" and d.nonce == top.nonce for d in ds)
    assert not next(b for b in balances if b.account == addr).balanced


@given(worlds(), st.data())
def test_an_unknown_transaction_of_the_account_is_doubled(w: World, data: st.DataObject) -> None:
    addr = data.draw(st.sampled_from(sorted(w.accounts)))
    w.count_delta[addr] = data.draw(st.integers(1, 3))
    c, ds, _ = _run(w)
    assert c.doubled == w.count_delta[addr] and c.lost == 0
    assert any(d.kind == "doubled" and d.account == addr for d in ds)


@given(worlds(), st.data())
def test_two_records_claiming_one_nonce_are_doubled(w: World, data: st.DataObject) -> None:
    addr = data.draw(st.sampled_from(sorted(w.accounts)))
    w.doubled[addr] = [data.draw(st.integers(0, 50))]
    c, ds, _ = _run(w)
    assert c.doubled == 1 and any(d.kind == "doubled" and d.nonce == w.doubled[addr][0] for d in ds)


@given(worlds(), st.sampled_from(["dropped", "rejected", "failed_released"]), st.booleans())
def test_a_transaction_reported_gone_that_landed_is_unexplained(w: World, outcome: str, evicted: bool) -> None:
    addr, (start, intents) = next(iter(w.accounts.items()))
    nonce = start + sum(i.on_chain for i in intents)
    ghost = Intent(outcome, nonce, next(_hashes), evicted)
    intents.append(ghost)
    w.extra_txs[ghost.hash] = TxFact(ghost.hash, addr, nonce, 999, 1)
    w.count_delta[addr] = 1  # it took its nonce on chain
    c, ds, _ = _run(w)
    if evicted:  # only the tallies remember it, and they say the nonce was released: unaccounted for
        assert c.doubled == 1 and c.unexplained == 0
    else:
        assert c.unexplained == 1 and c.doubled == 0
        assert any(d.kind == "unexplained" and ghost.hash in d.hashes for d in ds)


@given(worlds())
def test_a_held_record_that_landed_late_is_an_explained_finding(w: World) -> None:
    start, intents = next(iter(w.accounts.values()))
    late = Intent("failed_landed", start + sum(i.on_chain for i in intents), next(_hashes), False)
    intents.append(late)
    c, ds, _ = _run(w)
    assert c.problems == 0 and c.explained_late >= 1
    assert any(d.kind == "late" and late.hash in d.hashes for d in ds)


@given(worlds(), st.sampled_from(["created", "signed", "submitted", "unacked"]))
def test_an_intent_still_live_is_found(w: World, state: str) -> None:
    addr = next(iter(w.accounts))
    w.extra_records.append(DumpRecord(10**6, addr, None if state == "created" else 20_000, None if state == "created"
                                      else "0x" + "ee" * 32, () if state == "created" else ("0x" + "ee" * 32,), state))
    w.extra_txs["0x" + "ee" * 32] = None
    c, ds, _ = _run(w)
    assert c.not_terminal == 1 and any(d.kind == "not_terminal" and d.state == state for d in ds)


def test_a_wrong_receipt_status_or_nonce_is_unexplained() -> None:
    w = World({"0xaa": (0, [Intent("mined_ok", 0, "0x01", False), Intent("reverted", 1, "0x02", False)])})
    facts = w.facts()
    bad = ChainFacts({"0x01": TxFact("0x01", "0xaa", 0, 5, 0), "0x02": TxFact("0x02", "0xaa", 3, 5, 0)}, facts.counts)
    out = reconcile(w.dump(), bad, session=2)
    assert out.check.counts.unexplained == 2 and out.check.counts.mined_confirmed == 0
    details = " ".join(d.detail for d in out.discrepancies)
    assert "receipt status 0" in details and "nonce 3 on chain" in details
    assert {d.session for d in out.discrepancies} == {2}


def test_an_account_without_a_count_leaves_the_session_unreconciled() -> None:
    w = World({"0xaa": (0, [Intent("mined_ok", 0, "0x01", False)])})
    out = reconcile(w.dump(), replace(w.facts(), counts={}), session=1)
    assert not out.check.reconciled and "no transaction count" in out.check.note


def test_unchecked_hashes_are_counted_not_judged() -> None:
    w = World({"0xaa": (0, [Intent("mined_ok", 0, "0x01", False), Intent("mined_ok", 1, "0x02", False)])})
    facts = w.facts()
    out = reconcile(w.dump(), replace(facts, txs={"0x01": facts.txs["0x01"]}, sampled=True), session=1)
    c = out.check.counts
    assert (c.checked, c.unchecked, c.mined_confirmed, c.problems) == (1, 1, 2, 0) and out.check.sampled


@pytest.mark.parametrize(("doc", "field"), [
    ({"version": 2}, "ledger.version"),
    ({"version": 1, "opened": 1, "in_flight": 0, "evicted": 0, "accounts": []}, "ledger.accounts"),
    ({"version": 1, "opened": "1", "in_flight": 0, "evicted": 0, "accounts": {}}, "ledger.opened"),
    ({"version": 1, "opened": 1, "in_flight": 0, "evicted": 0, "accounts": {"0xa": {"mined": 1,
      "mined_nonces": [[1]]}}}, "mined_nonces"),
    ({"version": 1, "opened": 1, "in_flight": 0, "evicted": 0, "accounts": {},
      "records": [{"id": 1, "sender": "0xa", "state": 5}]}, "records[0].state"),
])
def test_a_garbled_dump_names_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        LedgerDump.from_json(doc)


def test_nonce_sets() -> None:
    assert nonceset.minus([(0, 9)], [(2, 3), (5, 5)]) == [(0, 1), (4, 4), (6, 9)]
    assert nonceset.intersect([(0, 9)], [(8, 20), (1, 1)]) == [(1, 1), (8, 9)]
    assert nonceset.of([3, 1, 2, 7]) == [(1, 3), (7, 7)] and nonceset.size([(1, 3), (7, 7)]) == 4
    assert nonceset.first([(1, 3), (7, 9)], 5) == [1, 2, 3, 7, 8]


@given(st.sets(st.integers(0, 60)), st.sets(st.integers(0, 60)))
def test_nonce_set_operations_match_python_sets(a: set[int], b: set[int]) -> None:
    ra, rb = nonceset.of(a), nonceset.of(b)

    def flat(rs: list[tuple[int, int]]) -> set[int]:
        return {n for lo, hi in rs for n in range(lo, hi + 1)}

    assert flat(nonceset.minus(ra, rb)) == a - b and flat(nonceset.intersect(ra, rb)) == a & b
    assert nonceset.size(ra) == len(a)


# -- chain facts: bounded lookups against a JSON-RPC server -------------------------------------------


def test_beyond_the_cap_the_surprises_are_kept_and_the_mined_sampled() -> None:
    recs = [DumpRecord(i, "0xa", i, f"0x{i:02x}", (f"0x{i:02x}",), "mined_ok") for i in range(50)]
    recs += [DumpRecord(100 + i, "0xa", None, f"0xf{i}", (f"0xf{i}",), "failed") for i in range(5)]
    dump = LedgerDump(55, 0, 0, tuple(recs), {})
    every, sampled = choose(dump, 100)
    assert len(every) == 55 and not sampled
    some, sampled = choose(dump, 20, seed=3)
    assert sampled and len(some) == 20 and {f"0xf{i}" for i in range(5)} <= set(some)
    assert some == choose(dump, 20, seed=3)[0]  # reproducible


@dataclass
class FakeChain:
    txs: dict[str, dict[str, Any]]
    counts: dict[str, int]
    receipts: dict[str, int]
    posts: list[int] = field(default_factory=list)

    def answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_getTransactionCount":
            return hex(self.counts[params[0]])
        if method == "eth_getTransactionByHash":
            return self.txs.get(params[0])
        if method == "eth_getTransactionReceipt":
            return {"status": hex(self.receipts[params[0]])}
        raise AssertionError(method)


@pytest.fixture
async def chain() -> AsyncIterator[tuple[FakeChain, str]]:
    fake = FakeChain(
        txs={"0x01": {"from": "0xaa", "nonce": "0x0", "blockNumber": "0x5"},
             "0x02": {"from": "0xaa", "nonce": "0x1", "blockNumber": None}},
        counts={"0xaa": 1}, receipts={"0x01": 1})

    async def rpc(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        fake.posts.append(len(body))
        out = [{"jsonrpc": "2.0", "id": c["id"], "result": fake.answer(c["method"], c["params"])} for c in body]
        return web.json_response(out, dumps=lambda x: orjson.dumps(x).decode())

    app = web.Application()
    app.router.add_post("/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_gather_reads_counts_transactions_and_receipts_in_bounded_batches(
        chain: tuple[FakeChain, str]) -> None:
    fake, url = chain
    recs = (DumpRecord(1, "0xaa", 0, "0x01", ("0x01",), "mined_ok"),
            DumpRecord(2, "0xaa", 1, "0x02", ("0x02",), "failed", nonce_fate="held"),
            DumpRecord(3, "0xaa", 2, "0x03", ("0x03",), "dropped", nonce_fate="released"))
    dump = LedgerDump(3, 0, 0, recs, {"0xaa": DumpAccount("0xaa", 0, 1, 0, ((0, 0),), 1, ((1, 1),))})
    facts = await gather(url, dump, FactLimits(cap=10, batch=2, concurrency=1, deadline_s=10))
    assert facts.counts == {"0xaa": 1}
    assert facts.txs["0x01"] == TxFact("0x01", "0xaa", 0, 5, 1)
    assert facts.txs["0x02"] == TxFact("0x02", "0xaa", 1, None) and facts.txs["0x03"] is None
    assert max(fake.posts) <= 2  # batches bounded
    out = reconcile(dump, facts, session=1)
    c = out.check.counts
    assert (c.mined_confirmed, c.explained_late, c.problems) == (1, 1, 0)  # the held one is pending: explained


async def test_an_unreachable_node_raises_for_the_shell_to_record() -> None:
    from harness.errors import HarnessError

    dump = LedgerDump(0, 0, 0, (), {"0xaa": DumpAccount("0xaa", 0)})
    with pytest.raises(HarnessError):
        await gather("http://127.0.0.1:9/", dump, FactLimits(deadline_s=2))


# -- the section in results.json, its verdict row and its page -----------------------------------------


def _section(counts: LedgerCounts, *, final: bool = True, reconciled: bool = True) -> LedgerReconciliation:
    rec = LedgerReconciliation(LedgerCounts())
    d = Discrepancy("late", 1, "0xaa", 4, ("0x" + "cd" * 32,), "failed", "landed later")
    rec = rec.with_session(SessionCheck(1, True, counts), [AccountBalance("0xaa", 5, 4, 1, 1)], [d] * 150)
    return rec.with_session(SessionCheck(2, reconciled, LedgerCounts(reported=1), final=final,
                                         note="" if reconciled else "could not reconcile: HTTP 404"),
                            [AccountBalance("0xaa", 1, 1, 0, 0)], [])


def test_sessions_sum_and_discrepancies_stay_bounded() -> None:
    rec = _section(LedgerCounts(reported=5, mined_confirmed=4, explained_late=1))
    assert rec.counts.reported == 6 and rec.complete and len(rec.sessions) == 2
    assert len(rec.discrepancies) == 100 and rec.discrepancies_total == 150
    assert rec.accounts == (AccountBalance("0xaa", 6, 5, 1, 1),)
    assert LedgerReconciliation.from_json(orjson.loads(orjson.dumps(rec.to_json()))) == rec
    assert not _section(LedgerCounts(), final=False).complete
    assert "HTTP 404" in " ".join(_section(LedgerCounts(), reconciled=False).reasons())


def _doc(ledger: LedgerReconciliation | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1, "run_id": "20260101-000000-ab12", "status": "complete",
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z", "profile": "custom",
        "conditions": {
            "machine": {"cores": 2, "memory_bytes": 1, "cpu_model": "test", "python": "3.11", "os": "Linux"},
            "node": {"kind": "anvil", "version": "1.7.1", "url": "http://127.0.0.1:8545", "mining": "automine"},
            "network_profile": "loopback", "bot": {}, "harness_version": "0", "git_commit": "0"},
        "scenarios": [], "verdicts": [], "artifacts": {"profiles": [], "memray": [], "logs": []}}
    if ledger is not None:
        doc["ledger"] = ledger.to_json()
    return doc


def _row(doc: dict[str, Any]) -> dict[str, Any]:
    (v,) = [v for v in judge_run(doc, load_default()) if v["row"] == "ledger_reconciliation"]
    return v


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2), st.integers(0, 2), st.booleans())
def test_the_row_fails_on_any_loss_and_is_inconclusive_when_not_reconciled(
        lost: int, doubled: int, unexplained: int, live: int, final: bool) -> None:
    counts = LedgerCounts(reported=10, lost=lost, doubled=doubled, unexplained=unexplained, not_terminal=live)
    v = _row(_doc(_section(counts, final=final)))
    assert (v["stat"], v["unit"], v["value"]) == ("lost_or_doubled", "tx", float(lost + doubled))
    assert v["threshold"] == {"op": "<=", "value": 0.0, "level": "maximum"}
    assert "harness's own check" in v["note"]
    expected = "fail" if lost + doubled + unexplained + live else ("pass" if final else "inconclusive")
    assert v["verdict"] == expected, v["note"]


def test_no_ledger_section_is_inconclusive_with_the_reason() -> None:
    v = _row(_doc(None))
    assert v["verdict"] == "inconclusive" and "not reconciled" in v["note"]


def test_the_section_is_valid_and_reaches_the_page(tmp_path: Path) -> None:
    from harness.report import render_from_results

    doc = _doc(_section(LedgerCounts(reported=5, mined_confirmed=4, explained_late=1)))
    doc["verdicts"] = judge_run(doc, load_default())
    validate_results(doc)
    run = Run.from_json(doc)
    assert run.ledger is not None and run.ledger.counts.reported == 6
    assert Run.from_json(run.to_json()) == run
    (tmp_path / "results.json").write_bytes(orjson.dumps(doc))
    html = render_from_results(tmp_path).read_text()
    section = html[html.index('id="ledger"'):html.index('id="artifacts"')]
    assert "ledger-counts" in section and "ledger-accounts" in section and "0x" + "cd" * 32 in section
    assert "100 of 150 shown" in section
    html_none = _doc(None)
    (tmp_path / "results.json").write_bytes(orjson.dumps(html_none))
    assert "Not reconciled" in render_from_results(tmp_path).read_text()


async def test_the_shell_records_an_unreachable_bot_as_unreconciled(tmp_path: Path) -> None:
    from harness.run.ledgercheck import load, reconcile_session

    class Ui:
        lines: ClassVar[list[str]] = []

        def log(self, line: str) -> None:
            self.lines.append(line)

    class St:
        run_dir, api_url, token, node_url = tmp_path, "http://127.0.0.1:9", "t", "http://127.0.0.1:9"

    await reconcile_session(St(), Ui(), final=True)  # type: ignore[arg-type]
    await reconcile_session(St(), Ui(), final=True)  # type: ignore[arg-type]
    rec = load(tmp_path)
    assert rec is not None and [s.session for s in rec.sessions] == [1, 2]
    assert not rec.complete and "could not reconcile" in rec.reasons()[0]
    assert any("ledger (bot session 1)" in line for line in Ui.lines)

