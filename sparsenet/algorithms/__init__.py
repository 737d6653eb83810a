"""Sparse-training algorithms by name, all behind the protocol of `base.Algorithm`, each in its own module.

A module is imported when its algorithm is first asked for, so a job imports only the algorithm it runs, and its
code identity (sparsenet.provenance) holds only that one. `<name>_freeze` is a dynamic algorithm whose mask is
frozen after `freeze_epoch` epochs (sparsenet.algorithms.freeze).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from sparsenet.algorithms.base import Algorithm
from sparsenet.config import ALGORITHMS as NAMES
from sparsenet.config import DYNAMIC, FROZEN  # freezable: <name>_freeze

# name -> (module in this package, class); `fixed` trains under a given mask (retraining)
WHERE = {"dense": ("dense", "Dense"), "imp": ("imp", "IMP"), "snfs": ("snfs", "SNFS"), "dnw": ("dnw", "DNW"),
         "set": ("set", "SET"), "rigl": ("rigl", "RigL"), "static": ("static", "Static"), "gmp": ("gmp", "GMP"),
         "snip": ("snip", "SNIP"), "grasp": ("grasp", "GraSP"), "synflow": ("synflow", "SynFlow"),
         "magnitude_init": ("magnitude_init", "MagnitudeInit"), "fixed": ("base", "Algorithm")}


def _base(name: str) -> tuple[str, bool]:
    """(the algorithm `name` runs, whether it freezes it)."""
    return FROZEN.get(name, name), name in FROZEN


def modules(name: str) -> list[str]:
    """The modules algorithm `name` is imported from."""
    base, frozen = _base(name)
    return [f"{__name__}.{WHERE[base][0]}"] + ([f"{__name__}.freeze"] if frozen else [])


class _Registry(Mapping):
    """name -> class, in the config's order; a class is imported on first use."""

    def __init__(self):
        self._classes: dict[str, type[Algorithm]] = {}

    def __getitem__(self, name: str) -> type[Algorithm]:
        if name not in self._classes:
            if name not in NAMES:
                raise KeyError(name)
            base, frozen = _base(name)
            module, cls = WHERE[base]
            algorithm = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
            if frozen:
                algorithm = importlib.import_module(f"{__name__}.freeze").freezing(algorithm)
            self._classes[name] = algorithm
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


ALGORITHMS: Mapping[str, type[Algorithm]] = _Registry()

__all__ = ["ALGORITHMS", "DYNAMIC", "WHERE", "Algorithm", "modules"]
