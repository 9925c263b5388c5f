"""What an architecture costs per face: parameters and multiply-accumulates.

MACs are counted from the built Keras graph's shapes (convolutions and dense layers, which are
all but a rounding error of the work); FLOPs are about twice the MACs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int

    @property
    def mflops(self) -> float:
        return 2 * self.macs / 1e6


def complexity(model) -> Complexity:
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            macs += _conv_macs(layer, kind)
        elif kind == "Dense":
            macs += int(np.prod(layer.kernel.shape))
    return Complexity(int(model.count_params()), int(macs))


def _conv_macs(layer, kind: str) -> int:
    out_h, out_w = layer.output.shape[1:3]
    in_ch = layer.input.shape[-1]
    kh, kw = layer.kernel_size
    if kind == "DepthwiseConv2D":
        return out_h * out_w * in_ch * layer.depth_multiplier * kh * kw
    if kind == "SeparableConv2D":
        depth = out_h * out_w * in_ch * layer.depth_multiplier * kh * kw
        return depth + out_h * out_w * in_ch * layer.depth_multiplier * layer.filters
    return out_h * out_w * layer.filters * kh * kw * in_ch // layer.groups
