"""Command line: one command per kind of job, each taking explicit paths and settings.

Run settings come from an optional run config file (``--config run.yaml``, flat keys) and are overridden by
flags of the same names (``--density 0.05``); ``sparsenet train --help`` lists every key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparsenet import config as config_mod
from sparsenet.config import FIELDS, ConfigError, RunConfig


def _add_run_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="run config file (YAML or JSON, flat keys; run.json works too)")
    p.add_argument("--preset", help=f"a named recipe ({', '.join(config_mod.presets())}); the config file and "
                                    "flags override its keys")
    p.add_argument("--out", type=Path, required=True, help="run folder to write (resumed if it holds a checkpoint)")
    _add_common(p)
    g = p.add_argument_group("run settings (override the config file)",
                             "An algorithm's own settings are flags as well (--prune-rate 0.3 for snfs); "
                             "`sparsenet settings` lists every setting with the algorithms that have it.")
    from sparsenet.settings import describe, kind

    for key in FIELDS:
        g.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None,
                       metavar=kind(key).replace(" ", "_").upper(), help=describe(key))


def _own_flags(extra: list[str]) -> dict[str, str]:
    """The flags not declared on the command line, as settings ('--prune-rate 0.3' or '--prune-rate=0.3' ->
    {'prune_rate': '0.3'}): an algorithm's own, which RunConfig checks against the run's algorithm."""
    out, rest = {}, list(extra)
    while rest:
        flag = rest.pop(0)
        key, sep, value = flag.removeprefix("--").partition("=")
        if not flag.startswith("--") or not key:
            raise ConfigError(f"unexpected argument {flag!r}")
        if not sep:
            if not rest:
                raise ConfigError(f"{flag}: expected a value")
            value = rest.pop(0)
        out[key.replace("-", "_")] = value
    return out


def _run_config(args: argparse.Namespace, **overrides: str) -> RunConfig:
    """The run's settings: the preset, then the config file (and its own preset), then flags, then `overrides`;
    a preset's settings of one algorithm are those of the run's."""
    file = config_mod.load_file(args.config) if args.config else {}
    given = {**{k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}, **_own_flags(args.extra),
             **overrides}
    algorithm = given.get("algorithm", file.get("algorithm"))
    values = {**config_mod.expand_preset({"preset": args.preset}, algorithm),
              **config_mod.expand_preset(file, algorithm)}
    return RunConfig.from_flat({**values, **given})


def _fused_run(text: str) -> dict[str, str]:
    """'seed=0,density=0.05' -> {'seed': '0', 'density': '0.05'}: one run of a fused group (--fuse)."""
    pairs = [item.partition("=") for item in text.split(",")]
    if any(not key or not sep for key, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return {key.strip().replace("-", "_"): value.strip() for key, _, value in pairs}


def cmd_train(args) -> None:
    from sparsenet import provenance, rounds, train

    if args.fuse:
        from sparsenet import fused

        cfgs = [_run_config(args, **run) for run in args.fuse]
        if any(c.algorithm.algorithm == "imp" for c in cfgs):
            raise ConfigError("algorithm: imp trains in rounds (sparsenet imp-round); fuse runs of any other")
        outs = _fused_folders("--out", args.out, args.fuse)
        code = provenance.identity("train", cfgs[0])  # the runs share their algorithm, frozen or not (fused)
        for out, record in zip(outs, fused.train_fused(cfgs, outs, data_root=args.data_root, device=args.device,
                                                       code=code)):
            print(f"{out}: {record.status} test_acc {record.test_acc:.4f} density {record.density:.4f}")
        return
    cfg = _run_config(args)
    code = provenance.identity("train", cfg)
    if cfg.algorithm.algorithm == "imp" and cfg.algorithm.density < 1:
        record = rounds.run_chain(cfg, args.out, data_root=args.data_root, device=args.device, code=code)
    else:
        record = train.train(cfg, args.out, data_root=args.data_root, device=args.device, code=code)
    print(f"{args.out}: {record.status} test_acc {record.test_acc:.4f} density {record.density:.4f} "
          f"wall {record.wall_s:.1f}s")


def _fused_folders(flag: str, template: Path, runs: list[dict[str, str]]) -> list[Path]:
    """The folder of each run of a fused group: `template` with its placeholders filled from the run's --fuse."""
    try:
        return [Path(str(template).format(**run)) for run in runs]
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{flag} {template}: its placeholders must be keys every --fuse sets ({e})") from None


