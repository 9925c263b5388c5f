"""Start a run from existing weights: a Keras file, a ``.weights.h5`` or a shipped ONNX model.

A shipped ``.onnx`` file is the small, committed artefact that survives between sessions, so a
new training cycle can start from it without keeping 40 MB optimizer dumps. tf2onnx folds each
BatchNorm into the convolution before it; :func:`load_onnx_weights` puts the folded kernels
back and recalibrates each BatchNorm on real faces so that (a) inference is exactly the ONNX
model's and (b) in training mode, where BatchNorm uses batch statistics, the layer still
starts from what the ONNX model computes.

A classifier head with other labels (FER2013's 7 vs FER+'s 8) is mapped row by row by label
name; labels the source never saw start from a fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgefer.runtime.errors import ModelError

from .runfolder import RunFolder

# Inference through Keras and through ONNX Runtime must agree this closely after the import;
# bfloat16 keeps 8 mantissa bits, so mixed-precision models get a looser bound.
MAX_ABS_DIFF = {"float32": 1e-3, "bfloat16": 0.05}


# Weights that cannot be carried into the network being trained.
TransferError = ModelError


def init_weights(model, source: str | Path, labels: Sequence[str], faces: np.ndarray | None = None) -> str:
    """Load ``source`` into ``model``; returns a one-line description of what was loaded.

    ``faces`` (normalised model inputs) are needed for an ONNX source: they recalibrate
    BatchNorm and verify the import.
    """
    source = init_source(source)
    if source.suffix == ".onnx":
        if faces is None:
            raise TransferError("an ONNX source needs faces to recalibrate BatchNorm")
        return load_onnx_weights(model, source, labels, faces)
    if source.name.endswith(".weights.h5"):
        model.load_weights(source)
        return f"weights of {source}"
    import keras

    src = keras.models.load_model(source, compile=False)
    return _copy_by_order(model, [w for layer in src.layers for w in [layer.get_weights()] if w])


def init_source(source: str | Path) -> Path:
    """The file ``--init-from`` names: a run folder means its checkpoint (runfolder.py), a file itself."""
    source = Path(source)
    if source.is_dir():
        return RunFolder(source).model_file()
    if not source.is_file():
        raise TransferError(f"--init-from: no such file: {source}")
    return source


# What a run.json says about how the weights came to be, beyond the command the run started with.
RECORD_KEYS = (
    "recipe",  # the recipe (name, sha256, stage) that trained the run, when one did
    "init_from",  # the parent model's recipe, so a chain of cycles stays reproducible
    "extended",  # --resume with more epochs or a longer average
    "averaged",  # the checkpoints whose mean the weights are
)


def training_record(run: dict) -> dict:
    """A run's recipe for a card or a child's lineage: its config plus the RECORD_KEYS it has."""
    return {**run.get("config", {}), **{key: run[key] for key in RECORD_KEYS if run.get(key)}}


def lineage(source: str | Path) -> dict:
    """What a new cycle starts from, for its card: the file, its hash and the parent's own recipe.

    Shipped files are replaced by their successors, so the parent's training (itself possibly
    started from another model) is copied rather than referenced.
    """
    import hashlib
    import json

    from edgefer.runtime.metadata import CARD_KEY

    source = init_source(source)
    out: dict = {"file": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    card: dict = {}
    if source.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
        card = json.loads(props.get(CARD_KEY, "{}"))
    elif (folder := RunFolder.of_model(source)) is not None:  # a run folder's .keras: its run.json is the card
        run = folder.read_run()
        training = training_record(run)
        if folder.history.is_file():  # a run stopped early (a time limit) has fewer rows than its planned epochs
            training["epochs_run"] = folder.finished_epochs()
        card = {"arch": training.get("arch"), "training": training, "train_data": run.get("train_data")}
        if (metrics := folder.read_metrics()) is not None:
            card["metrics"] = {"run-validation": metrics}
    for key in ("arch", "train_data", "training"):
        if card.get(key):
            out[key] = card[key]
    metrics = card.get("metrics", {})
    out["metrics"] = {k: v["accuracy"] for k, v in metrics.items() if isinstance(v, dict) and "accuracy" in v}
    return out


def load_onnx_weights(model, path: Path, labels: Sequence[str], faces: np.ndarray) -> str:
    import onnx
    from onnx import numpy_helper

    from edgefer.runtime.metadata import parse_props

    proto = onnx.load(str(path))
    graph = proto.graph
    props = {p.key: p.value for p in proto.metadata_props}
    src_labels = parse_props(props, path).labels if props else None
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = [_conv_params(n, graph.node, inits) for n in graph.node if n.op_type == "Conv"]
    dense = [_dense_params(n, graph.node, inits) for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    k_convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    k_dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    if len(convs) != len(k_convs) or len(dense) != len(k_dense):
        raise TransferError(
            f"{path.name} has {len(convs)} convolutions and {len(dense)} dense layers; "
            f"the model has {len(k_convs)} and {len(k_dense)}: not the same architecture"
        )
    folded = []  # BatchNorm layers that get the folded bias, recalibrated below
    for layer, (w, bias) in zip(k_convs, convs):
        kernel = w.transpose(2, 3, 1, 0)  # ONNX OIHW -> Keras HWIO
        bn = _following_batchnorm(layer)
        if bn is None:
            _set(layer, [kernel, bias] if layer.use_bias else [kernel], path)
        else:
            _set(layer, [kernel] + ([np.zeros_like(bias)] if layer.use_bias else []), path)
            bn.set_weights([np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1 - bn.epsilon)])
            folded.append(bn)
    head_note = ""
    head = k_dense[-1]
    for layer, (w, b) in zip(k_dense, dense):
        if layer is head and (w.shape[1] != layer.units or (src_labels and list(src_labels) != list(labels))):
            w, b, head_note = _map_head(layer, w, b, src_labels or (), labels)
        _set(layer, [w, b], path)
    _recalibrate(model, folded, faces)
    diff = _max_diff(model, path, faces, labels, src_labels or labels)
    bound = MAX_ABS_DIFF.get(model.compute_dtype, MAX_ABS_DIFF["bfloat16"])
    if diff > bound:
        raise TransferError(f"import of {path.name} differs from ONNX Runtime by {diff:.2g} (> {bound})")
    return f"weights of {path.name} (max |p_keras - p_onnx| = {diff:.1e} on {len(faces)} faces){head_note}"


def _conv_params(node, nodes, inits) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of a Conv, with a per-channel Mul/Add after it (an unfolded BatchNorm) folded in."""
    w = inits[node.input[1]].astype(np.float64)
    b = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros(w.shape[0])
    out = node.output[0]
    for op in ("Mul", "Add"):
        nxt = [n for n in nodes if out in n.input]
        if len(nxt) != 1 or nxt[0].op_type != op:
            continue
        const = [inits[i] for i in nxt[0].input if i != out and i in inits]
        if len(const) != 1 or const[0].size != w.shape[0]:
            continue
        c = const[0].reshape(-1).astype(np.float64)
        if op == "Mul":
            w, b = w * c[:, None, None, None], b * c
        else:
            b = b + c
        out = nxt[0].output[0]
    return w.astype(np.float32), b.astype(np.float32)


