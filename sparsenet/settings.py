"""What every run setting means, as its field declares it (sparsenet.config.setting): one source for
`sparsenet train --help`, `sparsenet settings` and README's table."""
from __future__ import annotations

from sparsenet import config as c

LIST_TYPES = {"tuple[tuple[str, float], ...]": "name:float list", "tuple[int, ...]": "int list",
              "tuple[float, ...]": "float list", "tuple[str, ...]": "str list"}


def _section(key: str) -> str:
    return next((name for name, hp in c.SECTIONS.items() if key in hp.__dataclass_fields__), "")


def kind(key: str) -> str:
    """The setting's type as the command line takes it."""
    name = c.type_name(c.FIELDS[key])
    return LIST_TYPES.get(name, name)


def allowed(key: str) -> str:
    if key == "model":  # the package's own: the registry also grows with models resolved by import path
        from sparsenet.models import BUILTIN

        return ", ".join(BUILTIN)
    if key == "algorithm":  # the registry's: listed from its folder, without importing every algorithm
        from sparsenet.algorithms import NAMES

        return ", ".join(NAMES)
    return ", ".join(c.SETTINGS[key][0].metadata["choices"])


def _text(value) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, tuple):
        items = [f"{item[0]}:{item[1]}" if isinstance(item, tuple) else str(item) for item in value]
        return ",".join(items) or "(none)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _meaning(key: str) -> tuple[str, str, object]:
    """(help, unit, default) of a setting."""
    f = c.SETTINGS[key][0]
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
    """README's table of run settings."""
    lines = ["| key | section | type | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for key in c.SETTINGS:
        meaning, unit, default = _meaning(key)
        unit = f" ({unit})" if unit else ""
        lines.append(f"| `{key}` | {_section(key) or '-'} | {kind(key)} | `{_text(default)}` | {allowed(key) or '-'} | "
                     f"{meaning}{unit} |")
    return "\n".join(lines) + "\n"
