"""A user's own model, outside the package: the tests name it by import path (tests.custom_model:two_layer)."""
from torch import nn


def two_layer(input_shape, num_classes):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 64), nn.ReLU(), nn.Linear(64, num_classes))
