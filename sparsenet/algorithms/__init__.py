"""Sparse-training algorithms by name, all behind the protocol of `base.Algorithm`."""
from sparsenet.algorithms.base import Algorithm
from sparsenet.algorithms.dense import Dense
from sparsenet.algorithms.dnw import DNW
from sparsenet.algorithms.dnw_freeze import DNWFreeze
from sparsenet.algorithms.imp import IMP
from sparsenet.algorithms.snfs import SNFS

ALGORITHMS: dict[str, type[Algorithm]] = {"dense": Dense, "imp": IMP, "snfs": SNFS, "dnw": DNW,
                                          "dnw_freeze": DNWFreeze, "fixed": Algorithm}

__all__ = ["ALGORITHMS", "Algorithm"]
