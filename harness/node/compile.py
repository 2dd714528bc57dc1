"""Compile the Solidity sources with npm's solcjs into committed JSON artifacts.

Every artifact records the sha256 of *all* sources plus the compiler settings (Deployer embeds
Token and Pool, so a per-file hash would miss a change) and the solc version, so a test can
tell a stale artifact from a fresh one without recompiling. The pure parts (input building,
hashing, output checking) are separate from the one subprocess call to node.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
NODE_SCRIPT = REPO_ROOT / "scripts" / "compile_contracts.js"

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def read_sources(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, str]:
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(contracts_dir.glob("*.sol"))}
    if not sources:
        raise HarnessError(f"no .sol files in {contracts_dir}")
    return sources


def sources_sha256(sources: Mapping[str, str], settings: Mapping[str, Any] = SETTINGS) -> str:
    """One hash over every source (by name) and the settings: any edit changes it."""
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(sources[name].encode())
        h.update(b"\0")
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()


def standard_input(sources: Mapping[str, str], settings: Mapping[str, Any] = SETTINGS) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sorted(sources.items())},
        "settings": dict(settings),
    }


def artifacts_from_output(output: Mapping[str, Any], solc_version: str, sha: str) -> dict[str, dict[str, Any]]:
    """Artifacts for every deployable contract; raises with the compiler's messages on errors."""
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise HarnessError("solc failed:\n" + "\n".join(e.get("formattedMessage", str(e)) for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for source, contracts in sorted(output.get("contracts", {}).items()):
        for name, data in sorted(contracts.items()):
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts cannot be deployed
            if name in artifacts:
                raise HarnessError(f"contract name {name} is defined twice; names must be unique")
            artifacts[name] = {
                "contractName": name,
                "sourceName": source,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "sources_sha256": sha,
                "solc_version": solc_version,
            }
    return artifacts


def run_solcjs(std_input: Mapping[str, Any], *, timeout_s: float = 120.0) -> tuple[str, dict[str, Any]]:
    """(solc version, standard-JSON output) from npm's solcjs, offline."""
    try:
        proc = subprocess.run(
            ["node", str(NODE_SCRIPT)],
            input=json.dumps(std_input).encode(),
            capture_output=True,
            cwd=REPO_ROOT,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise HarnessError("node is not installed; run ./dev setup") from exc
    if proc.returncode != 0:
        raise HarnessError(
            f"solcjs failed (exit {proc.returncode}); is npm's solc installed (./dev setup)?\n"
            + proc.stderr.decode(errors="replace")[-2000:]
        )
    reply = json.loads(proc.stdout)
    return str(reply["solc_version"]), reply["output"]


def compile_all(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    sources = read_sources(contracts_dir)
    version, output = run_solcjs(standard_input(sources))
    return artifacts_from_output(output, version, sources_sha256(sources))


def write_artifacts(artifacts: Mapping[str, Mapping[str, Any]], build_dir: Path = BUILD_DIR) -> list[Path]:
    build_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, artifact in sorted(artifacts.items()):
        path = build_dir / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def load_committed(build_dir: Path = BUILD_DIR) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(build_dir.glob("*.json"))}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if committed artifacts are stale")
    args = parser.parse_args(argv)
    fresh = compile_all()
    if args.check:
        stale = sorted(n for n in fresh.keys() | load_committed().keys() if fresh.get(n) != load_committed().get(n))
        if stale:
            print(f"stale artifacts: {', '.join(stale)}; run: python scripts/compile_contracts.py")
            return 1
        print(f"{len(fresh)} artifacts match the sources")
        return 0
    for path in write_artifacts(fresh):
        print(path.relative_to(REPO_ROOT))
    return 0
