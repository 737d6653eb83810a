"""Started with every Python process while tests/trace is on PYTHONPATH (tests/test_identity.py): a
`python -m sparsenet` process writes the package's modules it imported, at exit, to
$SPARSENET_TRACE_IMPORTS/<pid>.json, with its arguments."""
import atexit
import json
import os
import sys


def _write() -> None:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or spec.name != "sparsenet.__main__":
        return
    modules = sorted({"sparsenet.__main__", *(m for m in sys.modules if m.split(".")[0] == "sparsenet")})
    with open(os.path.join(os.environ["SPARSENET_TRACE_IMPORTS"], f"{os.getpid()}.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "modules": modules}, f)


if os.environ.get("SPARSENET_TRACE_IMPORTS"):
    atexit.register(_write)
