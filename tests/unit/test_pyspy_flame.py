"""Folded stacks to a flame graph and to speedscope (harness.probes.flame), and the function tables
(harness.probes.folded): sample counts are preserved whatever the stacks."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.probes.flame import flame_tree, flamegraph_svg, speedscope
from harness.probes.folded import aggregate, function_table, is_own_code, parse_folded

FRAMES = ["main (bot/cli.py:84)", "run (uvloop/__init__.py:92)", "Trader.trade (bot/trader.py:210)",
          "send (aiohttp/client.py:512)", "send (aiohttp/client.py:530)", "sign (coincurve/keys.py:7)",
          "epoll_wait (libc.so.6)", "<module> (<frozen runpy>:198)", "a&b <c> \"d\" (x.py:1)"]
stacks_st = st.lists(st.tuples(st.lists(st.sampled_from(FRAMES), min_size=0, max_size=8).map(tuple),
                               st.integers(1, 10_000)), min_size=0, max_size=40)


def folded(stacks: list[tuple[tuple[str, ...], int]]) -> str:
    return "".join(f"{';'.join(frames)} {n}\n" for frames, n in stacks)


@settings(max_examples=150, deadline=None)
@given(stacks_st)
def test_sample_counts_are_preserved_in_every_view(raw: list[tuple[tuple[str, ...], int]]) -> None:
    total = sum(n for _, n in raw)
    stacks = parse_folded(folded(raw))  # through the text, as py-spy writes it (empty stacks included)
    assert sum(n for _, n in stacks) == total
    assert sum(aggregate(stacks).values()) == total
    tree = flame_tree(stacks)
    assert tree.value == total
    todo = [tree]
    while todo:  # every frame holds exactly its children's samples plus its own
        node = todo.pop()
        assert node.self_value >= 0
        assert node.value == node.self_value + sum(c.value for c in node.children.values())
        todo.extend(node.children.values())
    doc = json.loads(json.dumps(speedscope(stacks, "t")))
    prof = doc["profiles"][0]
    assert sum(prof["weights"]) == total == prof["endValue"]
    assert len(prof["samples"]) == len(prof["weights"])
    assert all(0 <= i < len(doc["shared"]["frames"]) for s in prof["samples"] for i in s)
    svg = flamegraph_svg(stacks, "t <&> title")
    root = ET.fromstring(svg.split("\n", 1)[1])  # well-formed XML, names escaped
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    if total:
        assert f"all ({total:,} samples, 100.00%)" in titles
    table = function_table(stacks)
    assert table.samples == total
    assert all(0 <= f.self_ <= f.inclusive <= 1 for f in (*table.by_self, *table.by_total))
    assert sum(f.self_ for f in table.by_self) <= 1 + 1e-9


def test_lines_of_one_function_merge_and_speedscope_names_files() -> None:
    text = ("main (bot/cli.py:84);send (aiohttp/client.py:512) 6\n"
            "main (bot/cli.py:84);send (aiohttp/client.py:530) 2\n"
            " 3\n"
            "main (bot/cli.py:85);Trader.trade (bot/trader.py:210) 1\n")
    stacks = parse_folded(text)
    assert ((), 3) in stacks  # a sample py-spy found no Python frame in
    agg = aggregate(stacks)
    assert agg[("main (bot/cli.py)", "send (aiohttp/client.py)")] == 8
    doc = speedscope(stacks, "p")
    names = {(f["name"], f.get("file")) for f in doc["shared"]["frames"]}
    assert ("send", "aiohttp/client.py") in names and ("main", "bot/cli.py") in names
    table = function_table(stacks)
    assert table.samples == 12
    assert table.by_self[0].name == "send (aiohttp/client.py)" and abs(table.by_self[0].self_ - 8 / 12) < 1e-9
    rows = table.to_json()["by_self"]
    assert {r["function"]: r["own"] for r in rows}["Trader.trade (bot/trader.py)"] is True
    assert is_own_code("x (/work/main/bot/app.py)") and not is_own_code("send (aiohttp/client.py)")


def test_the_svg_draws_the_widest_frames_with_labels_and_the_bots_code_in_blue() -> None:
    stacks = parse_folded("main (bot/cli.py:1);Trader.trade (bot/trader.py:2) 90\nmain (bot/cli.py:1);x (y.py:3) 10\n")
    svg = flamegraph_svg(stacks, "demo")
    assert svg.startswith('<?xml version="1.0"') and "<svg" in svg
    assert ">Trader.trade (bot/trader.py)<" in svg  # wide enough for its label
    frame = r'<title>Trader\.trade \(bot/trader\.py\)[^<]*</title><rect [^>]*fill="rgb\((\d+),\d+,(\d+)\)"'
    ((red, blue),) = re.findall(frame, svg)
    assert int(blue) > int(red)
    assert "90 samples, 90.00%" in svg


def test_no_samples_still_renders() -> None:
    assert "0 samples" in flamegraph_svg([], "empty")
    assert speedscope([], "empty")["profiles"][0]["endValue"] == 0
    assert function_table([]).by_self == ()
