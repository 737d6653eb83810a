"""The step without the host: the captured fused step trains as the eager one, reads nothing back and keeps its
memory; the capture follows PyTorch's recipe (on a fake CUDA here, on a real GPU where there is one)."""
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparsenet import graph
from sparsenet.execution import Platform
from sparsenet.fused import FusedRuns, train_fused
from sparsenet.train import Run, load_data

from .conftest import tiny
from .test_fused import _assert_same_run, _relative_error, float64  # noqa: F401 (a fixture, used by name)


@pytest.mark.parametrize("algorithm,model,dataset", [("dense", "lenet300_100", "mnist"),
                                                     ("static", "lenet300_100", "mnist"),
                                                     ("snfs_freeze", "lenet300_100", "mnist")])
def test_runs_trained_through_the_step_graph_equal_eager_fused_runs(tmp_path, data_root, monkeypatch, algorithm,
                                                                      model, dataset):
    # off CUDA the graph's step runs eagerly: the same code as captured, with its device learning rate and sums;
    # 1,950 samples: the last batch of each epoch (50) takes the eager path; snfs_freeze: a graph from epoch 2 on
    densities = (1.0, 1.0) if algorithm == "dense" else (0.2, 0.1)
    cfgs = [tiny(algorithm=algorithm, model=model, dataset=dataset, density=d, epochs=2, seed=s, train_subset=1950,
                 sparse_kernels="off", warmup_epochs=1)
            for s, d in enumerate(densities)]
    train_fused(cfgs, [tmp_path / "eager" / f"r{k}" for k in range(2)])
    made = []
    monkeypatch.setattr(Platform, "captures_steps", property(lambda self: True))
    monkeypatch.setattr(graph.StepGraph, "__init__", _recording(graph.StepGraph.__init__, made))
    train_fused(cfgs, [tmp_path / "graph" / f"r{k}" for k in range(2)])
    assert len(made) == 1
    for k in range(2):
        _assert_same_run(tmp_path / "graph" / f"r{k}", tmp_path / "eager" / f"r{k}")


def _recording(init, made: list):
    def wrapped(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)
    return wrapped


class _NoHostReads(TorchDispatchMode):
    """Fails on every op that makes the host wait for the device's result (a scalar read, a data-dependent shape)."""

    READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
             torch.ops.aten.is_nonzero.default, torch.ops.aten.equal.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            raise AssertionError(f"the step reads a result back: {func}")
        return func(*args, **(kwargs or {}))


def _group(tmp_path, model="resnet20", dataset="mnist", runs=2, graph=True, **settings):
    cfg = tiny(model=model, dataset=dataset, train_subset=64, batch_size=16, snapshot_fractions=(), **settings)
    dev = torch.device("cpu")
    data = load_data(cfg, dev, None)
    members = [Run(cfg.replace(seed=s), Path(tmp_path) / f"r{s}", dev, data, sparse_kernels=False)
               for s in range(runs)]
    return FusedRuns(members, graph=graph)


@pytest.mark.usefixtures("float64")
def test_the_captured_step_reads_nothing_back_keeps_its_memory_and_steps_as_the_eager_one(tmp_path, data_root):
    # a residual net with batch norm under a fixed mask, beside the same runs stepped eagerly; in float64, as
    # batch norm at batch 16 makes float32 rounding grow 1e-8 to 1e-2 in four steps (test_fused)
    group, eager = (_group(tmp_path / str(g), algorithm="static", density=0.2, graph=g) for g in (True, False))
    batches, eager_batches = group.begin_epoch(0), eager.begin_epoch(0)
    group.train_step(0, 0, next(batches))  # the warm-up: what a first step makes lazily (momentum, cached counts)
    eager.train_step(0, 0, next(eager_batches))
    memory = lambda: [t.data_ptr() for t in (*group.static, *group.sums, group.optimizer.param_groups[0]["lr"],  # noqa: E731
                                             *group.model.parameters(), *group.model.buffers(),
                                             *(s["momentum_buffer"] for s in group.optimizer.state.values()))]
    before = memory()
    weights = [p.detach().clone() for p in group.model.parameters()]
    for i, (per_run, eager_per_run) in enumerate(zip(batches, eager_batches), start=1):
        with _NoHostReads():
            group.train_step(0, i, per_run)
        eager.train_step(0, i, eager_per_run)
    assert memory() == before
    assert _relative_error(group.model.state_dict(), eager.model.state_dict()) <= 1e-12
    assert all(not torch.equal(w, p) for w, p in zip(weights, group.model.parameters()) if w.dim() > 1)


