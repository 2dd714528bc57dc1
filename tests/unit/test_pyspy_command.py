"""py-spy's command line (harness.probes.pyspy) and a failure told apart and explained (harness.probes.ptrace),
from py-spy's own words.

The refusal texts are py-spy's real output: 0.4.3 here (attaching as uid 65534 to a root process, and as root
with CAP_SYS_PTRACE dropped), and the texts py-spy's maintainers quote for a Docker container and for Yama
(benfred/py-spy #12, #459, #612).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.probes.ptrace import PtraceFacts, diagnose
from harness.probes.pyspy import SpyOptions, launch_prefix, record_command, sample_counts
from harness.run.profiling import FORMATS, parse_formats

RAW = Path("/tmp/p/bot-profile.folded.txt")

NOT_ROOT = """Permission Denied: Try running again with elevated permissions by going 'sudo env "PATH=$PATH" !!'
"""
ROOT_NO_CAP = """Error: Failed to get process executable name. Check that the process is running.

Caused by:
    0: Permission denied (os error 13)
    1: Permission denied (os error 13)

Stack backtrace:
   0: <E as anyhow::context::ext::StdError>::ext_context
   1: py_spy::python_process_info::PythonProcessInfo::new
"""
DOCKER = """Permission Denied

It looks like you are running in a docker container. Please make sure you started your container with the \
SYS_PTRACE capability. See https://github.com/benfred/py-spy#how-do-i-run-py-spy-in-docker for more details
"""
YAMA = "Error: Operation not permitted (os error 1)\nReason: Operation not permitted (os error 1)\n"
GONE = """Error: Failed to get process executable name. Check that the process is running.

Caused by:
    0: No such file or directory (os error 2)
    1: No such file or directory (os error 2)

Stack backtrace:
   0: <E as anyhow::context::ext::StdError>::ext_context
"""
NATIVE_NONBLOCKING = "Can't get native stack traces with the --nonblocking option.\n"
OK = """py-spy> Sampling process 100 times a second for 3 seconds. Press Control-C to exit.

