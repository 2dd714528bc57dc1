"""``harness load --locust`` and ``harness locust-worker`` on the command line: what is refused, and how."""

from __future__ import annotations

import pytest

from harness.cli import EXIT_ERROR, build_parser, main


@pytest.mark.parametrize(("argv", "needle"), [
    (["load"], "--url is required"),
    (["load", "--url", "http://127.0.0.1:1", "--workers", "2"], "--workers: Locust options; add --locust"),
    (["load", "--locust", "--steps", "100x5"], "--steps is for the open-loop generator"),
    (["load", "--locust", "--workers", "65"], "--workers: give 0..64"),
    (["load", "--locust", "--remote-workers", "2"], "need --url"),
    (["load", "--locust", "--url", "http://127.0.0.1:1/x", "--master-bind", "0.0.0.0:5557"], "--allow-remote"),
    (["load", "--locust", "--url", "http://10.0.0.9:1/x"], "--allow-remote"),
    (["locust-worker", "--master", "10.0.0.5:port"], "must be a number"),
])
def test_refusals_name_the_fix(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_ERROR
    assert needle in capsys.readouterr().err


def test_generator_defaults_stay_and_locust_options_parse() -> None:
    args = build_parser().parse_args(["load", "--locust", "--workers", "2", "--remote-workers", "1",
                                      "--master-bind", "0.0.0.0:5557", "--url", "http://10.0.0.9:80/",
                                      "--allow-remote"])
    assert (args.locust, args.workers, args.remote_workers, args.master_bind) == (True, 2, 1, "0.0.0.0:5557")
    assert args.rate is None and args.duration is None  # the verb's default depends on --locust
    assert build_parser().parse_args(["locust-worker", "--master", "a:1"]).master == "a:1"