def test_the_no_read_guard_catches_a_read():
    with pytest.raises(AssertionError, match="reads a result back"), _NoHostReads():
        torch.ones(3).sum().item()


class _FakeCuda:
    """torch.cuda's streams and graphs as the capture uses them, recording what happens: a captured step's
    kernels do not run at the capture, only at each replay."""

    def __init__(self):
        self.events, self.capturing, self.stream_now = [], False, "default"

    def Stream(self, device):  # noqa: N802 (torch's name)
        return _FakeStream(self)

    def current_stream(self, device=None):
        return _FakeStream(self, "default")

    @contextmanager
    def stream(self, s):
        self.stream_now, before = s.name, self.stream_now
        yield
        self.stream_now = before

    def CUDAGraph(self):  # noqa: N802
        return _FakeGraph(self)

    @contextmanager
    def graph(self, g):
        self.capturing = True
        yield
        self.capturing = False
        g.recorded = True


class _FakeStream:
    def __init__(self, cuda, name="side"):
        self.cuda, self.name = cuda, name

    def wait_stream(self, other):
        self.cuda.events.append(f"{self.name} waits for {other.name}")


class _FakeGraph:
    def __init__(self, cuda):
        self.cuda, self.recorded = cuda, False

    def replay(self):
        assert self.recorded
        self.cuda.events.append("replay")


def test_the_capture_warms_up_on_a_side_stream_then_captures_once_and_replays(monkeypatch):
    cuda = _FakeCuda()
    for name in ("Stream", "current_stream", "stream", "CUDAGraph", "graph"):
        monkeypatch.setattr(torch.cuda, name, getattr(cuda, name))

    def step():
        cuda.events.append("captured" if cuda.capturing else f"step on {cuda.stream_now}")

    steps = graph.StepGraph(step, torch.device("cuda"))
    for _ in range(graph.WARMUP + 3):
        steps()
    warm = ["side waits for default", "step on side", "default waits for side"] * graph.WARMUP
    assert cuda.events == [*warm, "captured", "replay", "replay", "replay"]


def test_off_cuda_the_step_runs_eagerly_every_time():
    calls = []
    steps = graph.StepGraph(lambda: calls.append(1), torch.device("cpu"))
    for _ in range(graph.WARMUP + 2):
        steps()
    assert len(calls) == graph.WARMUP + 2 and steps.graph is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("settings", [{}, {"precision": "bf16", "channels_last": True}])
def test_on_a_gpu_the_captured_step_trains_as_the_eager_one(tmp_path, data_root, settings):
    cfg = tiny(model="resnet20", dataset="cifar10", train_subset=256, batch_size=32, snapshot_fractions=(),
               algorithm="static", density=0.2, **settings)
    dev = torch.device("cuda")
    data = load_data(cfg, dev, None)
    groups = [FusedRuns([Run(cfg.replace(seed=s), tmp_path / f"{g}{s}", dev, data) for s in range(4)], graph=g)
              for g in (False, True)]
    for i, batches in enumerate(zip(*(g.begin_epoch(0) for g in groups))):
        for g, per_run in zip(groups, batches):
            g.train_step(0, i, per_run)
    assert groups[1].graph.graph is not None  # captured and replayed
    assert _relative_error(groups[1].model.state_dict(), groups[0].model.state_dict()) <= 1e-3