def cmd_imp_round(args) -> None:
    from sparsenet import provenance, rounds

    if args.fuse:  # the same round of several chains
        cfgs = [_run_config(args, **run) for run in args.fuse]
        cfgs = cfgs if args.prev else [c.replace(density=1.0) for c in cfgs]
        outs = _fused_folders("--out", args.out, args.fuse)
        prevs = _fused_folders("--prev", args.prev, args.fuse) if args.prev else [None] * len(cfgs)
        records = rounds.run_rounds(cfgs, outs, prevs=prevs, next_density=args.next_density, data_root=args.data_root,
                                    device=args.device, code=provenance.identity("imp-round", cfgs[0]))
        for out, record in zip(outs, records):
            print(f"{out}: round {record.imp_round} test_acc {record.test_acc:.4f} "
                  f"density {record.density:.4f}")
        return
    cfg = _run_config(args)
    if args.prev is None:
        cfg = cfg.replace(density=1.0)
    record = rounds.run_round(cfg, args.out, prev=args.prev, next_density=args.next_density,
                              data_root=args.data_root, device=args.device, code=provenance.identity("imp-round", cfg))
    print(f"{args.out}: round {record.imp_round} test_acc {record.test_acc:.4f} density {record.density:.4f}")


def cmd_retrain(args) -> None:
    from sparsenet import algorithms, provenance, reinit
    from sparsenet.record import RunFolder
    from sparsenet.variants import VARIANTS

    unknown = [v for v in args.variant if v not in VARIANTS]
    if unknown or len(set(args.variant)) < len(args.variant):
        raise ConfigError(f"--variant: distinct names of {', '.join(VARIANTS)}; got {','.join(args.variant)}")
    for many, key in ((args.variant, "variant"), (args.run, "run")):
        if len(many) > 1 and f"{{{key}}}" not in str(args.out):
            raise ConfigError(f"--out must contain {{{key}}} with several --{key} values, got {args.out}")
    sources = [RunFolder(run).config() for run in args.run]
    labels = sorted({algorithms.label(c.algorithm.algorithm, c.algorithm.freeze_epoch) for c in sources})
    if len(labels) > 1:  # one job's code identity is its algorithm's
        raise ConfigError(f"--run: runs of one algorithm, frozen or not; got {', '.join(labels)}")
    try:
        outs = [[Path(args.out.format(run=run, variant=v)) for v in args.variant] for run in args.run]
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"--out {args.out}: its placeholders may be {{run}} and {{variant}} ({e})") from None
    records = reinit.retrain_variants(args.run, args.variant, outs, data_root=args.data_root, device=args.device,
                                      code=provenance.identity("retrain", sources[0]))
    for run_outs, run_records in zip(outs, records):
        for variant, out, record in zip(args.variant, run_outs, run_records):
            print(f"{out}: {variant} test_acc {record.test_acc:.4f} density {record.density:.4f}")


def cmd_prune_sweep(args) -> None:
    from sparsenet import prune
    from sparsenet.files import write_parquet

    frame = prune.sweep(args.run, args.fractions, methods=args.methods, draws=args.draws,
                        recompute_bn=args.recompute_bn, data_root=args.data_root, device=args.device)
    write_parquet(args.out, frame)
    print(f"{args.out}: {len(frame)} evaluations")


def cmd_emergence(args) -> None:
    from sparsenet import emergence
    from sparsenet.files import write_parquet

    write_parquet(args.out, emergence.emergence(args.run))


def cmd_similarity(args) -> None:
    from sparsenet import similarity, tables

    frame = similarity.pairs(args.runs)
    print(f"{tables.write('similarity', frame, args.out)}: {len(frame)} rows")


