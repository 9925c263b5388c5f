"""Keras -> float32 ONNX with tf2onnx.

tf2onnx 1.17's ``from_keras`` cannot trace a Keras 3 model on its own, so the input
signature is spelled out, with a free batch axis. The model's own softmax is kept: the
ONNX output is probabilities.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .native_output import captured_native_output

if TYPE_CHECKING:
    from .context import ExportContext

BATCH_DIM = "batch"


def convert_to_onnx(ctx: ExportContext, path: Path) -> None:
    """Write the float ONNX graph (no edgefer metadata) to ``path``."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    src = ctx.source
    signature = [tf.TensorSpec((None, *src.input_shape), tf.float32, name=src.input_name)]
    with captured_native_output("tf2onnx conversion"):
        model_proto, _ = tf2onnx.convert.from_keras(src.model, input_signature=signature, opset=ctx.opset)
    if len(model_proto.graph.output) != 1:
        raise ValueError(f"expected one ONNX output, got {len(model_proto.graph.output)}")
    # tf2onnx names the free axis "unk__NN"; a stable name reads better in Netron and ORT.
    for value in (*model_proto.graph.input, *model_proto.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        if not dim0.dim_value:
            dim0.dim_param = BATCH_DIM
    onnx.checker.check_model(model_proto)
    onnx.save(model_proto, str(path))


def export_onnx(ctx: ExportContext, path: Path) -> dict[str, Any]:
    import tf2onnx

    convert_to_onnx(ctx, path)
    return {"tool": f"tf2onnx {tf2onnx.__version__}", "opset": ctx.opset, "batch": "dynamic",
            "output": "softmax probabilities"}
