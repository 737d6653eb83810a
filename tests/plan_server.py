"""Snakemake's own command line (`parse_args`, `args_to_api`) in one process, a request per line: the tests' dry
runs and `--summary` calls (tests/conftest.py, `snakemake`). A plan of the tiny study takes about 0.1 s here; as a
process of its own it takes about 4 s of CPU, most of it starting Python, Snakemake, its plugins and torch.

Request: {"workdir": ..., "argv": [...]} on stdin; reply: {"returncode": ..., "stdout": ..., "stderr": ...}.
"""
import contextlib
import io
import json
import os
import sys

from snakemake.cli import args_to_api, parse_args, print_exception


def run(workdir: str, argv: list[str]) -> dict:
    out, err = io.StringIO(), io.StringIO()
    os.chdir(workdir)  # as a process started in the work folder
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parser, args = parse_args(argv)
            code = 0 if args_to_api(args, parser) else 1
        except SystemExit as e:  # argparse's errors and --help
            code = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # as snakemake's main() reports it
            print_exception(e)
            code = 1
    return {"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to stdout (a child process, C code) cannot garble the replies
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(run(request["workdir"], request["argv"])), file=replies, flush=True)


if __name__ == "__main__":
    main()
