"""Sparse-training algorithms: one module each, named as the algorithm, whose class registers itself (`@register`).

Adding an algorithm is adding its module: the names are read from this folder (modules whose name starts with `_`
are shared parts: `_base` the protocol, `_freeze`, `_at_init`, `_rigl_scripts`), and everything that lists
algorithms (config, plan, help, figures, code identity) asks this registry. A module is imported only when its
algorithm is asked for, so a job imports the algorithm it runs and no other, and its code identity
(sparsenet.provenance) holds that one alone. `<name>_freeze` runs an algorithm whose class can freeze
(`freezable`) with its mask frozen after `freeze_epoch` epochs (`_freeze`). A user's own algorithm is named by
import path, 'package.module:Class'.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING

from sparsenet import by_path
from sparsenet.config import ConfigError

if TYPE_CHECKING:
    from sparsenet.algorithms._base import Algorithm

FREEZE = "_freeze"  # <name>_freeze: <name> with its mask frozen after freeze_epoch epochs
NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))
_REGISTERED: dict[str, type[Algorithm]] = {}  # module -> its algorithm


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: `cls` is the algorithm its module is named after (its `name`)."""
    cls.name = cls.__module__.rpartition(".")[2]
    _REGISTERED[cls.__module__] = cls
    return cls


def split(name: str) -> tuple[str, bool]:
    """(the algorithm `name` runs, whether its mask is frozen): 'dnw_freeze' -> ('dnw', True)."""
    return (name.removesuffix(FREEZE), True) if name.endswith(FREEZE) else (name, False)


def _known() -> str:
    return f"known: {', '.join(NAMES)}, <name>{FREEZE} of one that can freeze (`sparsenet algorithms`)"


@functools.cache
def get(name: str) -> type[Algorithm]:
    """The class algorithm `name` runs; ConfigError naming the key `algorithm` where there is none."""
    from sparsenet.algorithms._base import Algorithm

    base, frozen = split(name)
    if ":" in base:
        try:
            cls = by_path.function(base, "algorithm", _known(), "the algorithm's settings")
        except KeyError as e:
            raise ConfigError(f"algorithm: {e.args[0]}") from None
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise ConfigError(f"algorithm: {base!r} is not a subclass of sparsenet.algorithms._base.Algorithm")
    elif base in NAMES:
        module = f"{__name__}.{base}"
        importlib.import_module(module)
        if module not in _REGISTERED:
            raise ConfigError(f"algorithm: {module} registers no algorithm (@sparsenet.algorithms.register)")
        cls = _REGISTERED[module]
    else:
        raise ConfigError(f"algorithm: unknown algorithm {name!r}; {_known()}; or an import path "
                          "'package.module:Class'")
    if not frozen:
        return cls
    if not cls.freezable:
        raise ConfigError(f"algorithm: {base} cannot freeze its mask ({name!r}); those that can: "
                          f"{', '.join(freezable())}")
    return importlib.import_module(f"{__name__}._freeze").freezing(cls)


def freezable() -> list[str]:
    """The package's algorithms that can run as <name>_freeze (imports every algorithm module)."""
    return [n for n in NAMES if get(n).freezable]


def every() -> list[str]:
    """Every name a run may give, freezes included (imports every algorithm module)."""
    return [*NAMES, *(n + FREEZE for n in freezable())]


def modules(name: str) -> list[str]:
    """The package's modules algorithm `name` is imported from (none for one by import path: its file is the
    user's, sparsenet.provenance.own_files)."""
    base, frozen = split(name)
    if ":" in base:
        return []
    return [f"{__name__}.{base}"] + ([f"{__name__}._freeze"] if frozen else [])


def markdown() -> str:
    """`sparsenet algorithms`: each algorithm with what the study reads of it, and its module's first line."""
    import sys

    lines = ["| algorithm | mask changes during a run | can freeze (`<name>_freeze`) | what it is |",
             "|---|---|---|---|"]
    for name in NAMES:
        cls = get(name)
        what = (sys.modules[cls.__module__].__doc__ or "").strip().split("\n")[0].replace("|", "\\|")
        yes = {True: "yes", False: "no"}
        lines.append(f"| `{name}` | {yes[cls.mask_changes]} | {yes[cls.freezable]} | {what} |")
    return "\n".join(lines) + "\n"
