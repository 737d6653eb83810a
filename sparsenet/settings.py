"""What every run setting means, as its field declares it (sparsenet.config.setting): one source for
`sparsenet train --help`, `sparsenet settings` and README's table. The settings every run has come from
sparsenet.config; an algorithm's own come from its registry entry's `hparams` (listing them imports every
algorithm)."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

from sparsenet import config as c

LIST_TYPES = {"tuple[tuple[str, float], ...]": "name:float list", "tuple[int, ...]": "int list",
              "tuple[float, ...]": "float list", "tuple[str, ...]": "str list"}


def _shared(key: str) -> tuple[dataclasses.Field, Any, str]:
    """A setting every run has, with its section (none for the seed): without importing any algorithm, as a job's
    command line needs."""
    section = next((name for name, hp in c.SECTIONS.items() if key in hp.__dataclass_fields__), "-")
    return (*c.SETTINGS[key], section)


@functools.cache
def every() -> dict[str, tuple[dataclasses.Field, Any, str]]:
    """key -> (its field, its type hint, where it belongs): a section, or the algorithms that have it."""
    from sparsenet import algorithms

    out = {key: _shared(key) for key in c.SETTINGS}
    owners: dict[str, list[str]] = {}
    for name in algorithms.NAMES:
        own = algorithms.get(name).hparams
        for key in c.own_settings(own):
            owners.setdefault(key, []).append(name)
            out[key] = (*c.settings(own)[key], "")
    for key, names in owners.items():
        out[key] = (*out[key][:2], f"algorithm: {', '.join(names)}")
    return out


def _entry(key: str) -> tuple[dataclasses.Field, Any, str]:
    return _shared(key) if key in c.SETTINGS else every()[key]


def kind(key: str) -> str:
    """The setting's type as the command line takes it."""
    name = c.type_name(_entry(key)[1])
    return LIST_TYPES.get(name, name)


def allowed(key: str) -> str:
    if key == "model":  # the package's own: the registry also grows with models resolved by import path
        from sparsenet.models import BUILTIN

        return ", ".join(BUILTIN)
    if key == "algorithm":  # the registry's: listed from its folder, without importing every algorithm
        from sparsenet.algorithms import NAMES

        return ", ".join(NAMES)
    return ", ".join(_entry(key)[0].metadata["choices"])


def _text(value) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, tuple):
        items = [f"{item[0]}:{item[1]}" if isinstance(item, tuple) else str(item) for item in value]
        return ",".join(items) or "(none)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _meaning(key: str) -> tuple[str, str, object]:
    """(help, unit, default) of a setting."""
    f = _entry(key)[0]
    return f.metadata["help"], f.metadata["unit"], f.default


def describe(key: str) -> str:
    """One line of --help: meaning, allowed values, default and unit."""
    meaning, unit, default = _meaning(key)
    parts = [meaning]
    if allowed(key):
        parts.append(f"one of {allowed(key)}")
    parts.append(f"default {_text(default)}" + (f" ({unit})" if unit else ""))
    return "; ".join(parts)


def markdown() -> str:
    """README's table of run settings: those every run has, then each algorithm's own."""
    lines = ["| key | section | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for key, (_, _, where) in every().items():
        meaning, unit, default = _meaning(key)
        unit = f" ({unit})" if unit else ""
        lines.append(f"| `{key}` | {where} | {kind(key)} | `{_text(default)}` | {allowed(key) or '-'} | "
                     f"{meaning}{unit} |")
    return "\n".join(lines) + "\n"
