"""Run the sparsenet command line, but die by SIGKILL as a training reaches a chosen step.

$KILL_AT = "EPOCH,BATCH,N": the N-th time any run of the process is about to take step BATCH of epoch EPOCH
(N > 1 reaches a later imp round). Used by the fault tests to kill every algorithm at a known point.
"""
import os
import signal
import sys

from sparsenet import train
from sparsenet.cli import main

EPOCH, BATCH, NTH = (int(v) for v in os.environ["KILL_AT"].split(","))
_train_step = train.Run.train_step
_reached = 0


def train_step_or_die(self, epoch, i, batch):
    global _reached
    if (epoch, i) == (EPOCH, BATCH):
        _reached += 1
        if _reached == NTH:
            os.kill(os.getpid(), signal.SIGKILL)
    _train_step(self, epoch, i, batch)


train.Run.train_step = train_step_or_die
sys.exit(main())
