"""The command line, or a script that wraps it, in a process of its own that does not pay the imports: a fork of
multiprocessing's forkserver, which imports the package once (about 2.4 s of CPU a process otherwise). The fault
tests start, kill and resume dozens of such processes; each is still a real process, killed by a real signal.

The server imports but runs no torch operation, so its forks start as clean as a new process: a thread pool that
has run does not survive a fork.
"""
from __future__ import annotations

import multiprocessing
import os
import runpy
import sys
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["sparsenet.cli", "sparsenet.train", "sparsenet.algorithms"])


def _main(script: str | None, argv: list[str], env: dict[str, str], stderr: str) -> None:
    os.environ.update(env)
    for fd, path in ((1, os.devnull), (2, stderr)):  # what a subprocess with its output captured would see
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = [script or "sparsenet", *argv]
    if script is not None:
        runpy.run_path(script, run_name="__main__")  # it ends in sys.exit(main())
    from sparsenet.cli import main

    sys.exit(main(argv))


class Forked:
    """`sparsenet ARGV` (or `python SCRIPT ARGV`) with `env` added, started at once; as much of subprocess.Popen
    as the tests use. `returncode` is the exit status, or minus the signal that ended it."""

    def __init__(self, argv: list[str], stderr: Path, *, script: Path | None = None, env: dict | None = None):
        self._stderr = stderr
        script = None if script is None else str(script)
        self.process = _CONTEXT.Process(target=_main, args=(script, argv, env or {}, str(stderr)))
        self.process.start()

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        self.process.join()
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.process.pid, sig)

    @property
    def stderr(self) -> str:
        return self._stderr.read_text()
