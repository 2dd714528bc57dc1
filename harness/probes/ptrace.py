"""Why py-spy could not sample the bot, in words that name the fix (pure, but for reading this machine's facts).

py-spy reads the bot's memory with ``process_vm_readv``, which the kernel allows under the ptrace access rules
only: the same user with no more capabilities than the reader, or CAP_SYS_PTRACE; and with Yama's
``kernel.yama.ptrace_scope`` = 1 only an ancestor of the target (2: CAP_SYS_PTRACE only, 3: nobody). py-spy's
own words for a refusal vary by version and by the step that failed ("Permission Denied", "Permission denied
(os error 13)", "Operation not permitted (os error 1)"); ``diagnose`` tells a refusal from a bot that had
exited or a bad option, and names the cause from ``PtraceFacts`` and the fixes. Launch mode (py-spy starts the
bot as its child) needs no attach permission under scopes 0 and 1.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

YAMA = Path("/proc/sys/kernel/yama/ptrace_scope")
CAP_SYS_PTRACE = 19  # bit in /proc/<pid>/status CapEff

FailureKind = Literal["ptrace", "gone", "options", "failed", "no_output"]

_REFUSED = re.compile(r"permission denied|operation not permitted|os error 1\)|os error 13\)|\bEPERM\b|SYS_PTRACE",
                      re.IGNORECASE)
_GONE = re.compile(r"no such process|os error 3\)|os error 2\)|check that the process is running", re.IGNORECASE)
_OPTIONS = re.compile(r"^error: (unexpected|invalid|the argument)|can't get native stack traces",
                      re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class PtraceFacts:
    """What decides whether this process may attach to another: Yama's scope, the user, CAP_SYS_PTRACE."""

    scope: int | None  # kernel.yama.ptrace_scope; None: no Yama
    euid: int
    cap_sys_ptrace: bool
    container: bool
    override: str | None = None  # $TRADEBENCH_PYSPY: a py-spy that may run with other privileges than ours

    @classmethod
    def read(cls) -> PtraceFacts:
        try:
            scope: int | None = int(YAMA.read_text().strip())
        except (OSError, ValueError):
            scope = None
        try:
            status = Path("/proc/self/status").read_text()
        except OSError:
            status = ""
        m = re.search(r"^CapEff:\s*([0-9a-fA-F]+)$", status, re.MULTILINE)
        cap = bool(m and int(m.group(1), 16) >> CAP_SYS_PTRACE & 1)
        container = Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
        return cls(scope, os.geteuid(), cap, container, os.environ.get("TRADEBENCH_PYSPY") or None)


@dataclass(frozen=True)
class SpyFailure:
    kind: FailureKind
    message: str


def _said(output: str) -> str:
    """py-spy's own explanation: its error lines, without the Rust backtrace that follows them."""
    keep: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("Stack backtrace") or text.startswith("py-spy>"):
            if keep:
                break
            continue
        if text:
            keep.append(text)
    return " ".join(keep)[:400] or "nothing"


def _why(f: PtraceFacts) -> str:
    who = "root" if f.euid == 0 else f"uid {f.euid}"
    if f.scope == 3:
        return "kernel.yama.ptrace_scope is 3: no process may attach to another until the machine reboots"
    if f.scope == 2 and not f.cap_sys_ptrace:
        return (f"kernel.yama.ptrace_scope is 2 (only CAP_SYS_PTRACE may attach) and the harness runs as {who} "
                "without it")
    if f.scope == 1 and not f.cap_sys_ptrace:
        return (f"kernel.yama.ptrace_scope is 1 (only an ancestor, or CAP_SYS_PTRACE, may attach) and the harness runs "
                f"as {who} without CAP_SYS_PTRACE")
    if not f.cap_sys_ptrace:
        where = "this container was started without it" if f.container else "it was dropped"
        return f"the harness runs as {who} without CAP_SYS_PTRACE ({where})"
    if f.override:
        return (f"the harness holds CAP_SYS_PTRACE, but py-spy here is TRADEBENCH_PYSPY={f.override}, which may "
                "run with fewer privileges")
    return ("the kernel refused although the harness holds CAP_SYS_PTRACE: a seccomp filter or a security module "
            "(AppArmor, SELinux) blocks process_vm_readv")


def _fixes(f: PtraceFacts, launched: bool) -> list[str]:
    fixes = []
    if f.scope in (1, 2):
        fixes.append("`sudo sysctl kernel.yama.ptrace_scope=0` (until reboot)")
    if f.euid != 0:
        fixes.append("run the harness as root")
    if f.container or not f.cap_sys_ptrace:
        fixes.append("in a container, start it with `--cap-add SYS_PTRACE` (Kubernetes: securityContext.capabilities"
                     ".add: [SYS_PTRACE])")
    if not launched and f.scope in (None, 0, 1):
        fixes.append("`harness profile --spy-launch`: py-spy starts the bot as its own child, which needs no attach "
                     "permission")
    return fixes or ["reboot: scope 3 cannot be lowered while the machine runs"]


def diagnose(returncode: int | None, output: str, facts: PtraceFacts, *, wrote: bool, launched: bool = False,
             log: Path | None = None) -> SpyFailure | None:
    """None when py-spy exited cleanly and wrote its file; otherwise what went wrong, in words that say the fix."""
    if returncode == 0 and wrote:
        return None
    see = f"; py-spy's log: {log}" if log is not None else ""
    said = _said(output)
    if _REFUSED.search(output):
        return SpyFailure("ptrace", f"py-spy may not read the bot's memory: {_why(facts)}. Fix, one of: "
                                    f"{'; '.join(_fixes(facts, launched))}. (py-spy said: {said}{see})")
    if _OPTIONS.search(output):
        return SpyFailure("options", f"py-spy refused its options: {said}{see}")
    if _GONE.search(output):
        return SpyFailure("gone", f"the bot's process was gone before py-spy could attach (see bot.log); "
                                  f"py-spy said: {said}{see}")
    if returncode == 0:
        return SpyFailure("no_output", f"py-spy exited cleanly but wrote no profile{see}")
    code = "was killed" if returncode is None or returncode < 0 else f"exited with code {returncode}"
    return SpyFailure("failed", f"py-spy {code}: {said}{see}")
