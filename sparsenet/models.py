"""Models by name (after timm's registry), or by import path for a user's own. Prunable = the weights of conv and
linear layers."""
from __future__ import annotations

import importlib
from typing import Callable

import torch
from torch import nn

MODELS: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {}


def register(name: str):
    def add(builder):
        MODELS[name] = builder
        return builder

    return add


def resolve(name: str) -> Callable[[tuple[int, int, int], int], nn.Module]:
    """The builder of a registered model, or of one named by import path ('my_pkg.models:wide_resnet': a function
    of (input_shape, num_classes) returning an nn.Module), which is then registered under that name."""
    if name in MODELS:
        return MODELS[name]
    module, _, attr = name.partition(":")
    if not attr:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(MODELS)}; or give an import path "
                       "'package.module:function'")
    try:
        builder = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise KeyError(f"model {name!r} cannot be imported: {e}") from None
    if not callable(builder):
        raise KeyError(f"model {name!r} is not a function of (input_shape, num_classes)")
    return register(name)(builder)


def build(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return resolve(name)(input_shape, num_classes)


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameter name -> weight, for every conv and linear layer, in module order."""
    return {f"{mod_name}.weight" if mod_name else "weight": mod.weight
            for mod_name, mod in model.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))}


@register("lenet300_100")
def lenet300_100(input_shape, num_classes):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, num_classes))


def _conv_net(widths: list[int], input_shape, num_classes) -> nn.Sequential:
    """The lottery-ticket paper's Conv-2/4/6: pairs of 3x3 convs then max-pool, then FC 256-256-classes."""
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        c = width
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
               nn.Linear(256, num_classes)]
    return nn.Sequential(*layers)


@register("conv2")
def conv2(input_shape, num_classes):
    return _conv_net([64, 64], input_shape, num_classes)


@register("conv4")
def conv4(input_shape, num_classes):
    return _conv_net([64, 64, 128, 128], input_shape, num_classes)


@register("conv6")
def conv6(input_shape, num_classes):
    return _conv_net([64, 64, 128, 128, 256, 256], input_shape, num_classes)


@register("vgg16")
def vgg16(input_shape, num_classes):
    """VGG-16 for CIFAR with batch norm and one linear classifier."""
    c = input_shape[0]
    layers: list[nn.Module] = []
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            c = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem without max-pool, stages of basic blocks, global average pool, linear."""

    def __init__(self, input_shape, num_classes, widths: list[int], blocks: list[int]):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        stages, c = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stages.append(BasicBlock(c, width, 2 if (i > 0 and j == 0) else 1))
                c = width
        self.blocks = nn.Sequential(*stages)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.blocks(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))  # global average pool; unlike adaptive_avg_pool2d, deterministic on CUDA


@register("resnet20")
def resnet20(input_shape, num_classes):
    return ResNet(input_shape, num_classes, [16, 32, 64], [3, 3, 3])


@register("resnet18")
def resnet18(input_shape, num_classes):
    return ResNet(input_shape, num_classes, [64, 128, 256, 512], [2, 2, 2, 2])
