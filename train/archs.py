"""Model architectures. The report's three models, built exactly as it describes them.

Each builder takes (input_shape, num_classes) and returns an uncompiled keras.Model ending
in softmax; ``ARCHS`` maps the ``--arch`` name to its builder and default recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers


def _conv_block(x, filters: int, kernel: int, *, bn: bool, act: str, pool: bool, dropout: float, padding="same"):
    x = layers.Conv2D(filters, kernel, padding=padding)(x)
    if bn:
        x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(negative_slope=0.01)(x) if act == "leaky" else layers.Activation(act)(x)
    if pool:
        x = layers.MaxPooling2D(2)(x)
    if dropout:
        x = layers.Dropout(dropout)(x)
    return x


def reference(input_shape, num_classes: int) -> keras.Model:
    """The report's baseline: 4 conv blocks (64/128/512/512) + Dense 256/512, 58% after 15 epochs."""
    inp = keras.Input(input_shape, name="face")
    x = inp
    for f, k in ((64, 3), (128, 5), (512, 3), (512, 3)):
        x = _conv_block(x, f, k, bn=True, act="relu", pool=True, dropout=0.25)
    x = layers.Flatten()(x)
    for units in (256, 512):
        x = layers.Dense(units)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Dropout(0.25)(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inp, out, name="reference")


def report(input_shape, num_classes: int) -> keras.Model:
    """The report's own 5-conv LeakyReLU model (about 3.44M parameters), 62.1% after 25 epochs."""
    inp = keras.Input(input_shape, name="face")
    x = _conv_block(inp, 32, 3, bn=True, act="leaky", pool=True, dropout=0.3)
    x = _conv_block(x, 64, 5, bn=True, act="leaky", pool=True, dropout=0.3)
    x = _conv_block(x, 128, 3, bn=False, act="leaky", pool=True, dropout=0.3)
    x = _conv_block(x, 256, 5, bn=False, act="leaky", pool=True, dropout=0.3)
    x = _conv_block(x, 512, 3, bn=False, act="leaky", pool=False, dropout=0.3)
    x = layers.Flatten()(x)
    x = layers.Dense(256)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inp, out, name="report")


def ckplus(input_shape, num_classes: int) -> keras.Model:
    """The report's CK+ model: 3 valid convs + Dense 512/256, 92% on a random split."""
    inp = keras.Input(input_shape, name="face")
    x = inp
    for f, k in ((32, 3), (64, 3), (128, 5)):
        x = layers.Conv2D(f, k, padding="valid", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inp, out, name="ckplus")


def _bn_relu_conv(x, filters: int, stride: int = 1):
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def edge(input_shape, num_classes: int, widths=(32, 48, 96, 192, 384), name: str = "edge") -> keras.Model:
    """Edge model: VGG-style 3x3 conv pairs with BatchNorm, early downsampling, global pooling.

    Costs about 68M multiply-adds per 48x48 face (the report model: 82M) with 1.3M parameters;
    the global-average-pooled head keeps the parameter count low and the model shift-tolerant.
    """
    inp = keras.Input(input_shape, name="face")
    w0, w1, w2, w3, w4 = widths
    x = _bn_relu_conv(inp, w0)
    x = _bn_relu_conv(x, w0, stride=2)  # 24x24
    for w in (w1, w2, w3):
        x = _bn_relu_conv(x, w)
        x = _bn_relu_conv(x, w)
        x = layers.MaxPooling2D(2)(x)  # 12, 6, 3
    x = _bn_relu_conv(x, w4)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.4)(x)
    out = layers.Dense(num_classes, activation="softmax", name="probs", dtype="float32")(x)
    return keras.Model(inp, out, name=name)


def edge_fast(input_shape, num_classes: int) -> keras.Model:
    """``edge`` with thinner 48x48 and 24x24 stages, where a multiply-add is slowest on a CPU core.

    About 44M multiply-adds (edge: 68M) for the <= 1 ms float budget with as many parameters
    (1.30M): the 6x6 and 3x3 stages, where a multiply-add is cheap, are wider instead.
    """
    return edge(input_shape, num_classes, widths=(24, 32, 64, 192, 448), name="edge_fast")


def edge_wide(input_shape, num_classes: int) -> keras.Model:
    """``edge`` widened to just under 2M parameters: the accuracy end of the edge family (about 116M MACs)."""
    return edge(input_shape, num_classes, widths=(48, 64, 128, 224, 448), name="edge_wide")


@dataclass(frozen=True)
class ArchSpec:
    build: Callable[..., keras.Model]
    learning_rate: float
    epochs: int
    batch_size: int
    about: str


ARCHS: dict[str, ArchSpec] = {
    "reference": ArchSpec(reference, 1e-4, 15, 128, "report baseline, 4 conv blocks, 58% (report)"),
    "report": ArchSpec(report, 1e-4, 25, 128, "report's 5-conv LeakyReLU model, 62.1% (report)"),
    "ckplus": ArchSpec(ckplus, 1e-3, 20, 32, "report's CK+ model, 92% random split (report)"),
    "edge": ArchSpec(edge, 2e-3, 60, 128, "edge VGG-style model, GAP head (the first edge candidate)"),
    "edge_fast": ArchSpec(edge_fast, 2e-3, 60, 128, "edge, thin early stages: 44M MACs for <= 1 ms float"),
    "edge_wide": ArchSpec(edge_wide, 2e-3, 60, 128, "edge widened to about 1.9M parameters (116M MACs)"),
}
