"""Valgrind client requests from pure Python, so callgrind counts only the stretches that matter.

Under ``valgrind --tool=callgrind`` the interpreter runs about 40x slower than native while it is
instrumented, and about 8x with instrumentation off (``import eth_account``: 1.4 s native, 60 s
instrumented, 11 s with ``--instr-atstart=no``; measured here). The worker's set-up is imports and
input building, none of it counted, so the instruction-count tier starts valgrind with
instrumentation off and switches it on around each case's counted calls.

``valgrind.h`` does that with a macro: a marker of four ``rol`` instructions valgrind's decoder
recognises, then ``xchg rbx, rbx``, with the request's six words pointed to by ``rax`` and the answer
in ``rdx``. Python cannot emit instructions, so this module copies the eleven-instruction function
into an executable page and calls it through ``ctypes``. Natively the marker is a no-op (the four
rotations add up to 128 bits), and the call returns the default, 0: code that uses it runs unchanged
outside valgrind. Standard-library only, like the rest of the runner package it is copied into.
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import sys
from typing import Any

_CALLGRIND_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T')
DUMP_STATS = _CALLGRIND_BASE
ZERO_STATS = _CALLGRIND_BASE + 1
START_INSTRUMENTATION = _CALLGRIND_BASE + 4
STOP_INSTRUMENTATION = _CALLGRIND_BASE + 5
RUNNING_ON_VALGRIND = 0x1001

# int64 request(uint64 *words): valgrind.h's VALGRIND_DO_CLIENT_REQUEST_EXPR for amd64, as bytes.
_AMD64 = bytes.fromhex(
    "4889f8"  # mov rax, rdi           the request's words
    "31d2"  # xor edx, edx           the default answer, 0 (what a native run returns)
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3; 13; 61; 51: the marker
    "4887db"  # xchg rbx, rbx          the request: rdx = answer
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)

_state: dict[str, Any] = {}


def supported() -> bool:
    """Whether this process can make client requests (x86-64 Linux)."""
    return sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")


def _function() -> Any:
    fn = _state.get("fn")
    if fn is None:
        if not supported():
            raise OSError(f"valgrind client requests are implemented for x86-64 Linux, not {platform.machine()}")
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(_AMD64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        fn = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(address)
        _state.update(fn=fn, page=page)  # the page lives as long as the function that points into it
    return fn


def request(code: int, *args: int) -> int:
    """Make client request ``code`` (up to five arguments); 0 when not running under valgrind."""
    if len(args) > 5:
        raise ValueError("a client request takes at most five arguments")
    words = (ctypes.c_uint64 * 6)(code, *args, *([0] * (5 - len(args))))
    return int(_function()(ctypes.addressof(words)))


def running_on_valgrind() -> int:
    """How many valgrinds this process runs under (0 natively)."""
    return request(RUNNING_ON_VALGRIND) if supported() else 0


def start_instrumentation() -> None:
    request(START_INSTRUMENTATION)


def stop_instrumentation() -> None:
    request(STOP_INSTRUMENTATION)
