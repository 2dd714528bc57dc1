"""py-spy for real: ``harness profile`` writes a page, a flame graph and its conditions; a refused attach is
explained and launch mode needs no attach permission; ``harness run --profile-bot`` links a flame graph per
scenario. py-spy must work here: a refusal fails these tests with the harness's message, never skips them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.probes.pyspy import pyspy_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OWN_ROW = re.compile(r'<tr class="own">.*?<b><code>[^<]*\((/[^<]*)?bot/[\w/]+\.py\)</code></b>', re.DOTALL)


def _harness(*args: str, out: Path, env: dict[str, str] | None = None, timeout: float = 150,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args, "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def _folder(out: Path) -> Path:
    (folder,) = out.glob("profile-*")
    return folder


def test_profile_writes_its_page_flame_graph_and_conditions(tmp_path: Path) -> None:
    res = _harness("profile", "--seconds", "3", "--rate", "50", "--pairs", "5", "--format", "flamegraph,speedscope",
                   "--native", "--calibrate", out=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr  # a ptrace refusal shows here with its cause and fix
    folder = _folder(tmp_path)
    doc: dict[str, Any] = json.loads((folder / "profile.json").read_text())
    cond = doc["conditions"]
    assert cond["rate"] == 50 and cond["seconds"] == 3 and cond["mode"] == "attach"
    assert cond["sampling"] == {"rate": 100, "native": True, "idle": False, "gil": False, "subprocesses": False,
                                "nonblocking": False}
    assert cond["formats"] == ["flamegraph", "speedscope"] and cond["py_spy"].startswith("py-spy ")
    assert cond["calibration"]["cpu_ref_per_s"] > 0 and cond["bot"]["engine"]["gc_freeze"] is True
    assert doc["failure"] is None and doc["py_spy"]["returncode"] == 0
    assert doc["functions"]["samples"] > 0
    assert any(r["own"] for r in doc["functions"]["by_total"]), doc["functions"]["by_total"]
    svg = (folder / "bot-flamegraph.svg").read_text()
    ET.fromstring(svg.split("\n", 1)[1])
    assert re.search(r"\(bot/[\w/]+\.py\)", svg), "no sample in the bot's code"
    scope = json.loads((folder / "bot-profile.speedscope.json").read_text())
    assert sum(scope["profiles"][0]["weights"]) == doc["functions"]["samples"]
    page = (folder / "index.html").read_text()
    assert 'id="flamegraph-link"' in page and 'href="bot-flamegraph.svg"' in page
    tables = page[page.index('id="functions-by_self"'):page.index('id="conditions"')]
    assert OWN_ROW.search(tables), "the top-functions tables name no function of the bot"
    assert "profile: " in res.stdout and str(folder / "index.html") in res.stdout


def _unprivileged_pyspy(tmp_path: Path) -> Path:
    """The real py-spy, run without CAP_SYS_PTRACE: the bot (started by the harness, with every capability)
    is then out of its reach, as it is for an unprivileged user or in a container without the capability."""
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to drop CAP_SYS_PTRACE for this test"
    wrapper = tmp_path / "py-spy"
    wrapper.write_text(f"#!/bin/sh\nexec {setpriv} --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace "
                       f"{pyspy_binary()} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def test_a_refused_attach_is_explained_and_launch_mode_needs_no_permission(tmp_path: Path) -> None:
    env = {"TRADEBENCH_PYSPY": str(_unprivileged_pyspy(tmp_path))}
    refused = _harness("profile", "--seconds", "2", "--rate", "20", "--pairs", "3", out=tmp_path / "a", env=env)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    err = refused.stderr
    assert "py-spy may not read the bot's memory" in err, err
    assert "Permission denied" in err and "--spy-launch" in err and "SYS_PTRACE" in err
    page = (_folder(tmp_path / "a") / "index.html").read_text()
    assert 'id="profile-failure"' in page and "py-spy may not read the bot&#39;s memory" in page

    launched = _harness("profile", "--seconds", "2", "--rate", "20", "--pairs", "3", "--spy-launch",
                        out=tmp_path / "b", env=env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    doc = json.loads((_folder(tmp_path / "b") / "profile.json").read_text())
    assert doc["conditions"]["mode"] == "launch" and doc["failure"] is None
    assert doc["functions"]["samples"] > 0 and any(r["own"] for r in doc["functions"]["by_total"])


def test_run_profile_bot_links_a_flame_graph_per_scenario(tmp_path: Path) -> None:
    res = _harness("run", "--only", "sustained", "--minutes", "0.1", "--pairs", "5", "--no-calibrate",
                   "--profile-bot", out=tmp_path, timeout=240)
    assert res.returncode in (0, 1, 2), res.stdout + res.stderr
    (run,) = [p for p in tmp_path.iterdir() if (p / "results.json").exists()]
    doc = json.loads((run / "results.json").read_text())
    (sustained,) = doc["scenarios"]
    prof = sustained["summary"]["profile"]
    assert prof["failure"] is None and prof["samples"] > 0
    assert (run / prof["files"]["flamegraph"]).read_text().lstrip().startswith("<?xml")
    assert prof["page"] in doc["artifacts"]["profiles"]
    page = (run / "index.html").read_text()
    assert f'href="{prof["files"]["flamegraph"]}"' in page and 'id="gc-table"' in page
    sub = json.loads((run / prof["folder"] / "profile.json").read_text())
    assert sub["conditions"]["scenario"] == "sustained" and sub["conditions"]["run_id"] == doc["run_id"]
    assert 'href="../../index.html"' in (run / prof["page"]).read_text()  # back to the run's page
