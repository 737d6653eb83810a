"""`sparsenet bench`: the figures that show the pipeline fast, all measured side by side in one process.

Sections: (1) the trainer against a reference loop written the usual way (torchvision dataset, DataLoader,
per-sample transforms, mask multiplied in after each step); (2) each algorithm's step and epoch-end cost
relative to dense, (2b) fused runs against the same runs one after another, (2c) fixed-mask steps on CSR
kernels against dense masked ones, and (2d) DNW's per-step top-k ranked near the last step's against torch.topk
over every weight; (3) the E4 cost model
(weight-gradient work of dnw_freeze vs dnw); (4) pipeline overheads; (5) how cost grows with data, model and
number of jobs. One row per figure, printed and written as Parquet.
"""
from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pandas as pd
import torch
import yaml

from sparsenet import algorithms, datasets, files, models
from sparsenet import data as data_mod
from sparsenet.algorithms.dnw import DNW
from sparsenet.algorithms.imp import prune
from sparsenet.config import RunConfig
from sparsenet.execution import Platform, resolve_device
from sparsenet.files import write_parquet
from sparsenet.masks import Mask, layer_counts, random_for_model, topk_mask
from sparsenet.provenance import device_name
from sparsenet.record import RunFolder
from sparsenet.train import train, weight_grad_macs_per_sample

REPO = Path(__file__).resolve().parents[1]


class Rows:
    def __init__(self, device: torch.device):
        self.rows: list[dict] = []
        self.device = device_name(device)

    def add(self, section: str, name: str, value: float, unit: str, note: str = "") -> float:
        self.rows.append({"section": section, "name": name, "value": float(value), "unit": unit, "note": note,
                          "device": self.device})
        print(f"[{section}] {name}: {value:.4g} {unit} {note}", file=sys.stderr, flush=True)
        return value


def _settings(**changes) -> RunConfig:
    base = {"dataset": "mnist", "model": "lenet300_100", "epochs": 1, "batch_size": 128, "snapshot_fractions": ()}
    return RunConfig.from_flat({**base, **changes})


def _trainer_throughput(cfg: RunConfig, device, data_root, mask: Mask | None = None) -> float:
    """Training samples/s of the trainer (training loop only, as recorded in its history)."""
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", data_root=data_root, device=str(device), mask=mask)
        return float(pd.read_parquet(RunFolder(Path(tmp) / "run").history)["samples_per_s"].iloc[-1])


def reference_throughput(cfg: RunConfig, mask: Mask, device, data_root, workers: int, max_steps: int) -> float:
    """The usual loop: torchvision dataset with per-sample transforms through a DataLoader, mask after each step."""
    from torch.utils.data import DataLoader
    from torchvision import datasets as tv_datasets
    from torchvision import transforms

    name = cfg.data.dataset
    spec = datasets.spec(name)
    mean, std = spec.mean, spec.std
    tf = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    if name == "cifar10":
        tf = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] + tf
    root = datasets.data_root(data_root)
    if name == "cifar10" and (root / "cifar10.npz").exists():
        dataset = NpzCIFAR10(root / "cifar10.npz", transforms.Compose(tf))
    else:
        cls = {"mnist": tv_datasets.MNIST, "fashion_mnist": tv_datasets.FashionMNIST,
               "cifar10": tv_datasets.CIFAR10}[name]
        dataset = cls(str(root), train=True, transform=transforms.Compose(tf))
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    torch.manual_seed(cfg.seed)
    model = models.build(cfg.model.model, spec.input_shape, spec.num_classes).to(device)
    weights = models.prunable(model)
    mask = mask.to(device)
    mask.apply(weights)
    hp = cfg.train
    opt = torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov,
                          weight_decay=hp.weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    seen, start = 0, None
    for step, (x, y) in enumerate(loader):
        if step == 5:  # after warm-up (workers started, caches filled)
            Platform(device).synchronize()
            start, seen = time.perf_counter(), 0
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mask.apply(weights)
        seen += len(y)
        if step == max_steps:
            break
    Platform(device).synchronize()
    return seen / (time.perf_counter() - start)


