"""Keras -> TFLite: float32, float16 weights, and full integer INT8.

All three start from ``TFLiteConverter.from_keras_model``: with Keras 3 it goes through a
SavedModel, which freezes the variables (a concrete function keeps them as resources and
INT8 calibration then fails on READ_VARIABLE). The batch axis stays free (-1 in the
signature); the runtime resizes it. TFLite has no edgefer metadata inside the file: the
JSON card beside it is its only metadata.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .native_output import captured_native_output

if TYPE_CHECKING:
    from .context import ExportContext


def _convert(ctx: ExportContext, path: Path, configure=None) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(ctx.source.model)
    if configure is not None:
        configure(converter, tf)
    with captured_native_output("TFLite conversion"), warnings.catch_warnings():
        # Emitted whenever the input is int8; the input scale comes from calibration anyway.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        data = converter.convert()
    path.write_bytes(data)


def _tool() -> str:
    import tensorflow as tf

    return f"tensorflow {tf.__version__} TFLiteConverter"


def export_tflite_float32(ctx: ExportContext, path: Path) -> dict[str, Any]:
    _convert(ctx, path)
    return {"tool": _tool(), "batch": "dynamic (resize the input tensor)"}


def export_tflite_float16(ctx: ExportContext, path: Path) -> dict[str, Any]:
    def configure(converter, tf) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]

    _convert(ctx, path, configure)
    return {
        "tool": _tool(), "batch": "dynamic (resize the input tensor)",
        "quantization": {"weights": "float16", "compute": "float32 on CPU (weights dequantized at load)",
                         "input": "float32", "output": "float32"},
    }


def export_tflite_int8(ctx: ExportContext, path: Path) -> dict[str, Any]:
    x = ctx.calib_inputs()

    def representative():
        # One face per step: the calibrator runs the batch-1 graph.
        for i in range(len(x)):
            yield [x[i : i + 1]]

    def configure(converter, tf) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # Integer-only ops: conversion fails rather than silently leaving float ops behind.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    _convert(ctx, path, configure)
    return {
        "tool": _tool(), "batch": "dynamic (resize the input tensor)",
        "quantization": {
            "weights": "int8 (per-channel for convolutions)", "activations": "int8, calibrated",
            **io_quantization(path),
            "how_to_use": "input_int8 = round(x / input.scale + input.zero_point); "
                          "probs = (output_int8 - output.zero_point) * output.scale",
        },
    }


def io_quantization(path: Path) -> dict[str, dict]:
    """dtype, scale and zero point of the input and output tensors, as LiteRT reads them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))

    def one(d: dict) -> dict:
        scale, zero = d["quantization"]
        return {"dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

    return {"input": one(interp.get_input_details()[0]), "output": one(interp.get_output_details()[0])}
