"""The tiny study on a real SLURM, started in the background (tests/test_slurm.py checks it).

The `study` fixture starts it as soon as the local study has finished, where the SLURM test is selected: the
executor checks the jobs' status with a back-off (10 s more after each check that finds no job done), so most of
its time is waiting, and the other tests of the study run meanwhile.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

SELECTED = os.environ.get("SPARSENET_TEST_SLURM") == "1"  # tests/test_slurm.py runs only then


def is_slurm_test(item) -> bool:
    """Whether a collected test is tests/test_slurm.py's, which checks this study."""
    return item.path.name == "test_slurm.py"


def cancel_first_training_job(cancelled: list, stop: threading.Event) -> None:
    """scancel the first training job that SLURM runs: the workflow must retry it."""
    while not stop.is_set():
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            job, comment = line.split("|", 1)
            if "rule_train" in comment:
                time.sleep(3)  # let it start training, so the retry can resume from a checkpoint or rerun
                subprocess.run(["scancel", job], check=True)
                cancelled.append(job)
                return
        time.sleep(0.5)


def slurm_ids(log: str) -> list[str]:
    """The SLURM job ids a Snakemake log names, one per submitted attempt."""
    return re.findall(r"submitted with SLURM jobid (\d+)", log)


class SlurmStudy:
    """`snakemake --profile workflow/profiles/slurm` on the tiny study in `work`, one training job cancelled."""

    def __init__(self, repo: Path, work: Path):
        self.work, self.started = work, time.time()
        work.mkdir(parents=True)
        self.cancelled: list[str] = []
        self.stop = threading.Event()
        threading.Thread(target=cancel_first_training_job, args=(self.cancelled, self.stop), daemon=True).start()
        cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work),
               "--profile", str(repo / "workflow/profiles/slurm"), "--configfile", str(repo / "tests/config/tiny.yaml"),
               "--slurm-no-account", "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "1",
               "--seconds-between-status-checks", "1"]
        self.log = work / "snakemake.log"  # a file, not a pipe: nobody reads the log until the study ends
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, cwd=work, env={**os.environ, "PYTHONPATH": str(repo)},
                                         start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    def finish(self, limit_s: float) -> tuple[int, str]:
        """(exit code, log) once the study ends; TimeoutError `limit_s` seconds after its start."""
        try:
            self.proc.wait(timeout=max(1.0, self.started + limit_s - time.time()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"the SLURM study did not finish in {limit_s:.0f} s") from None
        finally:
            self.stop.set()
        return self.proc.returncode, self.log.read_text()

    def kill(self) -> None:
        """Stop the study and its jobs, where it still runs (at the end of the session)."""
        self.stop.set()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            submitted = slurm_ids(self.log.read_text())
            if submitted:  # this study's jobs alone
                subprocess.run(["scancel", *submitted], capture_output=True)
