"""Name lookups with one-line errors: every registry access and choice check goes through here."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that is unknown, of the wrong kind or impossible; its message is one line."""


def did_you_mean(name: object, allowed: Iterable[str]) -> str:
    """' Did you mean gated?' for the closest allowed name, or ''."""
    close = difflib.get_close_matches(str(name), list(allowed), n=1)
    return f" Did you mean {close[0]}?" if close else ""


def shown(value: object, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters with its full length said, for error lines."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_choice(key: str, value: object, allowed: Iterable[str]) -> None:
    """Raise ConfigError unless `value` is exactly one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(
            f"{key}={shown(value)} is not allowed.{did_you_mean(value, allowed)} Allowed: {', '.join(allowed)}"
        )


def lookup(table: Mapping[str, T], kind: str, name: str) -> T:
    """table[name], or ConfigError `unknown <kind> 'glaa'. Did you mean gla? Available: ...`."""
    if name not in table:
        raise ConfigError(
            f"unknown {kind} {name!r}.{did_you_mean(name, table)} Available: {', '.join(table)}"
        )
    return table[name]