py-spy> Wrote raw flamegraph data to 'x.txt'. Samples: 292 Errors: 1
"""


def test_the_default_command_attaches_nonblocking_and_records_raw() -> None:
    cmd = record_command(RAW, SpyOptions(), pid=4321, duration_s=30)
    assert cmd[1:] == ["record", "--format", "raw", "--output", str(RAW), "--rate", "100", "--nonblocking",
                       "--duration", "30", "--pid", "4321"]
    assert cmd[0].endswith("py-spy")


def test_flags_are_passed_and_native_drops_nonblocking() -> None:
    opts = SpyOptions(rate=250, native=True, idle=True, gil=True, subprocesses=True)
    cmd = record_command(RAW, opts, pid=1)
    for flag in ("--native", "--idle", "--gil", "--subprocesses"):
        assert flag in cmd
    assert "--nonblocking" not in cmd  # py-spy refuses --native with it
    assert cmd[cmd.index("--rate") + 1] == "250"
    assert opts.as_dict() == {"rate": 250, "native": True, "idle": True, "gil": True, "subprocesses": True,
                              "nonblocking": False}
    assert "--duration" not in cmd  # ended by SIGINT instead


def test_launch_mode_puts_the_bot_behind_a_separator() -> None:
    cmd = record_command(RAW, SpyOptions(), launch=["python", "-m", "bot", "run"])
    assert "--pid" not in cmd
    assert cmd[cmd.index("--") + 1:] == ["python", "-m", "bot", "run"]
    prefix = launch_prefix(RAW, SpyOptions())
    sep = prefix.index("--")
    assert prefix[:sep] == cmd[:cmd.index("--")]
    assert prefix[sep + 1:] in ([], [prefix[sep + 1], "--pdeathsig", "TERM"])  # setpriv when it exists


def test_bad_requests_are_refused_naming_the_fix() -> None:
    with pytest.raises(HarnessError, match="either a pid"):
        record_command(RAW, SpyOptions())
    with pytest.raises(HarnessError, match="either a pid"):
        record_command(RAW, SpyOptions(), pid=1, launch=["python"])
    with pytest.raises(HarnessError, match="--seconds"):
        record_command(RAW, SpyOptions(), pid=1, duration_s=0)
    with pytest.raises(HarnessError, match=r"--sample-rate: 0 .* 1\.\.1000"):
        SpyOptions(rate=0)


def test_a_chosen_binary_is_used_and_a_bad_one_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spy = tmp_path / "py-spy"
    spy.write_text("#!/bin/sh\n")
    spy.chmod(0o755)
    monkeypatch.setenv("TRADEBENCH_PYSPY", str(spy))
    assert record_command(RAW, SpyOptions(), pid=1)[0] == str(spy)
    monkeypatch.setenv("TRADEBENCH_PYSPY", str(tmp_path / "missing"))
    with pytest.raises(HarnessError, match=r"TRADEBENCH_PYSPY=.*not an executable"):
        record_command(RAW, SpyOptions(), pid=1)


def test_formats_parse_in_canonical_order() -> None:
    assert parse_formats("speedscope,flamegraph") == ("flamegraph", "speedscope")
    assert parse_formats(" raw ") == ("raw",)
    assert parse_formats("all") == FORMATS
    for bad in ("", "svg", "flamegraph,png"):
        with pytest.raises(HarnessError, match=r"--format .*flamegraph, speedscope, raw"):
            parse_formats(bad)


ROOT = PtraceFacts(scope=None, euid=0, cap_sys_ptrace=False, container=False)


@pytest.mark.parametrize("output", [NOT_ROOT, ROOT_NO_CAP, DOCKER, YAMA])
def test_every_refusal_text_is_a_ptrace_refusal_with_the_fixes(output: str) -> None:
    f = diagnose(1, output, ROOT, wrote=False, log=Path("/r/py-spy.log"))
    assert f is not None and f.kind == "ptrace"
    assert f.message.startswith("py-spy may not read the bot's memory: ")
    assert "--cap-add SYS_PTRACE" in f.message and "--spy-launch" in f.message
    assert "/r/py-spy.log" in f.message
    assert "Stack backtrace" not in f.message and "anyhow" not in f.message


def test_the_cause_is_named_from_the_machine() -> None:
    def why(facts: PtraceFacts, launched: bool = False) -> str:
        f = diagnose(1, YAMA, facts, wrote=False, launched=launched)
        assert f is not None
        return f.message

    scope1 = why(PtraceFacts(scope=1, euid=1000, cap_sys_ptrace=False, container=False))
    assert "kernel.yama.ptrace_scope is 1" in scope1 and "uid 1000" in scope1
    assert "sudo sysctl kernel.yama.ptrace_scope=0" in scope1 and "run the harness as root" in scope1
    assert "--spy-launch" in scope1
    scope2 = why(PtraceFacts(scope=2, euid=0, cap_sys_ptrace=False, container=True))
    assert "ptrace_scope is 2" in scope2 and "--spy-launch" not in scope2  # a child needs the capability too
    assert "this container" not in scope2 and "--cap-add SYS_PTRACE" in scope2
    container = why(PtraceFacts(scope=None, euid=0, cap_sys_ptrace=False, container=True))
    assert "this container was started without it" in container
    scope3 = why(PtraceFacts(scope=3, euid=0, cap_sys_ptrace=True, container=False))
    assert "until the machine reboots" in scope3 and "sysctl" not in scope3
    held = why(PtraceFacts(scope=0, euid=0, cap_sys_ptrace=True, container=False))
    assert "seccomp" in held
    wrapped = why(PtraceFacts(scope=0, euid=0, cap_sys_ptrace=True, container=False, override="/x/py-spy"))
    assert "TRADEBENCH_PYSPY=/x/py-spy, which may run with fewer privileges" in wrapped
    launched = why(PtraceFacts(scope=1, euid=1000, cap_sys_ptrace=False, container=False), launched=True)
    assert "--spy-launch" not in launched  # it already was


def test_other_failures_are_not_called_a_refusal() -> None:
    gone = diagnose(1, GONE, ROOT, wrote=False)
    assert gone is not None and gone.kind == "gone" and "bot.log" in gone.message
    opts = diagnose(1, NATIVE_NONBLOCKING, ROOT, wrote=False)
    assert opts is not None and opts.kind == "options" and "--nonblocking" in opts.message
    killed = diagnose(-9, "", ROOT, wrote=False)
    assert killed is not None and killed.kind == "failed" and "was killed" in killed.message
    empty = diagnose(0, OK, ROOT, wrote=False)
    assert empty is not None and empty.kind == "no_output"
    assert diagnose(0, OK, ROOT, wrote=True) is None


def test_sample_counts_come_from_pyspys_closing_line() -> None:
    assert sample_counts(OK) == (292, 1)
    assert sample_counts(NOT_ROOT) is None


def test_facts_are_read_from_this_machine() -> None:
    facts = PtraceFacts.read()
    assert facts.scope in (None, 0, 1, 2, 3)
    assert facts.euid >= 0
