"""The Mask type: for each prunable weight, a bool tensor of its shape.

On disk a mask is a safetensors file of bit-packed uint8 tensors (8x smaller than bool, and safe to load: no
pickle). A run's snapshots are one such file holding every snapshot's bits per layer.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from sparsenet.config import ConfigError
from sparsenet.errors import InputError
from sparsenet.files import atomic_path

FORMAT = "sparsenet-masks-1"


class MaskFileError(InputError, RuntimeError):
    """A mask or snapshot file is missing, truncated or not ours."""


class Mask:
    def __init__(self, layers: Mapping[str, torch.Tensor]):
        self.layers = {name: m.to(torch.bool) for name, m in layers.items()}

    # --- counts -------------------------------------------------------------------------------------------
    def kept(self, exclude: Iterable[str] = ()) -> int:
        return sum(int(m.sum()) for n, m in self.layers.items() if n not in exclude)

    def size(self, exclude: Iterable[str] = ()) -> int:
        return sum(m.numel() for n, m in self.layers.items() if n not in exclude)

    def density(self, exclude: Iterable[str] = ()) -> float:
        """kept / prunable, over all layers or all but `exclude` (e.g. the layers kept dense)."""
        return self.kept(exclude) / self.size(exclude)

    def per_layer(self) -> list[dict]:
        """One row per layer: name, shape, size, kept, density."""
        return [{"layer": name, "shape": list(m.shape), "size": m.numel(), "kept": int(m.sum()),
                 "density": float(m.float().mean())} for name, m in self.layers.items()]

    # --- comparisons --------------------------------------------------------------------------------------
    def _check_same_layers(self, other: Mask) -> None:
        if list(self.layers) != list(other.layers) or any(
                self.layers[n].shape != other.layers[n].shape for n in self.layers):
            raise ValueError("masks cover different layers or shapes")

    def overlap(self, other: Mask) -> float:
        """Fraction of this mask's kept weights that `other` keeps too (1.0 for an empty mask)."""
        self._check_same_layers(other)
        both = sum(int((a & other.layers[n].to(a.device)).sum()) for n, a in self.layers.items())
        return both / self.kept() if self.kept() else 1.0

    def iou(self, other: Mask) -> float:
        self._check_same_layers(other)
        inter = union = 0
        for n, a in self.layers.items():
            b = other.layers[n].to(a.device)
            inter += int((a & b).sum())
            union += int((a | b).sum())
        return inter / union if union else 1.0

    def per_layer_overlap(self, other: Mask) -> list[dict]:
        self._check_same_layers(other)
        rows = []
        for n, a in self.layers.items():
            b = other.layers[n].to(a.device)
            inter, union = int((a & b).sum()), int((a | b).sum())
            kept = int(a.sum())
            rows.append({"layer": n, "overlap": inter / kept if kept else 1.0, "iou": inter / union if union else 1.0})
        return rows

    # --- use ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self, weights: Mapping[str, torch.Tensor]) -> None:
        """Zero the absent weights in place."""
        for name, m in self.layers.items():
            weights[name].mul_(m)

    def without(self, names: Iterable[str]) -> Mask:
        """The mask of the other layers (e.g. without the layers a run keeps dense)."""
        names = set(names)
        return Mask({n: m for n, m in self.layers.items() if n not in names})

    def like(self, weights: Mapping[str, torch.Tensor]) -> Mask:
        """This mask on the weights' device and in their memory format (masking channels-last weights with a
        contiguous mask would make every multiply a strided one)."""
        return Mask({n: torch.empty_like(weights[n], dtype=torch.bool).copy_(m) for n, m in self.layers.items()})

    def to(self, device: torch.device | str) -> Mask:
        return Mask({n: m.to(device) for n, m in self.layers.items()})

    def clone(self) -> Mask:
        return Mask({n: m.clone() for n, m in self.layers.items()})

    def equal(self, other: Mask) -> bool:
        return list(self.layers) == list(other.layers) and all(
            torch.equal(m.cpu(), other.layers[n].cpu()) for n, m in self.layers.items())

    def packed(self) -> dict[str, torch.Tensor]:
        """Each layer bit-packed into uint8 on the CPU (8x smaller than bool): how masks are kept in bulk and stored.

        A mask on a GPU is packed there, so only 1/8 of it crosses to the host.
        """
        return {n: _packbits(m).cpu() if m.device.type != "cpu" else torch.from_numpy(np.packbits(m.numpy().ravel()))
                for n, m in self.layers.items()}

    def shapes(self) -> dict[str, list[int]]:
        return {n: list(m.shape) for n, m in self.layers.items()}

    @classmethod
    def from_packed(cls, packed: Mapping[str, torch.Tensor | np.ndarray], shapes: Mapping[str, list[int]],
                    device: torch.device | str = "cpu") -> Mask:
        return cls({n: torch.from_numpy(np.unpackbits(np.asarray(bits))[:math.prod(shapes[n])].astype(bool))
                    .view(shapes[n]).to(device) for n, bits in packed.items()})

    def shuffled(self, generator: torch.Generator) -> Mask:
        """Same count in each layer, positions drawn at random within the layer: the structure destroyed."""
        out = {}
        for name, m in self.layers.items():
            perm = torch.randperm(m.numel(), generator=generator)
            out[name] = m.flatten().cpu()[perm].view(m.shape).to(m.device)
        return Mask(out)

    def shuffled_within_units(self, generator: torch.Generator) -> Mask:
        """Positions drawn at random within each output unit (a linear layer's row, a conv's output channel):
        every unit keeps its fan-in, the wiring is destroyed."""
        out = {}
        for name, m in self.layers.items():
            rows = m.cpu().reshape(m.shape[0], -1)
            perm = torch.rand(rows.shape, generator=generator).argsort(dim=1)
            out[name] = rows.gather(1, perm).view(m.shape).to(m.device)
        return Mask(out)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def ones_like(cls, weights: Mapping[str, torch.Tensor]) -> Mask:
        return cls({n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()})

    @classmethod
    def from_magnitude(cls, weights: Mapping[str, torch.Tensor], counts: Mapping[str, int]) -> Mask:
        """Keep the `counts[name]` largest-magnitude entries of each weight (ties in torch.topk's order)."""
        out = {}
        for name, w in weights.items():
            out[name] = topk_mask(w.detach().abs(), counts[name])
        return cls(out)

    @classmethod
    def random(cls, weights: Mapping[str, torch.Tensor], counts: Mapping[str, int],
               generator: torch.Generator) -> Mask:
        out = {}
        for name, w in weights.items():
            score = torch.rand(w.shape, generator=generator).to(w.device)
            out[name] = topk_mask(score, counts[name])
        return cls(out)

    # --- files --------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        save_snapshots(path, [self], [{}])

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> Mask:
        masks, _ = load_snapshots(path, device)
        if len(masks) != 1:
            raise MaskFileError(f"{path} holds {len(masks)} masks, expected one (is it a snapshots file?)")
        return masks[0]


