"""The workflow on a real SLURM: every job through sbatch, a cancelled job recovered, the same tables.

Runs where SPARSENET_TEST_SLURM=1 says a SLURM is up (CI starts one with tests/slurm/cluster.sh); there, a
cluster that does not answer is a failure, not a skip.
"""
import re

import pandas as pd
import pytest

from sparsenet.tables import SCHEMAS

from .conftest import table
from .slurm_study import SELECTED
from .slurm_study import slurm_ids as submitted

pytestmark = pytest.mark.skipif(not SELECTED,
                                reason="needs SPARSENET_TEST_SLURM=1 and a running SLURM (tests/slurm/cluster.sh)")
LOCAL_RULES = {"tables", "figures", "summary", "similarity", "imp_select", "all"}


def test_study_on_slurm_matches_the_local_run(study, slurm_study):
    repo, local = study
    try:
        code, log = slurm_study.finish(limit_s=1200)
    except TimeoutError as e:
        pytest.fail(str(e))
    assert code == 0, log[-5000:]

    slurm_ids = submitted(log)
    local_jobs = re.findall(r"^localrule (\w+):", log, flags=re.M)
    remote_jobs = re.findall(r"^rule (\w+):", log, flags=re.M)
    assert set(local_jobs) == LOCAL_RULES and not set(remote_jobs) & LOCAL_RULES
    # every other job went through sbatch, one SLURM id per attempt; the cancelled one failed and ran again.
    # The tiny study's 14: 4 trainings, 3 imp rounds, 3 retrain jobs (each trains one run's variants as one
    # fused group; imp's job records its rewind) and 4 analysis jobs (one per masked label: one run each).
    assert len(set(slurm_ids)) == len(remote_jobs) == 14 + 1
    cancelled = slurm_study.cancelled
    assert cancelled and cancelled[0] in slurm_ids
    assert re.search(rf"SLURM-job '{cancelled[0]}' failed", log)
    for name in SCHEMAS:
        pd.testing.assert_frame_equal(table(slurm_study.work, name), table(local, name))
