"""The workflow on a real SLURM: every job through sbatch, a cancelled job recovered, the same tables.

Runs where SPARSENET_TEST_SLURM=1 says a SLURM is up (CI starts one with tests/slurm/cluster.sh); there, a
cluster that does not answer is a failure, not a skip.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from sparsenet.tables import SCHEMAS

from .conftest import table

pytestmark = pytest.mark.skipif(os.environ.get("SPARSENET_TEST_SLURM") != "1",
                                reason="needs SPARSENET_TEST_SLURM=1 and a running SLURM (tests/slurm/cluster.sh)")
LOCAL_RULES = {"tables", "figures", "summary", "similarity", "imp_select", "record_rewind", "all"}


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


def test_study_on_slurm_matches_the_local_run(study, tmp_path):
    assert subprocess.run(["sinfo"], capture_output=True).returncode == 0, "SLURM does not answer"
    repo, local = study
    work = tmp_path / "work"
    work.mkdir()
    cancelled: list[str] = []
    stop = threading.Event()
    canceller = threading.Thread(target=cancel_first_training_job, args=(cancelled, stop), daemon=True)
    canceller.start()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(work),
           "--profile", str(repo / "workflow/profiles/slurm"), "--configfile", str(repo / "tests/config/tiny.yaml"),
           "--slurm-no-account", "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "1",
           "--seconds-between-status-checks", "1"]  # the plugin adds 10 s after each check that finds no job done
    proc = subprocess.Popen(cmd, cwd=work, env={**os.environ, "PYTHONPATH": str(repo)}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        log, _ = proc.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the SLURM study did not finish in 20 minutes")
    finally:
        stop.set()
    assert proc.returncode == 0, log[-5000:]

    slurm_ids = re.findall(r"submitted with SLURM jobid (\d+)", log)
    local_jobs = re.findall(r"^localrule (\w+):", log, flags=re.M)
    remote_jobs = re.findall(r"^rule (\w+):", log, flags=re.M)
    assert set(local_jobs) == LOCAL_RULES and not set(remote_jobs) & LOCAL_RULES
    # every other job went through sbatch, one SLURM id per attempt; the cancelled one failed and ran again.
    # The tiny study's 19: 4 trainings, 3 imp rounds, 3 retrain jobs (each trains one run's variants as one
    # fused group; imp's rewind is recorded locally), 3 sweeps, 2 emergence and 4 mask_stats jobs.
    assert len(set(slurm_ids)) == len(remote_jobs) == 19 + 1
    assert cancelled and cancelled[0] in slurm_ids
    assert re.search(rf"SLURM-job '{cancelled[0]}' failed", log)
    for name in SCHEMAS:
        pd.testing.assert_frame_equal(table(work, name), table(local, name))