def cmd_mask_stats(args) -> None:
    from sparsenet.files import write_parquet
    from sparsenet.wiring import of_run

    frame = of_run(args.run)
    write_parquet(args.out, frame)
    print(frame.to_markdown(index=False, floatfmt=".4f"))


def cmd_analyse(args) -> None:
    from sparsenet import emergence, prune, wiring
    from sparsenet.files import write_parquet
    from sparsenet.record import RunFolder

    for run in map(RunFolder, args.runs):  # run by run: a run's tables are written once its analyses are done
        written = {run.layers: wiring.of_run(run.path)}
        if args.fractions:
            written[run.prune_sweep] = prune.sweep(run.path, args.fractions, methods=args.methods, draws=args.draws,
                                                   recompute_bn=args.recompute_bn, data_root=args.data_root,
                                                   device=args.device)
        if args.emergence:
            written[run.emergence] = emergence.emergence(run.path)
        for path, frame in written.items():
            write_parquet(path, frame)
        print(f"{run.path}: {', '.join(p.name for p in written)}")


def cmd_tables(args) -> None:
    from sparsenet import tables

    written = tables.build_all(args.out, runs=args.runs, retrains=args.retrains, sweeps=args.sweeps,
                               emergence=args.emergence, layers=args.layers)
    print("\n".join(str(p) for p in written.values()))


def cmd_figures(args) -> None:
    from sparsenet import figures

    for note in figures.draw_all(args.tables, args.out):
        print(f"note: {note}", file=sys.stderr)


def cmd_show(args) -> None:
    from sparsenet.show import show

    print(show(args.run), end="")


def cmd_compare(args) -> None:
    from sparsenet.show import compare

    print(compare(args.a, args.b), end="")


def cmd_layers(args) -> None:
    from sparsenet import datasets, models

    try:
        spec = datasets.spec(args.dataset)
        net = models.build(args.model, spec.input_shape, spec.num_classes, init="pytorch")
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    output = models.OUTPUT_LAYER.get(args.model)
    print("| layer | kind | shape | weights |\n|---|---|---|---:|")
    for name, w in models.prunable(net).items():
        kind = ("conv" if w.dim() == 4 else "linear") + (" (output)" if name == output else "")
        print(f"| {name} | {kind} | {'x'.join(map(str, w.shape))} | {w.numel():,} |")


def cmd_settings(args) -> None:
    from sparsenet.settings import markdown

    print(markdown(), end="")


def cmd_algorithms(args) -> None:
    from sparsenet.algorithms import markdown

    print(markdown(), end="")


def cmd_summary(args) -> None:
    from sparsenet import answers, summary
    from sparsenet.files import atomic_path

    frames = summary.summarise(args.tables)
    text = answers.document(frames)
    outputs = ((args.out, text), (args.html, summary.html(frames)), (args.rst, answers.rst(answers.answer(frames))))
    for path, content in outputs:
        if path:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(content)
    print(text)


def cmd_bench(args) -> None:
    from sparsenet import bench

    frame = bench.run(args.out, data_root=args.data_root, device=args.device, quick=args.quick, study=args.study)
    print(f"| section | figure | value | unit | note |\n|---|---|---|---|---|  ({frame['device'].iloc[0]})")
    for r in frame.itertuples():
        print(f"| {r.section} | {r.name} | {r.value:.4g} | {r.unit} | {r.note} |")


def cmd_plan(args) -> None:
    from sparsenet import study

    config = study.load_study(args.configfile)
    frame = study.plan(config, measure=args.measure, device=args.device, steps=args.steps)
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    total = f"{frame['trainings'].sum()} trainings, {frame['epochs'].sum()} epochs"
    if args.measure:
        from sparsenet.execution import resolve_device
        from sparsenet.provenance import device_name

        total += f", {frame['hours'].sum():.1f} device hours on {device_name(resolve_device(args.device))}"
    print(total)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparsenet")
    except PackageNotFoundError:  # run from a checkout without installing it
        return "(not installed)"


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return int(text)


