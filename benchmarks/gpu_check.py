"""The GPU check: one script, one GPU, at most 8 minutes; prints one table and writes it under --out.

    python benchmarks/gpu_check.py --out OUT [--data-root DIR] [--budget-s 480]
    python benchmarks/gpu_check.py --out OUT --smoke          # seconds on a CPU: every section, tiny sizes

Every timing warms its arms up and interleaves them, the order reversed every other round, and reports medians
(sparsenet.bench.interleaved). Sections (each row names its unit; the header names the GPU and the versions):
  1 throughput   CIFAR-10 img/s of the trainer for ResNet-20, ResNet-18 and VGG-16, for dense / imp (a round
                 under a fixed mask) / snfs / dnw / dnw_freeze (after its freeze), at density 0.1, with the
                 default settings (fp32, deterministic), with bf16 + channels_last (deterministic), and with
                 those and cudnn autotuning (not deterministic); dnw's step time over dense's
  2 top-k        what dnw's per-step top-k over ResNet-18's layers costs
  3 reference    ResNet-18 with a DataLoader loop written the usual way (PIL transforms, workers) vs the trainer
  4 fused        8 LeNet-300-100 runs fused vs one after another (sparsenet bench, 2b); per-run img/s of fused
                 groups of N = 1, 4, 8, 16, 32 ResNet-20, VGG-16 and ResNet-18 runs on CIFAR-10, dense and under a
                 fixed mask, in the study's setting (N = 1 is a single run's fused path), with the step captured as a
                 CUDA graph and without
  5 determinism  the same ResNet-20 dnw run twice: identical bytes with deterministic on, and with it off
  6 accuracy     ResNet-20, 15 epochs, bf16+cl+tuned: dense and dnw at 10%: test accuracy and wall time
  7 cost         the CIFAR-10 study (config/cifar10.yaml) in device hours: from the single-run epoch times of
                 section 1, and as `sparsenet plan --measure` gives it (its jobs' fused groups, timed here)
  8 compile      ResNet-18 dense with torch.compile, after compilation
A section that would overrun --budget-s is skipped and says so; a section that fails prints why and the rest go on.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sparsenet import algorithms, bench, models, provenance, study  # noqa: E402
from sparsenet.config import RunConfig  # noqa: E402
from sparsenet.execution import resolve_device  # noqa: E402
from sparsenet.files import write_parquet  # noqa: E402
from sparsenet.graph import WARMUP  # noqa: E402
from sparsenet.masks import layer_counts, random_for_model, topk_mask  # noqa: E402
from sparsenet.record import RunFolder  # noqa: E402
from sparsenet.train import Run, load_data, train  # noqa: E402

SETTINGS = {"fp32": {}, "bf16+cl": {"precision": "bf16", "channels_last": True},
            "bf16+cl+tuned": {"precision": "bf16", "channels_last": True, "deterministic": False}}
FAST = SETTINGS["bf16+cl+tuned"]
ALGORITHMS = ("dense", "imp", "snfs", "dnw", "dnw_freeze")
DENSITY = 0.1


class Check:
    def __init__(self, args):
        self.args, self.smoke = args, args.smoke
        self.dev = resolve_device(args.device)
        self.rows = bench.Rows(self.dev)
        self.started = time.perf_counter()
        self.step_s: dict[tuple[str, str, str], float] = {}  # (model, algorithm, setting) -> seconds per step
        self.eval_s: dict[tuple[str, str], float] = {}
        self.out = Path(args.out)
        self.batch = 4 if self.smoke else 128

    def cfg(self, **changes) -> RunConfig:
        base = {"dataset": "cifar10", "model": "resnet20", "epochs": 15, "batch_size": self.batch, "lr": 0.1,
                "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "schedule": "cosine",
                "snapshot_fractions": (), "train_subset": 512 if self.smoke else 0}
        return RunConfig.from_flat({**base, **changes})

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def section(self, name: str, estimate_s: float, fn) -> None:
        if self.elapsed() + estimate_s > self.args.budget_s:
            self.rows.add(name, "skipped", float("nan"), "", f"would overrun the {self.args.budget_s:.0f} s budget")
            return
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # one broken section must not cost the others
            traceback.print_exc()
            self.rows.add(name, "failed", float("nan"), "", f"{type(e).__name__}: {e}"[:200])
        print(f"== {name}: {time.perf_counter() - start:.0f} s (total {self.elapsed():.0f} s)", file=sys.stderr,
              flush=True)
        self.save()

    def save(self) -> None:
        frame = pd.DataFrame(self.rows.rows)
        write_parquet(self.out / "gpu_check.parquet", frame)
        (self.out / "gpu_check.md").write_text(markdown(frame, self.header))

    # --- 1 --------------------------------------------------------------------------------------------------
    def throughput(self) -> None:
        """Every arm (algorithm) of a model and setting built at once, warmed up, then timed in interleaved rounds
        (order reversed every other round), the median of the rounds: no arm gains from running first or last."""
        steps, repeats = (2, 1) if self.smoke else (20, 5)
        model_list = ["resnet20"] if self.smoke else ["resnet20", "resnet18", "vgg16"]
        data = load_data(self.cfg(), self.dev, self.args.data_root)
        for model in model_list:
            for setting, extra in SETTINGS.items():  # one setting at a time: its determinism flags are global
                runs = {algorithm: self.run_for(model, algorithm, data, extra) for algorithm in ALGORITHMS}
                seconds = bench.interleaved({a: functools.partial(study.time_steps, run, steps, 2)
                                             for a, run in runs.items()}, repeats)
                for algorithm, s in seconds.items():
                    self.step_s[model, algorithm, setting] = s
                    self.rows.add("1 throughput", f"{model} {algorithm} {setting}", self.batch / s, "img/s",
                                  f"median of {repeats}" + (", after the freeze" if algorithm == "dnw_freeze" else ""))
                start = time.perf_counter()  # one evaluation per epoch, in the cost of section 7
                if not self.smoke:
                    runs["dense"].evaluate(runs["dense"].test_split)
                self.eval_s[model, setting] = time.perf_counter() - start
                del runs
                ratio = self.step_s[model, "dnw", setting] / self.step_s[model, "dense", setting]
                self.rows.add("1 throughput", f"{model} dnw step / dense step, {setting}", ratio, "x", "goal <= 1.3")

    def run_for(self, model: str, algorithm: str, data, extra: dict, seed: int = 0) -> Run:
        """A fresh run in a temporary folder, ready to step: imp is a round under a fixed mask, dnw_freeze frozen."""
        run_settings = algorithms.from_label("fixed" if algorithm == "imp" else algorithm)
        cfg = self.cfg(model=model, **run_settings, density=1.0 if algorithm == "dense" else DENSITY, seed=seed,
                       **extra)
        mask = (random_for_model(model, "cifar10", DENSITY, cfg.algorithm.distribution, seed=seed)
                if algorithm == "imp" else None)
        run = Run(cfg, Path(tempfile.mkdtemp(dir=self.args.scratch)), self.dev, data, mask=mask)
        if algorithm == "dnw_freeze":
            run.algo.end_of_epoch(cfg.algorithm.freeze_epoch, run.optimizer)
        return run

    # --- 2 --------------------------------------------------------------------------------------------------
    def topk(self) -> None:
        torch.manual_seed(0)
        net = models.build("resnet20" if self.smoke else "resnet18", (3, 32, 32), 10).to(self.dev)
        weights = models.prunable(net)
        counts = layer_counts({n: w.shape for n, w in weights.items()}, DENSITY, "uniform")

        def once():
            for n, w in weights.items():
                torch.where(topk_mask(w.detach().abs(), counts[n]), w.detach(), 0.0)
        ms = bench._timed(once, self.dev, repeats=3 if self.smoke else 50)
        self.rows.add("2 top-k", "dnw top-k of every layer of resnet18 at density 0.1", ms, "ms per step")

    # --- 3 --------------------------------------------------------------------------------------------------
    def reference(self) -> None:
        model = "resnet20" if self.smoke else "resnet18"
        cfg = self.cfg(model=model, algorithm="fixed", density=DENSITY, epochs=1)
        mask = random_for_model(model, "cifar10", DENSITY, cfg.algorithm.distribution)
        workers = 0 if self.smoke else max(1, min(15, (os.cpu_count() or 2) - 1))
        steps = 8 if self.smoke else 300
        if self.dev.type == "cuda":  # as a script written the usual way runs: PyTorch's default kernel choices
            torch.backends.cudnn.benchmark = torch.backends.cudnn.deterministic = False
            torch.use_deterministic_algorithms(False)
        ref = bench.reference_throughput(cfg, mask, self.dev, self.args.data_root, workers, steps)
        self.rows.add("3 reference", f"{model} DataLoader loop, PIL transforms, {workers} workers", ref, "img/s",
                      "fp32, PyTorch's default cudnn settings")
        for setting in SETTINGS:
            own = self.batch / self.step_s[model, "imp", setting]
            self.rows.add("3 reference", f"{model} trainer, fixed mask, {setting}", own, "img/s")
            self.rows.add("3 reference", f"{model} trainer / reference, {setting}", own / ref, "x", "goal >= 2")

    # --- 4 --------------------------------------------------------------------------------------------------
    def fused(self) -> None:
        """Per-run img/s of fused groups of N runs (the study's training jobs), dense and under a fixed mask, with
        the study's setting (bf16 + channels_last, deterministic), with the step captured as a CUDA graph and
        without: the two groups of each N built together and timed in interleaved rounds, medians."""
        from sparsenet.fused import FusedRuns

        bench.bench_fused(self.rows, self.dev, self.args.data_root, quick=self.smoke, runs=2 if self.smoke else 8)
        sizes, steps, repeats = ((1, 2), 2, 1) if self.smoke else ((1, 4, 8, 16, 32), 8, 5)
        data = load_data(self.cfg(), self.dev, self.args.data_root)
        for model in ["resnet20"] if self.smoke else ["resnet20", "vgg16", "resnet18"]:
            for algorithm in ("dense", "imp"):
                for n in sizes:
                    name = f"{model} {algorithm}, {n} fused runs"
                    try:
                        groups = {arm: FusedRuns([self.run_for(model, algorithm, data, SETTINGS["bf16+cl"], seed=s)
                                                  for s in range(n)], graph=arm == "graph")
                                  for arm in ("graph", "eager")}
                        # warm-up steps: the graph's eager ones and its capture come before the timed rounds
                        seconds = bench.interleaved({arm: functools.partial(study.time_steps, g, steps, WARMUP + 2)
                                                     for arm, g in groups.items()}, repeats)
                    except torch.OutOfMemoryError:
                        self.rows.add("4 fused", name, float("nan"), "", "out of GPU memory")
                        break
                    finally:
                        groups = None  # freed (their graphs' memory too) before the next size is built
                    for arm in ("eager", "graph"):
                        self.rows.add("4 fused", f"{name}: per run, {arm}", n * self.batch / seconds[arm], "img/s",
                                      f"bf16+cl, median of {repeats}; 1 = a single run's fused path")
                    self.rows.add("4 fused", f"{name}: graph / eager", seconds["eager"] / seconds["graph"], "x",
                                  "the step captured as a CUDA graph over the same step eagerly")

    # --- 5 --------------------------------------------------------------------------------------------------
    def determinism(self) -> None:
        for deterministic in (True, False):
            cfg = self.cfg(algorithm="dnw", density=DENSITY, epochs=1, train_subset=512 if self.smoke else 2560,
                           deterministic=deterministic)
            files = []
            for _ in range(2):
                out = Path(tempfile.mkdtemp(dir=self.args.scratch)) / "run"
                train(cfg, out, data_root=self.args.data_root, device=str(self.dev))
                files.append([f.read_bytes() for f in (RunFolder(out).final, RunFolder(out).mask)])
            same = [a == b for a, b in zip(*files)]
            self.rows.add("5 determinism", f"resnet20 dnw twice, deterministic={deterministic}: identical weights",
                          float(same[0]), "1 = yes")
            self.rows.add("5 determinism", f"resnet20 dnw twice, deterministic={deterministic}: identical masks",
                          float(same[1]), "1 = yes")

    # --- 6 --------------------------------------------------------------------------------------------------
    def accuracy(self) -> None:
        epochs = 1 if self.smoke else 15
        for label, changes in (("dense bf16+cl+tuned", FAST),
                               (f"dnw d={DENSITY} bf16+cl+tuned", {"algorithm": "dnw", "density": DENSITY, **FAST})):
            cfg = self.cfg(epochs=epochs, warmup_epochs=0 if self.smoke else 1, **changes)
            out = Path(tempfile.mkdtemp(dir=self.args.scratch)) / "run"
            record = train(cfg, out, data_root=self.args.data_root, device=str(self.dev))
            self.rows.add("6 accuracy", f"resnet20 {label}, {epochs} epochs: test accuracy", record.test_acc * 100,
                          "%")
            self.rows.add("6 accuracy", f"resnet20 {label}, {epochs} epochs: wall time", record.wall_s, "s")

    # --- 7 --------------------------------------------------------------------------------------------------
    def cost(self) -> None:
        config = study.load_study(REPO / "config" / "cifar10.yaml")
        frame = study.trainings(config)
        models_here = {m for m, _, _ in self.step_s}
        speeds = {"dense": "dense", "fixed": "imp", "snfs": "snfs", "dnw": "dnw"}
        for setting in SETTINGS:
            hours = 0.0
            for row in frame.itertuples():
                if row.model not in models_here:
                    continue
                steps = -(-(512 if self.smoke else 50000) // self.batch)
                epoch = {s: steps * self.step_s[row.model, speeds[s], setting] + self.eval_s[row.model, setting]
                         for s in row.steps_by_speed}
                hours += row.trainings * sum(e * epoch[s] for s, e in row.steps_by_speed.items()) / 3600
            self.rows.add("7 cost", f"config/cifar10.yaml ({frame['trainings'].sum()} trainings), {setting}", hours,
                          "device hours", f"models measured: {', '.join(sorted(models_here))}")
        measured = {**config, "models": sorted(models_here)}
        if self.smoke:  # the smallest plan that still measures: one run of dense and of an imp round, small steps
            measured.update(seeds=[0], densities=[0.1], algorithms=["imp"], freeze_epochs=[],
                            reinit={"variants": ["reinit"]},
                            recipe={**measured["recipe"], "batch_size": self.batch, "train_subset": 512})
        planned = study.plan(measured, measure=True, device=str(self.dev), steps=2 if self.smoke else 20,
                             eval_samples=64 if self.smoke else 0)
        self.rows.add("7 cost", f"sparsenet plan --measure, config/cifar10.yaml, {', '.join(sorted(models_here))}",
                      planned["hours"].sum(), "device hours", "fused groups as the study's jobs train them")

    # --- 8 --------------------------------------------------------------------------------------------------
    def compile(self) -> None:
        model = "resnet20" if self.smoke else "resnet18"
        data = load_data(self.cfg(), self.dev, self.args.data_root)
        cfg = self.cfg(model=model, compile=True)
        run = Run(cfg, Path(tempfile.mkdtemp(dir=self.args.scratch)), self.dev, data)
        start = time.perf_counter()
        study.time_steps(run, 1, 2)  # compiles
        self.rows.add("8 compile", f"{model} dense fp32 compile: compilation", time.perf_counter() - start, "s")
        seconds = study.time_steps(run, 2 if self.smoke else 60, 1 if self.smoke else 10)
        self.rows.add("8 compile", f"{model} dense fp32 compiled", self.batch / seconds, "img/s",
                      f"uncompiled: {self.batch / self.step_s[model, 'dense', 'fp32']:.0f}")

    @property
    def header(self) -> str:
        v = provenance.versions()
        cuda = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if self.dev.type == "cuda" else ""
        return (f"GPU check on {provenance.device_name(self.dev)}; torch {v['torch']}, torchvision {v['torchvision']}"
                f" {cuda}; sparsenet commit {provenance.git_commit()[:10]}; {self.elapsed():.0f} s")


def markdown(frame: pd.DataFrame, header: str) -> str:
    lines = [header, "", "| section | figure | value | unit | note |", "|---|---|---|---|---|"]
    lines += [f"| {r.section} | {r.name} | {r.value:.4g} | {r.unit} | {r.note} |" for r in frame.itertuples()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_check.md and gpu_check.parquet")
    p.add_argument("--data-root", help="data folder with cifar10.npz and MNIST (default: $SPARSENET_DATA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--budget-s", type=float, default=480, help="skip sections that would end after this")
    p.add_argument("--smoke", action="store_true", help="every section at tiny sizes (a CPU test of the script)")
    p.add_argument("--sections", default="1,2,3,4,5,6,7,8", help="the sections to run, by number")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        args.scratch = scratch
        check = Check(args)
        print(check.header, file=sys.stderr, flush=True)
        # estimates (s) on an H100-class GPU, from which a section is skipped near the budget
        # the fused groups and the study's cost first: what the CIFAR-10 study's budget rests on
        for name, estimate, fn in [("1 throughput", 90, check.throughput), ("4 fused", 300, check.fused),
                                   ("7 cost", 150, check.cost), ("2 top-k", 5, check.topk),
                                   ("5 determinism", 20, check.determinism), ("3 reference", 40, check.reference),
                                   ("6 accuracy", 200, check.accuracy), ("8 compile", 60, check.compile)]:
            if name.split()[0] in args.sections.split(","):
                check.section(name, 0 if args.smoke else estimate, fn)
        check.save()
    print((args.out / "gpu_check.md").read_text())


if __name__ == "__main__":
    main()