class NpzCIFAR10(torch.utils.data.Dataset):
    """CIFAR-10's training split from cifar10.npz, item by item as torchvision's CIFAR10 serves it (PIL image)."""

    def __init__(self, path: Path, transform):
        import numpy as np

        images, self.labels = data_mod.npz_split(path, "train")  # decompressed once a process, as the trainer
        self.images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # HWC, as torchvision's CIFAR10 holds it
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def bench_reference(rows: Rows, device, data_root, quick: bool) -> None:
    """Section 1: trainer vs the reference loop, same model, recipe, data, device and mask."""
    cases = [("mnist", "lenet300_100")] + ([("cifar10", "resnet18")] if device.type == "cuda" else [])
    for dataset, model in cases:
        cfg = _settings(dataset=dataset, model=model, algorithm="fixed", density=0.05)
        mask = random_for_model(model, dataset, 0.05, "erk")
        steps = 100 if quick else 400
        speed = {w: reference_throughput(cfg, mask, device, data_root, w, steps) for w in (0, 2)}
        workers = max(speed, key=speed.get)
        # interleaved repeats, compared by their medians: noise on a shared machine hits both loops alike
        refs, ours = [speed[workers]], []
        for rep in range(3):
            ours.append(_trainer_throughput(cfg, device, data_root, mask=mask))
            if rep < 2:
                refs.append(reference_throughput(cfg, mask, device, data_root, workers, steps))
        ref, own = statistics.median(refs), statistics.median(ours)
        label = f"{model} on {dataset}"
        rows.add("1 trainer vs reference", f"{label}: reference loop ({workers} workers, median of 3)", ref,
                 "samples/s")
        rows.add("1 trainer vs reference", f"{label}: trainer (median of 3)", own, "samples/s")
        rows.add("1 trainer vs reference", f"{label}: ratio", own / ref, "x", "goal >= 5 (CPU), >= 2 (GPU)")
    if device.type != "cuda":
        rows.add("1 trainer vs reference", "resnet18 on cifar10", float("nan"), "samples/s", "needs a GPU")


def bench_algorithms(rows: Rows, device, data_root, quick: bool) -> None:
    """Section 2: each algorithm's training-step throughput and epoch-end update time, relative to dense."""
    subset = 20000 if quick else 60000
    dense = _trainer_throughput(_settings(train_subset=subset), device, data_root)
    rows.add("2 algorithm cost", "dense: training", dense, "samples/s")
    for algorithm in ("imp", "snfs", "dnw", "dnw_freeze"):
        extra = {"epochs": 2} if algorithm == "dnw_freeze" else {}
        cfg = _settings(train_subset=subset, density=0.05, **algorithms.from_label(algorithm), **extra)
        mask = random_for_model("lenet300_100", "mnist", 0.05, "erk") if algorithm == "imp" else None
        speed = _trainer_throughput(cfg, device, data_root, mask=mask)
        what = "after the freeze" if algorithm == "dnw_freeze" else "training"
        rows.add("2 algorithm cost", f"{algorithm}: {what}", speed, "samples/s")
        rows.add("2 algorithm cost", f"{algorithm}: step time / dense", dense / speed, "x",
                 "dnw goal <= 1.3 on a GPU" if algorithm == "dnw" else "")
    # epoch-end updates on trained-size tensors: snfs prune/redistribute/regrow, imp's pruning step
    torch.manual_seed(0)
    net = models.build("lenet300_100", (1, 28, 28), 10).to(device)
    weights = models.prunable(net)
    hp = _settings(algorithm="snfs", density=0.05).algorithm
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    snfs = algorithms.get("snfs")(hp, weights, 10, generator=torch.Generator().manual_seed(0))
    net(torch.randn(64, 1, 28, 28, device=device)).sum().backward()
    opt.step()
    rows.add("2 algorithm cost", "snfs: epoch-end update", _timed(lambda: snfs.end_of_epoch(1, opt), device), "ms")
    imp_hp = _settings(algorithm="imp", density=0.05).algorithm
    ones = Mask.ones_like(weights)
    imp_ms = _timed(lambda: prune(weights, ones, 0.8, imp_hp), device)
    rows.add("2 algorithm cost", "imp: pruning step (global)", imp_ms, "ms")


