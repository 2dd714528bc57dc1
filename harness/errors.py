"""The harness's exception family.

Every failure of the harness itself (as opposed to a target the bot missed) is a
``HarnessError``; the CLI maps it to exit code 3.
"""

from __future__ import annotations


class HarnessError(Exception):
    """The harness could not do what was asked (bad input, a part that would not start, ...)."""


class ConfigError(HarnessError, ValueError):
    """A harness input (SLO file, scenario, flag) is invalid; the message names the field and the fix."""


class RedirectRefused(HarnessError):
    """A node answered HTTP 3xx. The harness never follows a redirect (a loopback target could send
    load, and credentials, elsewhere); the message names only the target's host."""

    def __init__(self, endpoint: str, status: int, target_host: str) -> None:
        super().__init__(f"{endpoint}: HTTP {status} redirect to {target_host} refused (redirects are not "
                         "followed); give the node's final URL")
        self.status = status
        self.target_host = target_host