_BIT_VALUES = (128, 64, 32, 16, 8, 4, 2, 1)  # np.packbits: the first element is the most significant bit


def _packbits(m: torch.Tensor) -> torch.Tensor:
    """np.packbits in torch, on the tensor's own device."""
    flat = m.flatten().to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, -flat.numel() % 8))
    bits = torch.tensor(_BIT_VALUES, dtype=torch.uint8, device=m.device)
    return (flat.view(-1, 8) * bits).sum(1, dtype=torch.uint8)


def random_for_model(model: str, dataset: str, density: float, distribution: str,
                     dense_layers: Iterable[str] = (), seed: int = 0) -> Mask:
    """A random mask of `density` for the prunable weights of a registered model on `dataset` (benchmarks)."""
    from sparsenet import datasets, models

    spec = datasets.spec(dataset)
    weights = models.prunable(models.build(model, spec.input_shape, spec.num_classes))
    counts = layer_counts({n: w.shape for n, w in weights.items()}, density, distribution, dense_layers)
    return Mask.random(weights, counts, torch.Generator().manual_seed(seed))


def kept_only(weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """A new tensor: `weight` where `keep` (bool, same shape), zero elsewhere (dnw's forward weights). On the CPU,
    numpy's multiply by the bool mask: 3.7x faster than torch.where on this project's CPU (1.9M weights, one
    thread), whose kernels convert the mask element by element. An absent negative weight becomes -0.0 there,
    which no sum or product tells from 0.0, and an absent NaN or infinite one NaN (its run has diverged)."""
    weight = weight.detach()
    if (weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.float64)
            or not (weight.is_contiguous() and keep.is_contiguous())):
        return torch.where(keep, weight, 0.0)
    out = torch.empty_like(weight)
    np.multiply(weight.numpy(), keep.numpy(), out=out.numpy())
    return out


