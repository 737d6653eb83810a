"""Sparse-training algorithms by name, all behind the protocol of `base.Algorithm`.

`<name>_freeze` is a dynamic algorithm whose mask is frozen after `freeze_epoch` epochs (sparsenet.algorithms.freeze).
"""
from sparsenet.algorithms.base import Algorithm
from sparsenet.algorithms.dense import Dense
from sparsenet.algorithms.dnw import DNW
from sparsenet.algorithms.freeze import freezing
from sparsenet.algorithms.gmp import GMP
from sparsenet.algorithms.grasp import GraSP
from sparsenet.algorithms.imp import IMP
from sparsenet.algorithms.magnitude_init import MagnitudeInit
from sparsenet.algorithms.rigl import RigL
from sparsenet.algorithms.set import SET
from sparsenet.algorithms.snfs import SNFS
from sparsenet.algorithms.snip import SNIP
from sparsenet.algorithms.static import Static
from sparsenet.algorithms.synflow import SynFlow

DYNAMIC: dict[str, type[Algorithm]] = {"snfs": SNFS, "dnw": DNW, "set": SET, "rigl": RigL}  # freezable
ALGORITHMS: dict[str, type[Algorithm]] = {
    "dense": Dense, "imp": IMP, **DYNAMIC, **{f"{n}_freeze": freezing(cls) for n, cls in DYNAMIC.items()},
    "static": Static, "gmp": GMP, "snip": SNIP, "grasp": GraSP, "synflow": SynFlow, "magnitude_init": MagnitudeInit,
    "fixed": Algorithm}

__all__ = ["ALGORITHMS", "DYNAMIC", "Algorithm"]
