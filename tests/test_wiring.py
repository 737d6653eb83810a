"""E6 wiring against a brute-force search of the graph of positions, on small hand-built masks."""
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsenet import models
from sparsenet.masks import Mask
from sparsenet.wiring import wiring


class ConvResidual(nn.Module):
    """conv1 (1->2) -> relu -> conv2 (2->2) + identity -> relu -> flatten -> fc (2*3*3 -> 3): a residual block."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(18, 3)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        return self.fc(torch.relu(self.bn(self.conv2(h)) + h).flatten(1))


def _search(edges: dict, inputs: set, outputs: set) -> tuple[set, set]:
    """Nodes reachable from the inputs, and nodes from which an output is reachable."""
    forward, backward = {}, {}
    for weight_edges in edges.values():
        for a, b in weight_edges:
            forward.setdefault(a, set()).add(b)
            backward.setdefault(b, set()).add(a)

    def reach(start, nxt):
        seen, todo = set(start), list(start)
        while todo:
            for n in nxt.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen
    return reach(inputs, forward), reach(outputs, backward)


def _conv_edges(mask, src, dst, size=3):
    """(kept weight index) -> edges between (layer, channel, y, x) positions, zero padding 1."""
    out = {}
    for o, i, ky, kx in torch.nonzero(mask).tolist():
        out[(o, i, ky, kx)] = [((src, i, y + ky - 1, x + kx - 1), (dst, o, y, x))
                               for y, x in itertools.product(range(size), range(size))
                               if 0 <= y + ky - 1 < size and 0 <= x + kx - 1 < size]
    return out


def brute_force(mask: Mask) -> dict[str, tuple[int, int]]:
    """layer -> (effective kept weights, dead units) by explicit graph search over positions."""
    m1, m2, mf = (mask.layers[n] for n in ("conv1.weight", "conv2.weight", "fc.weight"))
    grid = list(itertools.product(range(3), range(3)))
    e1 = _conv_edges(m1, "in", "h")
    e2 = _conv_edges(m2, "h", "c2")
    adds = {("add", c): [((part, c, y, x), ("sum", c, y, x)) for y, x in grid for part in ("h", "c2")]
            for c in range(2)}  # conv2's output plus the identity

    ef = {(o, j): [(("sum", j // 9, *divmod(j % 9, 3)), ("out", o))] for o, j in torch.nonzero(mf).tolist()}
    edges = {**{("c1", k): v for k, v in e1.items()}, **{("c2", k): v for k, v in e2.items()}, **adds,
             **{("fc", k): v for k, v in ef.items()}}
    fwd, bwd = _search(edges, {("in", 0, y, x) for y, x in grid}, {("out", o) for o in range(3)})
    live = fwd & bwd

    def effective(prefix):
        return sum(any(a in fwd and b in bwd for a, b in v) for (p, _), v in edges.items() if p == prefix)

    def dead(layer, channels, positions):
        return sum(not any((layer, c, *pos) in live for pos in positions) for c in range(channels))
    return {"conv1.weight": (effective("c1"), dead("h", 2, grid)),
            "conv2.weight": (effective("c2"), dead("c2", 2, grid)),
            "fc.weight": (effective("fc"), sum(("out", o) not in live for o in range(3)))}


@pytest.mark.parametrize("seed", range(12))
def test_effective_weights_and_dead_units_match_a_graph_search_through_a_residual_block(seed):
    g = torch.Generator().manual_seed(seed)
    net = ConvResidual()
    density = 0.08 + 0.06 * (seed % 4)  # sparse enough that many weights and channels are cut off
    mask = Mask({n: torch.rand(w.shape, generator=g) < density for n, w in models.prunable(net).items()})
    rows = wiring(net, mask, (1, 3, 3)).set_index("layer")
    expected = brute_force(mask)
    for name, (effective, dead) in expected.items():
        assert (rows.loc[name, "effective_kept"], rows.loc[name, "dead_units"]) == (effective, dead), name
    assert rows.loc["all", "effective_kept"] == sum(e for e, _ in expected.values())


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=2, max_size=5), p=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_effective_weights_and_dead_units_of_random_mlps_match_a_graph_search(widths, p, seed):
    """Random depth, widths and mask: node (d, j) is unit j of the input of layer d (d = depth: the output)."""
    layers = [nn.Linear(a, b) for a, b in zip(widths, widths[1:])]
    net = nn.Sequential(*itertools.chain.from_iterable((layer, nn.ReLU()) for layer in layers))
    g = torch.Generator().manual_seed(seed)
    mask = Mask({n: torch.rand(w.shape, generator=g) < p for n, w in models.prunable(net).items()})
    names = list(mask.layers)
    edges = {(d, o, i): [((d, i), (d + 1, o))] for d, n in enumerate(names)
             for o, i in torch.nonzero(mask.layers[n]).tolist()}
    fwd, bwd = _search(edges, {(0, i) for i in range(widths[0])}, {(len(names), o) for o in range(widths[-1])})
    live = fwd & bwd
    rows = wiring(net, mask, (widths[0],)).set_index("layer")
    for d, name in enumerate(names):
        effective = sum(a in fwd and b in bwd for (k, _, _), [(a, b)] in edges.items() if k == d)
        dead = sum((d + 1, o) not in live for o in range(widths[d + 1]))
        assert (rows.loc[name, "effective_kept"], rows.loc[name, "dead_units"]) == (effective, dead), name


def test_linear_units_cut_off_on_either_side_take_their_weights_with_them():
    net = models.build("lenet300_100", (1, 2, 2), 2)  # fc1 4->300, fc2 300->100, fc3 100->2
    mask = Mask({n: torch.zeros(w.shape, dtype=torch.bool) for n, w in models.prunable(net).items()})
    fc1, fc2, fc3 = (mask.layers[f"fc{i}.weight"] for i in (1, 2, 3))
    fc1[0, :] = True          # hidden unit 0 fed by every input...
    fc2[0, 0] = True          # ...feeds unit 0 of the next layer...
    fc3[1, 0] = True          # ...which reaches output 1: 4 + 1 + 1 effective weights
    fc1[1, 2] = True          # unit 1 is fed but feeds nothing
    fc2[5, 7] = True          # unit 7 of fc1 is fed by nothing
    fc3[0, 9] = True          # unit 9 of fc2 is fed by nothing
    rows = wiring(net, mask, (1, 2, 2)).set_index("layer")
    assert rows["effective_kept"].to_dict() == {"fc1.weight": 4, "fc2.weight": 1, "fc3.weight": 1, "all": 6}
    assert rows["kept"].to_dict() == {"fc1.weight": 5, "fc2.weight": 2, "fc3.weight": 2, "all": 9}
    assert rows.loc["fc1.weight", "dead_units"] == 299 and rows.loc["fc3.weight", "dead_units"] == 1
    assert rows.loc["all", "effective_density"] == pytest.approx(6 / (1200 + 30000 + 200))


def test_fanin_spread_is_the_coefficient_of_variation_of_kept_inputs_per_unit():
    net = nn.Sequential(nn.Linear(4, 2))
    mask = Mask({"0.weight": torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)})
    rows = wiring(net, mask, (4,)).set_index("layer")
    assert rows.loc["0.weight", "fanin_cv"] == pytest.approx(1 / 2)  # fan-ins 3 and 1: std 1, mean 2
    assert math.isnan(rows.loc["all", "fanin_cv"])


def test_pools_batch_norm_and_dropout_pass_paths_and_the_callers_model_is_left_as_it_was():
    # conv (1 -> 2 channels, 1x1) -> batch norm -> relu -> max-pool 2 -> dropout -> flatten -> fc (2 -> 2)
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5),
                        nn.Flatten(), nn.Linear(2, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    mask = Mask({"0.weight": torch.tensor([True, True]).reshape(2, 1, 1, 1),
                 "6.weight": torch.tensor([[True, False], [False, False]])})
    rows = wiring(net, mask, (1, 2, 2))
    assert list(rows.index) == list(range(3))  # one row per layer, then 'all'
    rows = rows.set_index("layer")
    # channel 0 reaches output 0 through the pool's window; channel 1 feeds no kept weight, output 1 has none
    assert rows["effective_kept"].to_dict() == {"0.weight": 1, "6.weight": 1, "all": 2}
    assert rows["dead_units"].to_dict() == {"0.weight": 1, "6.weight": 1, "all": 2}
    assert rows["units"].to_dict() == {"0.weight": 2, "6.weight": 2, "all": 4}
    assert rows["density"].to_dict() == {"0.weight": 1.0, "6.weight": 0.25, "all": 0.5}
    assert rows.loc["6.weight", "fanin_cv"] == pytest.approx(1.0)  # fan-ins 1 and 0: mean 0.5, std 0.5
    assert [type(m) for m in net] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Flatten,
                                      nn.Linear]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