def _training_seconds(out: Path) -> float:
    """A finished run's seconds in its training loops (its history's train_s)."""
    return float(pd.read_parquet(RunFolder(out).history)["train_s"].sum())


def bench_fused(rows: Rows, device, data_root, quick: bool, runs: int = 8) -> None:
    """Section 2b: `runs` runs of LeNet-300-100 as one fused group against the same runs one after another (each
    on its fastest path: CSR kernels for a fixed mask under `sparse_kernels: auto`), side by side, the order of the
    two arms alternating, medians of the repeats. Per-run samples/s = the runs' training samples over the seconds
    their training loops took (set-up and evaluation excluded, as in every samples/s here); wall = whole calls."""
    from sparsenet.fused import train_fused

    n, repeats = (2000, 1) if quick else (6000, 5)
    arms = {"dense": (_settings(train_subset=n), None),
            "dnw, density 0.05": (_settings(algorithm="dnw", density=0.05, train_subset=n), None),
            "fixed mask, density 0.05 (erk)": (_settings(algorithm="fixed", density=0.05, train_subset=n), [
                random_for_model("lenet300_100", "mnist", 0.05, "erk", seed=s)
                for s in range(runs)])}
    for label, (cfg, masks) in arms.items():
        cfgs = [cfg.replace(seed=s) for s in range(runs)]
        speed: dict[str, list[float]] = {"single": [], "fused": []}
        wall: dict[str, list[float]] = {"single": [], "fused": []}
        for repeat in range(repeats + 1):  # the first pass warms both arms up and is not counted
            for arm in ("single", "fused") if repeat % 2 else ("fused", "single"):
                with tempfile.TemporaryDirectory() as tmp:
                    outs = [Path(tmp) / f"s{s}" for s in range(runs)]
                    start = time.perf_counter()
                    if arm == "fused":
                        train_fused(cfgs, outs, data_root=data_root, device=str(device), masks=masks)
                        seconds = _training_seconds(outs[0])
                    else:
                        for k, (c, o) in enumerate(zip(cfgs, outs)):
                            train(c, o, data_root=data_root, device=str(device), mask=masks[k] if masks else None)
                        seconds = sum(_training_seconds(o) for o in outs)
                    if repeat:
                        wall[arm].append(time.perf_counter() - start)
                        speed[arm].append(runs * n / seconds / runs)
        single, fused = statistics.median(speed["single"]), statistics.median(speed["fused"])
        name = f"lenet300_100 {label}"
        rows.add("2b fused runs", f"{name}: {runs} single runs, per run", single, "samples/s")
        rows.add("2b fused runs", f"{name}: {runs} fused runs, per run", fused, "samples/s")
        rows.add("2b fused runs", f"{name}: fused / single (training loops)", fused / single, "x",
                 f"median of {repeats}")
        rows.add("2b fused runs", f"{name}: fused / single (wall of the calls)",
                 statistics.median(wall["single"]) / statistics.median(wall["fused"]), "x", f"median of {repeats}")


# layer densities (fc1, fc2, fc3) of the default study's final masks at density 0.05, seed 0: an imp round at 5%
# and the masks E1 retrains (imp's output layer stays dense; sparse momentum gives fc2 more weights than fc1)
STUDY_MASKS = {"imp round at 0.05 (0.034, 0.176, 1)": (0.0339, 0.1764, 1.0),
               "snfs mask at 0.05 (0.038, 0.116, 1)": (0.0376, 0.1156, 0.998)}