def _add_prune_sweep(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--fractions", type=float, nargs="+", required=required,
                   help="fractions q of the remaining weights" + ("" if required else " (runs the prune sweep)"))
    p.add_argument("--methods", nargs="+", default=["magnitude_global", "magnitude_layerwise", "random"],
                   help="magnitude_global, magnitude_layerwise, random (the control), magnitude_per_layer (one "
                        "layer at a time)")
    p.add_argument("--draws", type=int, default=3, help="random draws per q")
    p.add_argument("--recompute-bn", action="store_true", help="re-estimate batch-norm statistics first")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data folder (default: $SPARSENET_DATA, else ./data)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--threads", type=_positive_int, help="CPU threads for torch (default: torch's choice)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # the run settings' help lists the registered models, which imports torch: the command that runs adds them,
    # so that `sparsenet tables` and the like start in a fraction of the time
    invoked = next((a for a in argv if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(prog="sparsenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"sparsenet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run (any algorithm; imp runs its whole round chain)",
                       description="Train one run into --out. For imp below density 1, the whole chain of "
                                   "rounds runs in --out/rounds and the last round's files become the run.")
    if invoked == "train":
        _add_run_settings(p)
    p.add_argument("--fuse", type=_fused_run, action="append", metavar="KEY=VALUE,...",
                   help="one run of a fused group, by the settings it overrides (e.g. seed=1,density=0.05); "
                        "repeat it for each run: they train at once as one model (sparsenet.fused), each into "
                        "--out with its values in the placeholders (e.g. 'runs/d{density}/s{seed}')")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("imp-round", help="train one lottery-ticket round and prune for the next",
                       description="Train one imp round into --out: round 0 (dense) without --prev, else from "
                                   "--prev's next mask and rewind weights; then write next_mask.safetensors "
                                   "at --next-density.")
    if invoked == "imp-round":
        _add_run_settings(p)
    p.add_argument("--prev", type=Path, help="the previous round's folder (omit for round 0)")
    p.add_argument("--next-density", type=float, help="density of the next round's mask (omit for the last round)")
    p.add_argument("--fuse", type=_fused_run, action="append", metavar="KEY=VALUE,...",
                   help="one chain of several trained at once (e.g. seed=1), repeated for each: this round of "
                        "every chain as one fused model, --out and --prev with placeholders (e.g. 's{seed}/r03')")
    p.set_defaults(func=cmd_imp_round)

    p = sub.add_parser("retrain", help="retrain a run under its final mask with weights reset by a variant (E1)")
    p.add_argument("--run", type=Path, required=True, nargs="+",
                   help="the trained run folder, or several of one algorithm: their retrainings train as one group")
    p.add_argument("--variant", required=True, type=lambda s: s.split(","), metavar="V1,V2,...",
                   help="one or more of sparsenet.variants.VARIANTS; several train as one fused group")
    p.add_argument("--out", required=True,
                   help="run folder to write; with several variants it contains {variant}, with several runs {run} "
                        "(the run's folder): '{run}/reinit/{variant}'")
    _add_common(p)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("prune-sweep", help="prune a trained run further and evaluate, without retraining (E2)")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    _add_prune_sweep(p, required=True)
    _add_common(p)
    p.set_defaults(func=cmd_prune_sweep)

    p = sub.add_parser("emergence", help="compare every snapshot of a run with its final mask (E3)")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.set_defaults(func=cmd_emergence)

    p = sub.add_parser("similarity", help="overlap and IoU of final masks between runs, against chance (E5)",
                       description="Compare the final masks of every pair of runs with the same model and "
                                   "density; write the E5 table.")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders")
    p.add_argument("--out", type=Path, required=True, help="folder for the table (similarity.parquet)")
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("mask-stats", help="per layer of a run's final mask: density and wiring (E6: dead units, "
                       "effective density, fan-in spread)")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.set_defaults(func=cmd_mask_stats)

    p = sub.add_parser("analyse", help="the analyses of trained runs in one process: wiring (E6), and where asked "
                                       "the prune sweep (E2) and emergence (E3)",
                       description="For each run, write into its folder layers.parquet (as mask-stats does), with "
                                   "--fractions prune_sweep.parquet (as prune-sweep does) and with --emergence "
                                   "emergence.parquet (as emergence does). The workflow runs one such job per "
                                   "group of runs: one process start for all their analyses.")
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="trained run folders")
    _add_prune_sweep(p, required=False)
    p.add_argument("--emergence", action="store_true", help="compare every snapshot with the final mask (E3)")
    _add_common(p)
    p.set_defaults(func=cmd_analyse)

    p = sub.add_parser("tables", help="collect per-run outputs into the study's Parquet tables")
    p.add_argument("--out", type=Path, required=True, help="folder for the tables")
    for name, what in [("runs", "trained run folders"), ("retrains", "retraining run folders"),
                       ("sweeps", "prune-sweep Parquet files"), ("emergence", "emergence Parquet files"),
                       ("layers", "mask-stats Parquet files")]:
        p.add_argument(f"--{name}", type=Path, nargs="*", default=[], help=what)
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("figures", help="draw every figure from the tables")
    p.add_argument("--tables", type=Path, required=True, help="folder holding the tables")
    p.add_argument("--out", type=Path, required=True, help="folder for the figures")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("show", help="a run at a glance: results, settings, density per layer, history",
                       description="Print a finished run's results, settings, per-layer density and history.")
    p.add_argument("run", type=Path, help="a run folder (holding run.json)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("compare", help="two runs side by side: the settings that differ, results, mask overlap",
                       description="Print the settings in which two runs differ, both runs' results and the "
                                   "overlap of their final masks, total and per layer.")
    p.add_argument("a", type=Path, help="a run folder")
    p.add_argument("b", type=Path, help="another run folder")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("layers", help="a model's prunable layers by the names settings take (dense_layers, ...)",
                       description="Print a model's prunable weights: name, kind, shape, number of weights.")
    p.add_argument("model", help="a registered model or 'package.module:function'")
    p.add_argument("--dataset", default="mnist",
                   help="a built-in dataset or 'package.module:function' (sets the input shape and classes)")
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("settings", help="every run setting: section, type, default, allowed values, meaning",
                       description="Print the table of run settings (Markdown), as README shows it.")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("algorithms", help="every algorithm: whether its mask changes, whether it freezes, what it is",
                       description="Print the table of algorithms (Markdown), as README shows it; each is the module "
                                   "of its name in sparsenet/algorithms.")
    p.set_defaults(func=cmd_algorithms)

    p = sub.add_parser("summary", help="the four questions answered, and each experiment's numbers, from the tables",
                       description="Print the four questions with their answers (sparsenet.answers), then one "
                       "Markdown table per experiment (E0-E6), from the Parquet tables alone: each number a mean "
                       "over seeds with its 95%% t-interval and n.")
    p.add_argument("--tables", type=Path, default=Path("results/tables"), help="folder holding the tables")
    p.add_argument("--out", type=Path, help="also write the Markdown here")
    p.add_argument("--html", type=Path, help="also write an HTML page here (the report's summary)")
    p.add_argument("--rst", type=Path, help="also write the four answers here in reStructuredText (the report's "
                   "first page)")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("bench", help="measure the pipeline: trainer vs a reference loop, algorithm costs, overheads",
                       description="Print the benchmark table (Markdown) and write it as OUT/bench.parquet.")
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    p.add_argument("--quick", action="store_true", help="fewer and smaller measurements")
    p.add_argument("--study", action="store_true", help="also time the default study end to end (minutes)")
    _add_common(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plan", help="what a study costs: trainings, epochs, and device hours from measured epochs",
                       description="Count a study's trainings and epochs as the workflow plans them; with "
                                   "--measure, time each model's kinds of training here and estimate device hours.")
    p.add_argument("--configfile", type=Path, default=Path("config.yaml"), help="the study config")
    p.add_argument("--measure", action="store_true", help="time a few steps per model and kind on --device")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    _add_common(p)
    p.set_defaults(func=cmd_plan)

    args, extra = parser.parse_known_args(argv)
    if extra and not hasattr(args, "preset"):  # only commands that take run settings take an algorithm's own
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    from sparsenet.errors import InputError

    try:
        args.func(args)
    except InputError as e:
        print(f"sparsenet {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
