"""The leak check itself: a test that changes process state or the checkout fails, one that restores it passes."""
import subprocess

import pytest

from .conftest import REPO

LEAKY = {
    "threads": "import torch\n\ndef test_it():\n    torch.set_num_threads(torch.get_num_threads() + 1)\n",
    "environment": "import os\n\ndef test_it():\n    os.environ['SPARSENET_LEAK'] = '1'\n",
    "registry": "from sparsenet import models\n\ndef test_it():\n    models.MODELS['leak'] = None\n",
    # an ignored folder the checkout did not have (in a checkout of its own: the suite's workers watch this one)
    "checkout": "from pathlib import Path\n\ndef test_it():\n    Path('leak.egg-info').mkdir()\n",
}
CLEAN = ("import torch\n\ndef test_it(monkeypatch):\n    monkeypatch.setenv('SPARSENET_LEAK', '1')\n"
         "    n = torch.get_num_threads()\n    torch.set_num_threads(1)\n    torch.set_num_threads(n)\n")


@pytest.mark.parametrize("kind", list(LEAKY))
def test_a_test_that_leaks_state_fails(pytester, monkeypatch, kind):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_leaky=LEAKY[kind])
    pytester.makefile("", **{".gitignore": "*.egg-info/\n"})
    subprocess.run(["git", "init", "-q"], cwd=pytester.path, check=True)
    result = pytester.runpytest_subprocess("-p", "tests.leaks", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the test left changed*"])


def test_a_test_that_restores_what_it_changes_passes(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_clean=CLEAN)
    pytester.runpytest_subprocess("-p", "tests.leaks", "-p", "no:cacheprovider").assert_outcomes(passed=1)