def bench_sparse(rows: Rows, device, data_root, quick: bool) -> None:
    """Section 2c: fixed-mask steps on CSR kernels against the dense masked ones, per mask (LeNet-300-100),
    and dnw_freeze's frozen steps against dnw's: interleaved repeats of the trainer's own step (the first warms
    both arms up), medians."""
    from sparsenet.study import time_steps
    from sparsenet.train import Run, load_data

    if device.type != "cpu":
        rows.add("2c sparse kernels", "CSR kernels", float("nan"), "", "CPU only (dense wins on GPUs)")
        return
    steps, repeats = (20, 1) if quick else (200, 5)
    data = load_data(_settings(), device, data_root)

    def step_s(cfg: RunConfig, mask: Mask | None = None, freeze: bool = False) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            run = Run(cfg, Path(tmp), device, data, mask=mask)
            if freeze:
                run.algo.end_of_epoch(cfg.algorithm.freeze_epoch, run.optimizer)
                run.route_sparse()
            return time_steps(run, steps, 5)

    weights = models.prunable(models.build("lenet300_100", (1, 28, 28), 10))
    masks = {f"erk, density {d:g}": random_for_model("lenet300_100", "mnist", d, "erk") if d < 1 else None
             for d in (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)}
    for label, densities in STUDY_MASKS.items():  # random positions, the layer densities of a study's masks
        counts = {name: round(d * w.numel()) for (name, w), d in zip(weights.items(), densities)}
        masks[label] = Mask.random(weights, counts, torch.Generator().manual_seed(0))
    for label, mask in masks.items():
        algorithm, density = ("fixed", round(mask.density(), 4)) if mask is not None else ("dense", 1.0)
        times = interleaved({mode: functools.partial(step_s, _settings(algorithm=algorithm, density=density,
                                                                       sparse_kernels=mode), mask)
                             for mode in ("off", "auto")}, repeats)
        dense, auto = times["off"], times["auto"]
        label = f"lenet300_100 fixed mask, {label}"
        rows.add("2c sparse kernels", f"{label}: dense masked", 128 / dense, "samples/s")
        rows.add("2c sparse kernels", f"{label}: sparse_kernels auto", 128 / auto, "samples/s")
        rows.add("2c sparse kernels", f"{label}: speed-up", dense / auto, "x", "goal >= 2 at 0.05")
    frozen = _settings(algorithm="dnw", freeze_epoch=1, density=0.05, epochs=2)
    times = interleaved({"dnw": functools.partial(step_s, _settings(algorithm="dnw", density=0.05)),
                         "frozen": functools.partial(step_s, frozen, freeze=True)}, repeats)
    rows.add("2c sparse kernels", "dnw_freeze(1) frozen step / dnw step, density 0.05 (speed-up)",
             times["dnw"] / times["frozen"], "x", "goal >= 2")


def bench_dnw_topk(rows: Rows, device, data_root, quick: bool) -> None:
    """Section 2d: dnw training (LeNet-300-100) with its top-k found near the last step's k-th magnitude, as it
    trains, against torch.topk over every weight at every step (what it did before; the same masks): the trainer's
    samples/s, interleaved repeats, medians."""
    if device.type != "cpu":
        rows.add("2d dnw top-k", "dnw top-k near the last one", float("nan"), "", "CPU only (topk on a GPU)")
        return
    subset, repeats = (2000, 1) if quick else (20000, 5)

    def throughput(cfg: RunConfig, every_weight: bool) -> float:
        if not every_weight:
            return _trainer_throughput(cfg, device, data_root)
        with mock.patch.object(DNW, "_top", lambda self, name, score: topk_mask(score, self._counts[name])):
            return _trainer_throughput(cfg, device, data_root)

    for density in (0.05, 0.2):
        cfg = _settings(algorithm="dnw", density=density, train_subset=subset)
        speed = interleaved({"near": lambda c=cfg: throughput(c, False), "topk": lambda c=cfg: throughput(c, True)},
                            repeats)
        name = f"dnw, density {density}"
        rows.add("2d dnw top-k", f"{name}: torch.topk of every weight", speed["topk"], "samples/s")
        rows.add("2d dnw top-k", f"{name}: ranked near the last k-th value", speed["near"], "samples/s")
        rows.add("2d dnw top-k", f"{name}: speed-up", speed["near"] / speed["topk"], "x", f"median of {repeats}")


