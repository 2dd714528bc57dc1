"""Credentials out of endpoint URLs, before a URL is written, logged or served.

A provider's key sits in one of three places of an endpoint URL: the userinfo
(``https://user:KEY@host/``), a path segment (``https://host/v3/KEY``) or the query
(``?apikey=KEY``). ``redact_url`` keeps what tells a reader which endpoint it was (scheme, host,
port, the query's parameter names) and replaces the rest with ``***``: the whole userinfo, every
path segment (no rule tells a key from a route name, so none is trusted), every query value and
the fragment. ``redact_text`` does the same to each URL inside free text (an error message, a log
line, a JSON body). Both are pure and idempotent, and a string that is not a URL passes through.

The real URL is still needed to connect: callers keep it in memory (or pass it to a child process
in its environment) and show only the redacted form.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

MASK = "***"

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Inside text a URL ends at whitespace, a quote, an angle bracket or a backslash (JSON, repr, HTML).
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>\\`]+")
# Prose punctuation after a URL ("see http://host:1/x.") belongs to the sentence, not the URL.
_TRAILING = ".,;:!?)}"


def _hostport(authority: str) -> str:
    """``host[:port]`` kept as written; a "port" that is not digits may be half a password
    (``u:ab/cd@host``, with an unescaped slash, parses so), so it is masked."""
    if authority.startswith("["):  # an IPv6 literal: the port follows the bracket
        end = authority.find("]")
        if end < 0:
            return MASK
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return f"{host}:{MASK}"
        return authority
    host, colon, port = authority.partition(":")
    if colon and not (port.isascii() and port.isdigit()):
        return f"{host}:{MASK}"
    return authority


def _query(query: str) -> str:
    def one(item: str) -> str:
        name, eq, value = item.partition("=")
        if eq:
            return f"{name}={MASK}" if value else item
        return MASK if item else item  # a bare item (``?KEY``) is a value without a name

    return "&".join(one(item) for item in query.split("&"))


def redact_url(url: str) -> str:
    """``url`` with its userinfo, path segments, query values and fragment replaced by ``***``;
    scheme, host and port kept. Anything that does not start with ``scheme://`` is returned as is."""
    m = _SCHEME.match(url)
    if m is None:
        return url
    rest = url[m.end() :]
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    _userinfo, at, hostport = authority.rpartition("@")
    out = [m.group(0), f"{MASK}@" if at else "", _hostport(hostport)]
    tail, hash_, fragment = tail.partition("#")
    path, qmark, query = tail.partition("?")
    out.append("/".join(MASK if seg else seg for seg in path.split("/")))
    if qmark:
        out.append("?" + _query(query))
    if hash_:
        out.append("#" + (MASK if fragment else ""))
    return "".join(out)


def _redact_match(m: re.Match[str]) -> str:
    text = m.group(0)
    keep = len(text)
    while keep > 0 and (text[keep - 1] in _TRAILING
                        or (text[keep - 1] == "]" and text.count("[", 0, keep) < text.count("]", 0, keep))):
        keep -= 1
    return redact_url(text[:keep]) + text[keep:]


def redact_text(text: str) -> str:
    """Every URL inside ``text`` redacted (see ``redact_url``); the rest unchanged."""
    if "://" not in text:  # the common case, checked in C before any regex runs
        return text
    return _URL_IN_TEXT.sub(_redact_match, text)


def redact_tree(value: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, numbers) with every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return value


def host_of(url: str | None) -> str:
    """``host[:port]`` of ``url`` and nothing else (no userinfo, path or query): what an error may
    say about, say, a redirect target. A relative or unreadable URL gives ``"(no host)"``."""
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError:
        return "(no host)"
    host = parts.hostname
    if not host:
        return "(no host)"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter and redacts URLs in the whole formatted record, traceback included
    (an exception's message is written by the library that raised it, beyond our reach)."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self.inner.format(record))


def redact_logging(root: logging.Logger | None = None) -> None:
    """Wrap the formatter of every handler of ``root`` (default: the root logger) in a
    ``RedactingFormatter``; the format itself is kept."""
    for handler in (root or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` for a process that may hold secret URLs: the crash report, redacted."""
    sys.stderr.write(redact_text("".join(traceback.format_exception(exc_type, exc, tb))))
    sys.stderr.flush()


__all__ = ["MASK", "RedactingFormatter", "excepthook", "host_of", "redact_logging", "redact_text", "redact_tree",
           "redact_url"]
