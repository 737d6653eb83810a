"""Models by name (after timm's registry), or by import path for a user's own. Prunable = the weights of conv and
linear layers, named by their modules as open_lth and timm name them (`fc1.weight`, `conv1.weight`,
`layers.0.conv.weight`, `blocks.0.conv1.weight`): the names `dense_layers` and `imp_layer_rates` take, and that
`sparsenet layers MODEL` lists.

Initialisation follows open_lth (facebookresearch/open_lth, models/initializers.py and bn_initializers.py):
the model is built with PyTorch's default init, then conv and linear weights are redrawn (Kaiming normal by
default, std sqrt(2 / fan_in)) and batch-norm scales drawn from U[0, 1) with zero shifts; biases keep PyTorch's
default, as there.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from sparsenet import by_path, config

MODELS: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {}
OUTPUT_LAYER: dict[str, str | None] = {}  # model -> the output layer's weight (the last prunable weight)
# How imp treats the output layer where the model's reference code says so: open_lth's default_hparams set
# pruning_layers_to_ignore='fc.weight' for mnist_lenet and cifar_vgg (none for cifar_resnet); Frankle & Carbin
# (2019, Table 1) prune Conv-2/4/6's output layer at half the rate of the other fully connected layers.
IMP_OUTPUT = {"lenet300_100": "dense", "vgg16": "dense", "conv2": "half", "conv4": "half", "conv6": "half"}
# How google-research/rigl's scripts treat the layers of rigl, set, gmp and static (`rigl_layers: reference`):
# model -> (layers kept dense, (layer, sparsity scale) pairs). Its MNIST script keeps the output layer dense and
# gives layer 2 0.9 of layer 1's sparsity (rigl/mnist/mnist_train_eval.py, custom_sparsities and gmp's
# weight_sparsity_map); its CIFAR-10 and ImageNet scripts keep the first conv dense (prune_first_layer=False in
# rigl/cifar_resnet/resnet_train_eval.py; first_layer_sparsity=0 in rigl/imagenet_resnet/imagenet_train_eval.py)
# and prune the output layer. Conv-2/4/6 have no rigl script: they take the CIFAR-10 rule.
RIGL_LAYERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, float], ...]]] = {
    "lenet300_100": (("fc3.weight",), (("fc2.weight", 0.9),)),
    **{m: (("conv1.weight",), ()) for m in ("conv2", "conv4", "conv6")},
    "vgg16": (("layers.0.conv.weight",), ()),
    **{m: (("conv.weight",), ()) for m in ("resnet20", "resnet18")}}


def register(name: str, output: str | None = "fc.weight"):
    def add(builder):
        MODELS[name] = builder
        OUTPUT_LAYER[name] = output
        return builder

    return add


def resolve(name: str) -> Callable[[tuple[int, int, int], int], nn.Module]:
    """The builder of a registered model, or of one named by import path ('my_pkg.models:wide_resnet': a function
    of (input_shape, num_classes) returning an nn.Module). A model by path is not registered: the registry holds
    this package's models only, whatever a process has resolved before."""
    if name in MODELS:
        return MODELS[name]
    return by_path.function(name, "model", f"registered: {', '.join(MODELS)}", "(input_shape, num_classes)")


def build(name: str, input_shape: tuple[int, int, int], num_classes: int, init: str = "kaiming_normal",
          bn_init: str = "uniform") -> nn.Module:
    """Model `name`, initialised by `init` (conv and linear weights) and `bn_init` (batch-norm scales)."""
    model = resolve(name)(input_shape, num_classes)
    initialise(model, init, bn_init)
    return model


@torch.no_grad()
def initialise(model: nn.Module, init: str, bn_init: str) -> None:
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            if init == "kaiming_normal":
                nn.init.kaiming_normal_(mod.weight)
            elif init == "kaiming_uniform":
                nn.init.kaiming_uniform_(mod.weight)
            elif init == "variance_scaling":
                variance_scaling(mod)
            elif init != "pytorch":
                raise ValueError(f"init: must be one of {', '.join(config.INITS)}; got {init!r}")
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            if bn_init == "uniform":
                mod.weight.copy_(torch.rand(mod.weight.shape))
            elif bn_init != "fixed":
                raise ValueError(f"bn_init: must be uniform or fixed; got {bn_init!r}")
            mod.bias.zero_()