def _dense_params(node, nodes, inits) -> tuple[np.ndarray, np.ndarray]:
    w = inits[node.input[1]]
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return (w.T if trans_b else w), inits[node.input[2]]
    out = node.output[0]
    add = next((n for n in nodes if n.op_type == "Add" and out in n.input), None)
    if add is None:
        return w, np.zeros(w.shape[1], np.float32)
    other = [i for i in add.input if i != out][0]
    return w, inits[other]


def _map_head(layer, w: np.ndarray, b: np.ndarray, src: Sequence[str], dst: Sequence[str]):
    """Rows of the new head copied from the source by label name; the rest keep their fresh init."""
    new_w, new_b = (np.array(a) for a in layer.get_weights())
    shared = [name for name in dst if name in src]
    for name in shared:
        new_w[:, dst.index(name)] = w[:, src.index(name)]
        new_b[dst.index(name)] = b[src.index(name)]
    fresh = [name for name in dst if name not in src]
    return new_w, new_b, f"; head mapped by label ({len(shared)} shared, fresh: {', '.join(fresh) or 'none'})"


def _following_batchnorm(layer):
    for node in layer._outbound_nodes:
        nxt = node.operation
        if type(nxt).__name__ == "BatchNormalization":
            return nxt
    return None


def _set(layer, weights: list[np.ndarray], path: Path) -> None:
    want = [tuple(v.shape) for v in layer.get_weights()]
    got = [tuple(np.shape(v)) for v in weights]
    if want != got:
        raise TransferError(f"{path.name}: layer {layer.name} expects shapes {want}, the file has {got}")
    layer.set_weights([np.asarray(v, np.float32) for v in weights])


def _recalibrate(model, bns: list, faces: np.ndarray) -> None:
    """Give each BatchNorm the data statistics of its input while keeping its inference output.

    With moving mean m, variance v, gamma = sqrt(v + eps) and beta = bias + m, the layer computes
    x + bias at inference (the folded ONNX layer) and about the same with batch statistics.
    """
    if not bns:
        return
    from .average import input_statistics

    for bn, (m, v) in zip(bns, input_statistics(model, bns, faces, batch=256)):
        bias = bn.get_weights()[1]
        bn.set_weights([np.sqrt(v + bn.epsilon), bias + m, m, v])


def _max_diff(model, path: Path, faces: np.ndarray, labels: Sequence[str], src_labels: Sequence[str]) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ref = sess.run(None, {name: faces.astype(np.float32)})[0]
    got = np.asarray(model.predict(faces, batch_size=256, verbose=0), np.float64)
    if list(labels) != list(src_labels):
        # Compare the logits' order-free part: the shared labels' probabilities renormalised.
        shared = [n for n in labels if n in src_labels]
        ref = ref[:, [list(src_labels).index(n) for n in shared]]
        got = got[:, [list(labels).index(n) for n in shared]]
        ref, got = ref / ref.sum(1, keepdims=True), got / got.sum(1, keepdims=True)
    return float(np.abs(ref - got).max())


def _copy_by_order(model, weights: list[list[np.ndarray]]) -> str:
    """Layer by layer; a layer whose shapes differ (a head with another class count) stays fresh."""
    layers = [layer for layer in model.layers if layer.get_weights()]
    if len(layers) != len(weights):
        raise TransferError(f"the source has {len(weights)} layers with weights, the model {len(layers)}")
    skipped = []
    for layer, w in zip(layers, weights):
        if [tuple(v.shape) for v in layer.get_weights()] == [tuple(v.shape) for v in w]:
            layer.set_weights(w)
        else:
            skipped.append(layer.name)
    return "weights by layer order" + (f" (fresh: {', '.join(skipped)})" if skipped else "")
