"""The committed contract artifacts (contracts/build/*.json) and ABI encoding on top of them.

``contract("Pool")`` gives a ``ContractAbi`` that encodes calls and decodes results and events
by name, with eth-abi. It is meant for the harness and tests; a hot path that encodes one call
shape millions of times may precompute its own selector and layout from these artifacts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import abi as eth_abi
from eth_utils.crypto import keccak

from harness.errors import HarnessError

BUILD_DIR = Path(__file__).resolve().parents[2] / "contracts" / "build"


def _canonical_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _types(params: Sequence[Mapping[str, Any]]) -> list[str]:
    return [_canonical_type(p) for p in params]


@dataclass(frozen=True)
class Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        return keccak(text=self.signature)[:4]


@dataclass(frozen=True)
class Event:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]
    indexed: tuple[bool, ...]

    @property
    def topic(self) -> str:
        return "0x" + keccak(text=f"{self.name}({','.join(self.types)})").hex()


@dataclass(frozen=True)
class ContractAbi:
    name: str
    abi: tuple[Mapping[str, Any], ...]
    bytecode: str
    functions: Mapping[str, Function]
    events: Mapping[str, Event]

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise HarnessError(f"{self.name} has no function {name!r}; it has {sorted(self.functions)}") from None

    def encode_call(self, name: str, *args: Any) -> str:
        """Calldata (0x-hex) for ``name(args)``."""
        fn = self.function(name)
        if len(args) != len(fn.inputs):
            raise HarnessError(f"{self.name}.{fn.signature} takes {len(fn.inputs)} arguments, got {len(args)}")
        return "0x" + (fn.selector + eth_abi.encode(list(fn.inputs), list(args))).hex()

    def decode_result(self, name: str, data: str) -> tuple[Any, ...]:
        fn = self.function(name)
        return tuple(eth_abi.decode(list(fn.outputs), bytes.fromhex(data.removeprefix("0x"))))

    def encode_deploy(self, *args: Any) -> str:
        """Creation code plus encoded constructor arguments."""
        ctor = next((item for item in self.abi if item.get("type") == "constructor"), None)
        types = _types(ctor["inputs"]) if ctor else []
        return self.bytecode + eth_abi.encode(types, list(args)).hex()

    def decode_event(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(event name, {arg: value}) for a JSON-RPC log entry emitted by this contract."""
        topics = list(log["topics"])
        event = next((e for e in self.events.values() if topics and e.topic == topics[0]), None)
        if event is None:
            raise HarnessError(f"log topic {topics[:1]} is not an event of {self.name}")
        indexed_values = iter(topics[1:])
        plain_types = [t for t, ix in zip(event.types, event.indexed, strict=True) if not ix]
        plain = iter(eth_abi.decode(plain_types, bytes.fromhex(str(log["data"]).removeprefix("0x"))))
        out: dict[str, Any] = {}
        for name, kind, ix in zip(event.names, event.types, event.indexed, strict=True):
            if ix:
                out[name] = eth_abi.decode([kind], bytes.fromhex(next(indexed_values).removeprefix("0x")))[0]
            else:
                out[name] = next(plain)
        return event.name, out


def _parse(name: str, artifact: Mapping[str, Any]) -> ContractAbi:
    functions: dict[str, Function] = {}
    events: dict[str, Event] = {}
    for item in artifact["abi"]:
        if item.get("type") == "function":
            if item["name"] in functions:
                raise HarnessError(f"{name}.{item['name']} is overloaded; look functions up by signature instead")
            functions[item["name"]] = Function(
                item["name"], tuple(_types(item["inputs"])), tuple(_types(item["outputs"]))
            )
        elif item.get("type") == "event":
            events[item["name"]] = Event(
                item["name"],
                tuple(_types(item["inputs"])),
                tuple(str(p["name"]) for p in item["inputs"]),
                tuple(bool(p["indexed"]) for p in item["inputs"]),
            )
    return ContractAbi(name, tuple(artifact["abi"]), str(artifact["bytecode"]), functions, events)


@functools.cache
def contract(name: str) -> ContractAbi:
    """The committed artifact ``contracts/build/<name>.json``: ``Token``, ``Pool`` or ``Deployer``."""
    path = BUILD_DIR / f"{name}.json"
    try:
        artifact = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in BUILD_DIR.glob("*.json"))
        raise HarnessError(f"no artifact {path}; known: {known}; run scripts/compile_contracts.py") from None
    return _parse(name, artifact)
