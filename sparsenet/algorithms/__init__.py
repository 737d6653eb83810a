"""Sparse-training algorithms: one module each, named as the algorithm, whose class registers itself (`@register`).

Adding an algorithm is adding its module: the names are read from this folder (modules whose name starts with `_`
are shared parts: `_base` the protocol, `_freeze`, `_at_init`, `_rigl_scripts`), and everything that lists
algorithms (config, plan, help, figures, code identity) asks this registry. A module is imported only when its
algorithm is asked for, so a job imports the algorithms its run and its command use and no other, and its code
identity (sparsenet.provenance) holds those alone. A run's `freeze_epoch` (k > 0) freezes the mask of an algorithm
that can freeze (`freezable`) after k epochs (`_freeze`); tables, figures and run folders call such a run
`<name>_freeze` (its label). A user's own algorithm is named by import path, 'package.module:Class'.
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
    from sparsenet.config import AlgorithmHparams

FREEZE = "_freeze"  # the label <name>_freeze: a run of <name> with its mask frozen after freeze_epoch epochs
NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))
_REGISTERED: dict[str, type[Algorithm]] = {}  # module -> its algorithm


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: `cls` is the algorithm its module is named after (its `name`), with its settings class
    (`hparams`), what its mask does (`mask_changes`, `freezable`) and the code it follows (`reference`)."""
    cls.name = cls.__module__.rpartition(".")[2]
    _REGISTERED[cls.__module__] = cls
    return cls


def label(name: str, freeze_epoch: int) -> str:
    """What tables, figures and folders call a run of algorithm `name`: 'dnw_freeze' where its mask freezes."""
    return name + FREEZE if freeze_epoch else name


def split(label: str) -> tuple[str, bool]:
    """(the algorithm a label runs, whether its mask freezes): 'dnw_freeze' -> ('dnw', True)."""
    return (label.removesuffix(FREEZE), True) if label.endswith(FREEZE) else (label, False)


def _known() -> str:
    return f"known: {', '.join(NAMES)} (`sparsenet algorithms`)"


@functools.cache
def get(name: str) -> type[Algorithm]:
    """The class of algorithm `name`; ConfigError naming the key `algorithm` where there is none."""
    from sparsenet.algorithms._base import Algorithm

    if ":" in name:
        try:
            cls = by_path.function(name, "algorithm", _known(), "the algorithm's settings")
        except KeyError as e:
            raise ConfigError(f"algorithm: {e.args[0]}") from None
        if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
            raise ConfigError(f"algorithm: {name!r} is not a subclass of sparsenet.algorithms._base.Algorithm")
        return cls
    if name not in NAMES:
        hint = f" ({name} is a label: set algorithm {split(name)[0]} and freeze_epoch)" if split(name)[1] else ""
        raise ConfigError(f"algorithm: unknown algorithm {name!r}{hint}; {_known()}; or an import path "
                          "'package.module:Class'")
    module = f"{__name__}.{name}"
    importlib.import_module(module)
    if module not in _REGISTERED:
        raise ConfigError(f"algorithm: {module} registers no algorithm (@sparsenet.algorithms.register)")
    return _REGISTERED[module]


def _frozen(name: str) -> type[Algorithm]:
    # a new class each call (not cached): one class statement, and a mutation test sees a changed `freezing`
    cls = get(name)
    if not cls.freezable:
        raise ConfigError(f"freeze_epoch: {name} cannot freeze its mask; those that can: {', '.join(freezable())}")
    return importlib.import_module(f"{__name__}._freeze").freezing(cls)


def of(hp: AlgorithmHparams) -> type[Algorithm]:
    """The class a run with algorithm settings `hp` trains: its algorithm, frozen after `hp.freeze_epoch` epochs
    where that is set (ConfigError naming the key where the algorithm cannot freeze)."""
    return _frozen(hp.algorithm) if hp.freeze_epoch else get(hp.algorithm)


def freezable() -> list[str]:
    """The package's algorithms that can freeze their mask (imports every algorithm module)."""
    return [n for n in NAMES if get(n).freezable]


def labels() -> list[str]:
    """Every kind of run: each algorithm, and <name>_freeze of each that can freeze (imports every module)."""
    return [*NAMES, *(label(n, 1) for n in freezable())]


def from_label(run_label: str, freeze_epoch: int = 1) -> dict[str, object]:
    """The run settings a label names: {'algorithm': 'dnw', 'freeze_epoch': 1} for 'dnw_freeze'."""
    name, frozen = split(run_label)
    return {"algorithm": name, "freeze_epoch": freeze_epoch if frozen else 0}


def modules(name: str, frozen: bool = False) -> list[str]:
    """The package's modules algorithm `name` (its mask `frozen` or not) is imported from (none for one by import
    path: its file is the user's, sparsenet.provenance.own_files)."""
    own = [] if ":" in name else [f"{__name__}.{name}"]
    return own + ([f"{__name__}._freeze"] if frozen else [])


def markdown() -> str:
    """`sparsenet algorithms`: each algorithm with what the study reads of it, its own settings, the code it
    follows, and its module's first line."""
    import sys

    from sparsenet.config import own_settings

    lines = ["| algorithm | mask changes during a run | can freeze (`freeze_epoch`) | own settings | follows | "
             "what it is |", "|---|---|---|---|---|---|"]
    for name in NAMES:
        cls = get(name)
        what = (sys.modules[cls.__module__].__doc__ or "").strip().split("\n")[0].replace("|", "\\|")
        yes = {True: "yes", False: "no"}
        own = ", ".join(f"`{key}`" for key in own_settings(cls.hparams)) or "-"
        lines.append(f"| `{name}` | {yes[cls.mask_changes]} | {yes[cls.freezable]} | {own} | {cls.reference} | "
                     f"{what} |")
    return "\n".join(lines) + "\n"
