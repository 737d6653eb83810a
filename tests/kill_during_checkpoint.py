"""Run the sparsenet command line, but die by SIGKILL halfway through writing checkpoint number $KILL_AT.

Used by the fault tests: the half-written file is the temporary one, so the run must resume from the last
complete checkpoint.
"""
import os
import signal
import sys

import torch

from sparsenet.cli import main

KILL_AT = int(os.environ["KILL_AT"])
_save = torch.save
_count = 0


def save_then_die(obj, path):
    global _count
    _count += 1
    _save(obj, path)
    if _count == KILL_AT:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)


torch.save = save_then_die
sys.exit(main())