def table_cli(doc: str, measure: Callable[..., pd.DataFrame], markdown: Callable[[pd.DataFrame], str],
              device: bool = False) -> None:
    """The command line of a benchmark script behind one of README's tables: measure (--out: the CSV of rows it
    writes), or print the table from committed rows (--markdown); `measure(quick)`, or `measure(device, quick)`."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="CSV of the measured rows to write")
    p.add_argument("--markdown", type=Path, help="print README's table from these rows")
    if device:
        p.add_argument("--device")
    p.add_argument("--quick", action="store_true", help="fewer samples and one repeat (a smoke test)")
    args = p.parse_args()
    if args.markdown:
        print(markdown(pd.read_csv(args.markdown)))
        return
    frame = measure(args.device, args.quick) if device else measure(args.quick)
    if args.out:
        with files.atomic_path(args.out) as tmp:  # a killed benchmark leaves the committed rows as they were
            frame.to_csv(tmp, index=False)
    print(markdown(frame))


def interleaved(arms: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each arm's median over `repeats` rounds of what it measures (e.g. seconds per step), after one uncounted
    round that warms every arm up; the order of the arms reversed every other round, so that drift and a noisy
    neighbour hit them alike."""
    measured: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(repeats + 1):
        for name in list(arms) if r % 2 else list(arms)[::-1]:
            value = arms[name]()
            if r:
                measured[name].append(value)
    return {name: statistics.median(values) for name, values in measured.items()}


def _timed(fn, device, repeats: int = 5) -> float:
    fn()
    Platform(device).synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    Platform(device).synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def bench_cost_model(rows: Rows, epochs: int = 30, density: float = 0.05) -> None:
    """Section 3: weight-gradient multiply-adds of dnw_freeze(k) over a run, as a fraction of dnw's."""
    for model, dataset in (("lenet300_100", "mnist"), ("resnet18", "cifar10")):
        spec = datasets.spec(dataset)
        net = models.build(model, spec.input_shape, spec.num_classes)
        factors = weight_grad_macs_per_sample(net, spec.input_shape, torch.device("cpu"))
        shapes = {n: w.shape for n, w in models.prunable(net).items()}
        dense = sum(factors[n] * s.numel() for n, s in shapes.items())
        for distribution in ("erk", "uniform"):  # ERK keeps small, high-resolution layers denser
            counts = layer_counts(shapes, density, distribution)
            sparse = sum(factors[n] * counts[n] for n in shapes)
            for k in (1, 2, 5, 10):
                frac = (k * dense + (epochs - k) * sparse) / (epochs * dense)
                goal = f"goal for k=1: <= 1/E + density = {1 / epochs + density:.3f}" if k == 1 else ""
                rows.add("3 E4 cost model", f"{model}, {distribution}: dnw_freeze(k={k}) / dnw, {epochs} epochs, "
                         f"density {density}", frac, "fraction", goal)