def variance_scaling(mod: nn.Module) -> None:
    """TensorFlow's `variance_scaling_initializer()` with its defaults (scale 1, fan-in, normal truncated at two
    standard deviations, the deviation corrected for the truncation) and zero biases: the initialisation SNIP's
    authors use (namhoonlee/snip-public, snip/network.py: initializer_w 'vs', initializer_b 'zeros')."""
    fan_in = mod.weight[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # the std of a unit normal truncated at +-2
    nn.init.trunc_normal_(mod.weight, std=std, a=-2 * std, b=2 * std)
    if mod.bias is not None:
        nn.init.zeros_(mod.bias)


def prunable_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Weight name -> its conv or linear module, in module order: the names masks and settings use."""
    return {f"{mod_name}.weight" if mod_name else "weight": mod
            for mod_name, mod in model.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))}


def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Parameter name -> weight, for every conv and linear layer, in module order."""
    return {name: mod.weight for name, mod in prunable_modules(model).items()}


@register("lenet300_100", output="fc3.weight")
def lenet300_100(input_shape, num_classes):
    c, h, w = input_shape
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(c * h * w, 300), relu1=nn.ReLU(),
                                     fc2=nn.Linear(300, 100), relu2=nn.ReLU(), fc3=nn.Linear(100, num_classes)))


def _conv_net(widths: list[int], input_shape, num_classes) -> nn.Sequential:
    """The lottery-ticket paper's Conv-2/4/6: pairs of 3x3 convs then max-pool, then FC 256-256-classes; layers
    named conv1..convN and fc1..fc3."""
    c, h, w = input_shape
    layers: dict[str, nn.Module] = {}
    for i, width in enumerate(widths, 1):
        layers |= {f"conv{i}": nn.Conv2d(c, width, 3, padding=1), f"relu{i}": nn.ReLU()}
        c = width
        if i % 2 == 0:
            layers[f"pool{i // 2}"] = nn.MaxPool2d(2)
            h, w = h // 2, w // 2
    layers |= {"flatten": nn.Flatten(), "fc1": nn.Linear(c * h * w, 256), "fc_relu1": nn.ReLU(),
               "fc2": nn.Linear(256, 256), "fc_relu2": nn.ReLU(), "fc3": nn.Linear(256, num_classes)}
    return nn.Sequential(OrderedDict(layers))


@register("conv2", output="fc3.weight")
def conv2(input_shape, num_classes):
    return _conv_net([64, 64], input_shape, num_classes)


@register("conv4", output="fc3.weight")
def conv4(input_shape, num_classes):
    return _conv_net([64, 64, 128, 128], input_shape, num_classes)


@register("conv6", output="fc3.weight")
def conv6(input_shape, num_classes):
    return _conv_net([64, 64, 128, 128, 256, 256], input_shape, num_classes)


class VGG(nn.Module):
    """open_lth's cifar_vgg (models/cifar_vgg.py): conv (with bias) + batch norm + ReLU modules, a max-pool after
    each stage but the last, a 2x2 average pool, one linear layer."""

    def __init__(self, plan: list, input_shape, num_classes):
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for v in plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            else:
                layers.append(nn.Sequential(OrderedDict(conv=nn.Conv2d(c, v, 3, padding=1), bn=nn.BatchNorm2d(v),
                                                        relu=nn.ReLU())))
                c = v
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c * (h // 2) * (w // 2), num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.avg_pool2d(self.layers(x), 2), 1))


@register("vgg16")
def vgg16(input_shape, num_classes):
    return VGG([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512], input_shape,
               num_classes)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                                      bn=nn.BatchNorm2d(c_out)))

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


BUILTIN = tuple(MODELS)  # this package's models
