"""``--node-url`` is loopback unless ``--allow-remote``: the same gate, and message, as ``harness load``."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import EXIT_ERROR, build_parser, main
from harness.errors import ConfigError
from harness.run.options import RunOptions


@pytest.mark.parametrize("url", ["http://10.0.0.1:8545", "https://u:KEY@rpc.example.com/v3/KEY?apikey=KEY"])
def test_a_remote_node_url_is_refused_naming_the_flag(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^--node-url host '.*' is not a loopback address; .*--allow-remote") as err:
        RunOptions(node_url=url, deployment=Path("deployment.json"))
    assert "KEY" not in str(err.value)
    assert RunOptions(node_url=url, deployment=Path("deployment.json"), allow_remote=True).node_url == url


@pytest.mark.parametrize("url", ["http://127.0.0.1:8545", "http://localhost:1/x", "http://[::1]:8545"])
def test_a_loopback_node_url_needs_no_flag(url: str) -> None:
    assert RunOptions(node_url=url, deployment=Path("deployment.json")).node_url == url


def test_a_malformed_node_url_is_named_with_its_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--node-url must start with http:// or https://"):
        RunOptions(node_url="ws://127.0.0.1:8545", deployment=Path("deployment.json"))


@pytest.mark.parametrize("verb", ["run", "soak", "profile"])
def test_every_verb_with_node_url_refuses_a_remote_one(verb: str, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    argv = [verb, "--node-url", "https://u:KEY@rpc.example.com/KEY", "--deployment", str(tmp_path / "d.json"),
            "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "--node-url host 'rpc.example.com' is not a loopback address" in err and "--allow-remote" in err
    assert "KEY" not in err
    assert list(tmp_path.iterdir()) == []  # refused before anything started
    assert build_parser().parse_args([*argv, "--allow-remote"]).allow_remote is True
