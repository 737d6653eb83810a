"""Command line: one command per kind of job, each taking explicit paths and settings.

Run settings come from an optional run config file (``--config run.yaml``, flat keys) and are overridden by
flags of the same names (``--density 0.05``); ``sparsenet train --help`` lists every key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsenet import config as config_mod
from sparsenet.config import FIELDS, RunConfig


def _add_run_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="run config file (YAML or JSON, flat keys; run.json works too)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write (resumed if it holds a checkpoint)")
    p.add_argument("--data-root", help="data folder (default: $SPARSENET_DATA, else ./data)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    g = p.add_argument_group("run settings (override the config file)")
    for key, type_name in FIELDS.items():
        g.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None, metavar=type_name.upper(),
                       help=f"{key} ({type_name}; lists comma-separated)")


def _run_config(args: argparse.Namespace) -> RunConfig:
    values = config_mod.load_file(args.config) if args.config else {}
    values.update({k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None})
    return RunConfig.from_flat(values)


def cmd_train(args) -> None:
    from sparsenet import rounds, train

    cfg = _run_config(args)
    if cfg.algorithm.algorithm == "imp" and cfg.algorithm.density < 1:
        record = rounds.run_chain(cfg, args.out, data_root=args.data_root, device=args.device)
    else:
        record = train.train(cfg, args.out, data_root=args.data_root, device=args.device)
    print(f"{args.out}: {record['status']} test_acc {record['test_acc']:.4f} density {record['density']:.4f} "
          f"wall {record['wall_s']:.1f}s")


def cmd_imp_round(args) -> None:
    from sparsenet import rounds

    cfg = _run_config(args)
    if args.prev is None:
        cfg = cfg.replace(density=1.0)
    record = rounds.run_round(cfg, args.out, prev=args.prev, next_density=args.next_density,
                              data_root=args.data_root, device=args.device)
    print(f"{args.out}: round {record['imp_round']} test_acc {record['test_acc']:.4f} density {record['density']:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparsenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run (any algorithm; imp runs its whole round chain)",
                       description="Train one run into --out. For imp below density 1, the whole chain of "
                                   "rounds runs in --out/rounds and the last round's files become the run.")
    _add_run_settings(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("imp-round", help="train one lottery-ticket round and prune for the next",
                       description="Train one imp round into --out: round 0 (dense) without --prev, else from "
                                   "--prev's next mask and rewind weights; then write next_mask.safetensors "
                                   "at --next-density.")
    _add_run_settings(p)
    p.add_argument("--prev", type=Path, help="the previous round's folder (omit for round 0)")
    p.add_argument("--next-density", type=float, help="density of the next round's mask (omit for the last round)")
    p.set_defaults(func=cmd_imp_round)

    args = parser.parse_args(argv)
    from sparsenet.checkpoint import CheckpointError
    from sparsenet.config import ConfigError
    from sparsenet.data import DataError
    from sparsenet.masks import MaskFileError

    try:
        args.func(args)
    except (ConfigError, DataError, CheckpointError, MaskFileError) as e:
        print(f"sparsenet {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
