"""The harness's exception family.

Every failure of the harness itself (as opposed to a target the bot missed) is a
``HarnessError``; the CLI maps it to exit code 3.
"""

from __future__ import annotations


class HarnessError(Exception):
    """The harness could not do what was asked (bad input, a part that would not start, ...)."""


class ConfigError(HarnessError, ValueError):
    """A harness input (SLO file, scenario, flag) is invalid; the message names the field and the fix."""
