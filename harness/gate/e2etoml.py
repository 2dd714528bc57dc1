"""The bot.toml both revisions' bots start with (pure): the same settings, plus each side's own overrides.

The gate writes the file itself instead of ``BotConfig.to_toml()``: that writes every section this
checkout's bot knows (``[debug]`` included), which an older base revision's parser would reject as an
unknown table. Only the keys the gate sets are written; everything else is each revision's default,
which is part of what is being compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; tables merge key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            have = out.get(k)
            out[k] = merge(have, v) if isinstance(v, Mapping) and isinstance(have, Mapping) else v
    return out


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        # JSON's string escapes are TOML's basic-string escapes; TOML also refuses a raw DEL.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps(data: Mapping[str, Any], prefix: str = "") -> str:
    """TOML for nested tables of scalars and arrays (all a bot.toml holds)."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    lines = [f"{k} = {_value(v)}" for k, v in scalars]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n[{name}]\n" + dumps(v, name + ".")
    return out


def bot_config_toml(*layers: Mapping[str, Any]) -> str:
    return dumps(merge(*layers))
