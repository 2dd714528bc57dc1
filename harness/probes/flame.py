"""Folded stacks rendered without a second sampling pass (pure): a flame graph SVG and a speedscope document.

py-spy writes one format per recording, so a profile records ``raw`` once and both views come from it
(``harness.probes.pyspy``). The SVG follows flamegraph.pl's picture: the root at the bottom, each frame as
wide as its share of the samples, siblings in alphabetical order so that the same stacks always give the
same picture, and a tooltip (``<title>``) per frame with its samples and share. It is static; for zooming
and a time-ordered view open the speedscope JSON beside it at speedscope.app. Frames of the bot's own code
are drawn in a separate colour. Frames narrower than ``min_px`` are left out (their samples still count in
every frame below them), which keeps a long profile's SVG small.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from html import escape
from typing import Any

from harness.probes.folded import Stacks, aggregate, is_own_code

FRAME_H = 17
TOP = 46
PAD = 10
CHAR_PX = 7.0
_NAMED = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*)\)$")


@dataclass
class Frame:
    """A node of the merged call tree: ``value`` samples had this frame at this place on the stack."""

    name: str
    value: int = 0
    children: dict[str, Frame] = field(default_factory=dict)

    @property
    def self_value(self) -> int:
        return self.value - sum(c.value for c in self.children.values())

    def depth(self) -> int:
        stack, deepest = [(self, 0)], 0
        while stack:
            node, d = stack.pop()
            deepest = max(deepest, d)
            stack.extend((c, d + 1) for c in node.children.values())
        return deepest


def flame_tree(stacks: Stacks) -> Frame:
    root = Frame("all")
    for frames, count in aggregate(stacks).items():
        root.value += count
        node = root
        for name in frames:
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = Frame(name)
            child.value += count
            node = child
    return root


def speedscope(stacks: Stacks, name: str) -> dict[str, Any]:
    """A speedscope "sampled" profile: one sample per distinct stack, weighted by its count."""
    frames: list[dict[str, str]] = []
    index: dict[str, int] = {}
    samples: list[list[int]] = []
    weights: list[int] = []
    for stack, count in aggregate(stacks).items():
        ids = []
        for f in stack:
            i = index.get(f)
            if i is None:
                i = index[f] = len(frames)
                m = _NAMED.match(f)
                frames.append({"name": m["name"], "file": m["file"]} if m else {"name": f})
            ids.append(i)
        samples.append(ids)
        weights.append(count)
    total = sum(weights)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": frames},
        "profiles": [{"type": "sampled", "name": name, "unit": "none", "startValue": 0, "endValue": total,
                      "samples": samples, "weights": weights}],
        "name": name,
        "activeProfileIndex": 0,
        "exporter": "tradebench harness (from py-spy raw)",
    }


def _colour(name: str) -> str:
    h = zlib.crc32(name.encode())
    if is_own_code(name):
        return f"rgb({40 + h % 40},{120 + (h >> 8) % 60},{200 + (h >> 16) % 55})"  # the bot's code: blue
    m = _NAMED.match(name)
    where = m["file"] if m else ""
    if not (where.endswith(".py") or where.startswith("<")):
        return f"rgb({150 + h % 40},{150 + (h >> 8) % 40},{150 + (h >> 16) % 40})"  # native frames: grey
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 130},{(h >> 16) % 55})"  # other Python: flamegraph.pl's warm


def _label(name: str, width: float) -> str:
    fit = int((width - 6) / CHAR_PX)
    if fit < 3:
        return ""
    return name if len(name) <= fit else name[: fit - 2] + ".."


def flamegraph_svg(stacks: Stacks, title: str, *, width: int = 1200, min_px: float = 0.2) -> str:
    root = flame_tree(stacks)
    total = root.value
    depth = root.depth()
    height = TOP + (depth + 1) * FRAME_H + PAD
    scale = (width - 2 * PAD) / total if total else 0.0
    out = [
        '<?xml version="1.0" standalone="no"?>',
        f'<svg version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="Verdana, sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fbfbf8"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="16">{escape(title)}</text>',
        f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">{total:,} samples; blue: the bot\'s own code, '
        'grey: native; hover a frame for its samples; frames under '
        f'{min_px:g} px left out</text>',
    ]
    stack: list[tuple[Frame, int, float]] = [(root, 0, float(PAD))]
    while stack:
        node, d, x = stack.pop()
        w = node.value * scale
        if w < min_px:
            continue
        y = TOP + (depth - d) * FRAME_H
        share = node.value / total * 100
        out.append(f'<g><title>{escape(node.name)} ({node.value:,} samples, {share:.2f}%)</title>'
                   f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{FRAME_H - 1}" fill="{_colour(node.name)}" '
                   'rx="2"/>')
        label = _label(node.name, w)
        if label:
            out.append(f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 5}">{escape(label)}</text>')
        out.append("</g>")
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            stack.append((child, d + 1, cx))
            cx += child.value * scale
    out.append("</svg>")
    return "\n".join(out) + "\n"