def _wall(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def bench_pipeline(rows: Rows, data_root, study: bool) -> None:
    """Section 4: per-job start-up, planning the CIFAR-10 study, a no-op rerun, and (optionally) the default study."""
    import os

    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rows.add("4 pipeline", "process start (python -c pass)", _wall([py, "-c", "pass"], REPO), "s")
    rows.add("4 pipeline", "imports of a training job", _wall([py, "-c", "import sparsenet.train, torchvision"], REPO),
             "s")
    start = time.perf_counter()
    data_mod.load(_settings().data, torch.device("cpu"), data_root)
    rows.add("4 pipeline", "MNIST load onto the device", time.perf_counter() - start, "s")
    snakemake = [py, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    with tempfile.TemporaryDirectory() as tmp:
        plan = [*snakemake, "-d", tmp, "-n", "--configfile", str(REPO / "config/cifar10.yaml")]
        rows.add("4 pipeline", "snakemake -n, config/cifar10.yaml (1137 jobs)", _wall(plan, REPO, env), "s")
        tiny = [*snakemake, "-d", tmp, "--cores", "2", "--configfile", str(REPO / "tests/config/tiny.yaml")]
        rows.add("4 pipeline", "tiny study end to end (tests/config/tiny.yaml)", _wall(tiny, REPO, env), "s")
        rows.add("4 pipeline", "no-op rerun of the finished tiny study", _wall(tiny, REPO, env), "s", "goal < 5")
    if study:
        with tempfile.TemporaryDirectory() as tmp:
            default = [*snakemake, "-d", tmp, "--cores", "2", "--configfile", str(REPO / "config.yaml")]
            rows.add("4 pipeline", "default study end to end (config.yaml, --cores 2)", _wall(default, REPO, env), "s",
                     "goal <= 900")
            rows.add("4 pipeline", "no-op rerun of the default study", _wall(default, REPO, env), "s", "goal < 5")


def bench_growth(rows: Rows, device, data_root, quick: bool) -> None:
    """Section 5: epoch time against data size and model size; planning time against the number of jobs."""
    import os

    for n in (7500, 15000, 30000) if quick else (7500, 15000, 30000, 60000):
        speed = _trainer_throughput(_settings(train_subset=n), device, data_root)
        rows.add("5 growth", f"lenet300_100 dense epoch, {n} samples", n / speed, "s")
    for model in ("lenet300_100", "conv2", "conv4"):
        speed = _trainer_throughput(_settings(model=model, train_subset=5000), device, data_root)
        params = sum(w.numel() for w in models.prunable(models.build(model, (1, 28, 28), 10)).values())
        rows.add("5 growth", f"{model} ({params / 1e6:.2f}M prunable) dense, 5000 samples", 5000 / speed, "s")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for seeds in (1, 2, 4, 8):
            path = Path(tmp) / f"seeds{seeds}.yaml"
            path.write_text(yaml.safe_dump({**config, "seeds": list(range(seeds))}))
            out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp, "-n",
                                  "--quiet", "rules", "--configfile", str(path)], capture_output=True, text=True,
                                 env=env, cwd=REPO)
            jobs = int(next(line.split()[-1] for line in (out.stdout + out.stderr).splitlines()
                            if line.startswith("total")))
            seconds = _wall([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp, "-n",
                             "--configfile", str(path)], REPO, env)
            rows.add("5 growth", f"snakemake -n, default study with {seeds} seed(s): {jobs} jobs", seconds, "s")


def run(out: Path, *, data_root=None, device=None, quick: bool = False, study: bool = False) -> pd.DataFrame:
    dev = resolve_device(device)
    rows = Rows(dev)
    bench_reference(rows, dev, data_root, quick)
    bench_algorithms(rows, dev, data_root, quick)
    bench_fused(rows, dev, data_root, quick)
    bench_sparse(rows, dev, data_root, quick)
    bench_dnw_topk(rows, dev, data_root, quick)
    bench_cost_model(rows)
    bench_pipeline(rows, data_root, study)
    bench_growth(rows, dev, data_root, quick)
    frame = pd.DataFrame(rows.rows)
    write_parquet(Path(out) / "bench.parquet", frame)
    return frame