def topk_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the `k` largest entries of `score`, in the memory format of `score`.

    torch.topk's indices, filled in. Measured against a kthvalue threshold (exact, no scatter): topk was faster
    on this project's CPU and 11x faster for ResNet-18's layers on an H100 (README, "GPU"). `index_fill_`, not
    `mask[indices] = True`: with deterministic algorithms on, CUDA's index_put takes a sorting path, and the
    indices are distinct, so the plain fill is deterministic already.
    """
    flat = score.flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        mask.index_fill_(0, torch.topk(flat, k, sorted=False).indices, True)
    mask = mask.view(score.shape)
    return mask if score.is_contiguous() else torch.empty_like(score, dtype=torch.bool).copy_(mask)


def topk_mask_near(score: torch.Tensor, k: int, near: float, band: float) -> tuple[torch.Tensor, float] | None:
    """`topk_mask(score, k)` and the k-th largest value, for a contiguous CPU `score`, found from `near`, a guess
    of that value: only the entries within `band` (relative) of it are ranked. Where exactly k entries lie above
    the band, those, and `near` in place of the k-th value (nothing ranked: the guess stays). None where more lie
    above it or too few within it (the k-th value lies outside the band), or the k-th value ties with the next one
    (which of tied entries torch.topk keeps is its own affair: the caller then asks topk_mask), or where an entry
    is NaN or infinite (torch.topk ranks NaN first).

    Exact: the top-k set is unique when the k-th value exceeds the next, and then is every entry >= the k-th value.
    The passes over every entry run in numpy, whose comparisons and boolean selections were 4-10x faster than
    torch's on this project's CPU with one thread (benchmarks/dnw_topk.py measures DNW's training with it).
    """
    if not score.is_contiguous() or not math.isfinite(float(score.sum())):
        return None
    values = score.numpy()
    above = values > near * (1 + band)
    need = k - int(np.count_nonzero(above))
    if need < 0:
        return None
    if need == 0:  # the k-th value is the least of those above, and every other entry is below the band's top
        return torch.from_numpy(above), near
    inside = torch.from_numpy(values[(values >= near * (1 - band)) & ~above])
    if inside.numel() < need:
        return None
    ranked = torch.topk(inside, min(need + 1, inside.numel())).values
    kth = ranked[need - 1]
    if need < ranked.numel() and ranked[need] == kth:
        return None
    return torch.from_numpy(values >= kth.numpy()), float(kth)


def layer_counts(shapes: Mapping[str, torch.Size], density: float, distribution: str,
                 dense_layers: Iterable[str] = (), sparsity_scales: Iterable[tuple[str, float]] = ()) -> dict[str, int]:
    """Kept weights per layer for a total `density` over the layers not in `dense_layers` (which stay whole).

    `uniform` gives every sparse layer the same density; `erk` (Erdos-Renyi-Kernel, Evci et al. 2020) makes a
    layer's density proportional to sum(shape)/prod(shape), capping layers at 1. `sparsity_scales` (uniform only)
    give named layers a sparsity that multiple of the other layers' (google-research/rigl's MNIST script: layer 2
    at 0.9 of layer 1's), the common sparsity solved so that the total stays exact. The total is exact.
    """
    dense, scales = set(dense_layers), dict(sparsity_scales)
    unknown = dense - set(shapes)
    if unknown:
        raise ConfigError(f"dense_layers: {sorted(unknown)} are not prunable weights; prunable: {', '.join(shapes)}")
    sparse = {n: math.prod(s) for n, s in shapes.items() if n not in dense}
    budget = round(density * sum(sparse.values()))
    if scales:
        exact = _scaled_counts(sparse, scales, budget)
    else:
        exact = _proportional_counts(sparse, shapes, budget, distribution)
    counts = apportion(exact, budget)
    return {n: (math.prod(shapes[n]) if n in dense else counts[n]) for n in shapes}


def _proportional_counts(sparse: dict[str, int], shapes: Mapping[str, torch.Size], budget: int,
                         distribution: str) -> dict[str, float]:
    raw = {n: (sum(shapes[n]) / size if distribution == "erk" else 1.0) for n, size in sparse.items()}
    full: set[str] = set()
    while True:  # cap layers whose density would exceed 1, then share the rest among the others
        free = {n for n in sparse if n not in full}
        eps = (budget - sum(sparse[n] for n in full)) / sum(raw[n] * sparse[n] for n in free)
        over = [n for n in free if eps * raw[n] > 1]
        if not over:
            break
        full.add(max(over, key=lambda n: raw[n]))
    return {n: (sparse[n] if n in full else eps * raw[n] * sparse[n]) for n in sparse}


def _scaled_counts(sparse: dict[str, int], scales: dict[str, float], budget: int) -> dict[str, float]:
    """Layer n at density clip(1 - scales[n] * s, 0, 1) (scale 1 for the others), s found by bisection (uniform
    densities only: AlgorithmHparams rejects scales with another distribution)."""
    unknown = set(scales) - set(sparse)
    if unknown:
        raise ConfigError(f"sparsity_scales: {sorted(unknown)} are not sparse layers of this model; sparse: "
                          f"{', '.join(sparse)}")

    def exact(s: float) -> dict[str, float]:
        return {n: size * min(max(1 - scales.get(n, 1.0) * s, 0.0), 1.0) for n, size in sparse.items()}

    lo, hi = 0.0, 1 / min(scales.get(n, 1.0) for n in sparse)  # the kept total falls as s grows, to 0 at hi
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(exact(mid).values()) > budget else (lo, mid)
    return exact(hi)


def apportion(exact: Mapping[str, float], total: int) -> dict[str, int]:
    """Round each share down, then give what is left to the largest remainders: the sum is exactly `total`."""
    counts = {n: int(math.floor(v)) for n, v in exact.items()}
    short = total - sum(counts.values())
    for n in sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)[:short]:
        counts[n] += 1
    return counts


def save_snapshots(path: str | Path, masks: list[Mask], labels: list[dict]) -> None:
    """Write masks (all covering the same layers) bit-packed into one safetensors file, atomically."""
    if not masks:
        raise ValueError("no masks to save")
    save_packed_snapshots(path, [m.packed() for m in masks], masks[0].shapes(), labels)


def save_packed_snapshots(path: str | Path, packed: list[dict[str, torch.Tensor]], shapes: dict[str, list[int]],
                          labels: list[dict]) -> None:
    """As save_snapshots, for masks already packed (Mask.packed)."""
    names = list(shapes)
    tensors = {name: np.stack([p[name].numpy() for p in packed]) for name in names}
    # one metadata entry: safetensors writes several in hash order, and identical masks must give identical bytes
    meta = {"sparsenet": json.dumps({"format": FORMAT, "labels": labels, "order": names, "shapes": shapes},
                                    sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_snapshots(path: str | Path, device: torch.device | str = "cpu") -> tuple[list[Mask], list[dict]]:
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("sparsenet", "{}"))
        tensors = load_file(str(path))
        if meta.get("format") != FORMAT:
            raise ValueError("not a sparsenet mask file")
        shapes, labels, names = meta["shapes"], meta["labels"], meta["order"]
        masks = [Mask.from_packed({n: tensors[n][i] for n in names}, shapes, device) for i in range(len(labels))]
    except FileNotFoundError:
        raise MaskFileError(f"mask file {path} does not exist") from None
    except (SafetensorError, ValueError, KeyError, IndexError, OSError, json.JSONDecodeError) as e:
        raise MaskFileError(f"mask file {path} is corrupt or not a sparsenet mask file ({e}); "
                            "rerun the job that wrote it") from None
    return masks, labels
