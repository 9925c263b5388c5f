"""BlazeFace decoding, suppression, letterboxing and tiling, on synthetic data and the bundled models."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from edgefer.runtime import blazeface as bf
from edgefer.runtime.detectors import make_detector
from edgefer.runtime.preprocess import PreprocessSpec, crop_faces, eye_angle


def test_anchor_grids_match_mediapipes_counts_and_order() -> None:
    short = bf.ssd_anchors(bf.SHORT_RANGE)
    full = bf.ssd_anchors(bf.FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)  # num_boxes in the graphs
    # stride 8: 16x16 cells, 2 anchors each, row by row; then stride 16: 8x8 cells, 6 each
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(short[2], [1.5 / 16, 0.5 / 16])
    assert np.allclose(short[32], [0.5 / 16, 1.5 / 16])
    assert np.allclose(short[512:518], [0.5 / 8, 0.5 / 8]) and np.allclose(short[518], [1.5 / 8, 0.5 / 8])
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])


def test_a_smaller_input_has_the_square_inputs_anchors_for_the_rows_it_keeps() -> None:
    spec = bf.SHORT_RANGE
    square = bf.ssd_anchors(spec)
    short = bf.ssd_anchors(spec, 96, 128)  # a 4:3 frame: 12 of 16 rows at stride 8, 6 of 8 at stride 16
    want = np.concatenate([square[: 12 * 16 * 2], square[512 : 512 + 6 * 8 * 6]])
    assert short.shape == (12 * 16 * 2 + 6 * 8 * 6, 2) and np.allclose(short, want)
    narrow = bf.ssd_anchors(spec, 128, 96)  # portrait: fewer columns, the same units
    assert np.allclose(narrow[:2], square[:2]) and narrow[:, 0].max() < 96 / 128


@pytest.mark.parametrize(("spec", "frame", "free", "want"), [
    (bf.SHORT_RANGE, (640, 480), True, (96, 128)),
    (bf.SHORT_RANGE, (1280, 720), True, (80, 128)),
    (bf.SHORT_RANGE, (480, 640), True, (128, 96)),
    (bf.SHORT_RANGE, (500, 500), True, (128, 128)),
    (bf.SHORT_RANGE, (640, 480), False, (128, 128)),
    (bf.FULL_RANGE, (640, 480), True, (160, 192)),
    (bf.FULL_RANGE, (1920, 1080), True, (128, 192)),
])
def test_input_shape_is_the_smallest_multiple_that_holds_the_frame(spec, frame, free, want) -> None:
    assert bf.input_shape(spec, *frame, free) == want


def test_the_smallest_input_finds_the_same_faces_as_the_square(sample_frames) -> None:
    from edgefer.export.detectors import MAX_BOX_SHIFT, decoded_faces

    for name in ("blazeface", "blazeface-full"):
        with make_detector(name) as det:
            assert det._run.free_size, f"the bundled {name} ONNX file should take free input sizes"
            for frame in sample_frames:
                h, w = frame.shape[:2]
                tight = decoded_faces(det._run, frame, det.spec, bf.input_shape(det.spec, w, h, True))
                square = decoded_faces(det._run, frame, det.spec, (det.spec.input_size,) * 2)
                assert len(tight) == len(square) == 1
                width = square.boxes[0, 2] - square.boxes[0, 0]
                assert np.abs(tight.boxes - square.boxes).max() / width <= MAX_BOX_SHIFT


def _encode(box: tuple[float, float, float, float], kps: np.ndarray, anchor: np.ndarray, size: int) -> np.ndarray:
    """The inverse of decode for one anchor: normalised box (cx, cy, w, h) and keypoints -> raw row."""
    cx, cy, w, h = box
    row = [(cx - anchor[0]) * size, (cy - anchor[1]) * size, w * size, h * size]
    for kx, ky in kps:
        row += [(kx - anchor[0]) * size, (ky - anchor[1]) * size]
    return np.array(row, np.float32)


def test_decode_recovers_an_encoded_box_and_keypoints() -> None:
    spec = bf.SHORT_RANGE
    anchors = bf.ssd_anchors(spec)
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 5, (896, 16)).astype(np.float32)
    logits = np.full(896, -20.0, np.float32)
    kps = np.array([[0.40, 0.45], [0.60, 0.45], [0.5, 0.55], [0.5, 0.65], [0.3, 0.5], [0.7, 0.5]], np.float32)
    raw[700] = _encode((0.5, 0.52, 0.4, 0.42), kps, anchors[700], spec.input_size)
    logits[700] = 2.0
    logits[701] = 300.0  # clipped to 100: still a valid probability
    raw[701] = _encode((0.2, 0.2, 0.1, 0.1), kps * 0.2 + 0.1, anchors[701], spec.input_size)
    det = bf.decode(raw, logits[:, None], anchors, spec, min_score=0.5)
    assert len(det) == 2
    assert np.allclose(det.boxes[0], [0.3, 0.31, 0.7, 0.73], atol=1e-5)
    assert np.allclose(det.keypoints[0], kps, atol=1e-5)
    assert det.scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1e-6)
    assert det.scores[1] == pytest.approx(1.0) and np.isfinite(det.scores).all()
    assert len(bf.decode(raw, logits, anchors, spec, min_score=0.99)) == 1


def test_weighted_nms_averages_overlapping_boxes_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0.5, 0, 10.5, 10]], np.float32)
    kps = np.repeat(boxes[:, None, :2], 6, axis=1)
    det = bf.Decoded(boxes, kps, np.array([0.9, 0.6, 0.8, 0.3], np.float32))
    out = bf.weighted_nms(det, iou_threshold=0.3)
    assert len(out) == 2 and list(out.scores) == pytest.approx([0.9, 0.8])
    want = (0.9 * boxes[0] + 0.6 * boxes[1] + 0.3 * boxes[3]) / 1.8
    assert np.allclose(out.boxes[0], want) and np.allclose(out.keypoints[0][0], want[:2])
    assert np.allclose(out.boxes[1], boxes[2])
    assert len(bf.weighted_nms(det, 0.3, max_faces=1)) == 1
    assert len(bf.weighted_nms(bf.Decoded.empty(), 0.3)) == 0


@pytest.mark.parametrize("free", [False, True])
@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (1080, 1920), (100, 100)])
def test_letterbox_maps_tensor_points_back_to_frame_pixels(shape: tuple[int, int], free: bool) -> None:
    h, w = shape
    frame = np.zeros((h, w, 3), np.uint8)
    x, y = int(w * 0.7), int(h * 0.3)
    r = max(2, w // 60)
    cv2.circle(frame, (x, y), r, (255, 255, 255), -1)
    out = np.empty((*bf.input_shape(bf.SHORT_RANGE, w, h, free), 3), np.float32)
    win = bf.letterbox(frame, (0, 0, w, h), 128, out)
    assert out.min() == pytest.approx(-1.0) and out.max() <= 1.0
    # the letterbox border is black (-1) on the short side, centred
    if w > h and not free:
        assert np.all(out[0] == -1.0) and np.all(out[-1] == -1.0) and win.pad_y > 0
    ty, tx = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    back = win.to_frame(np.array([[(tx + 0.5) / 128, (ty + 0.5) / 128]]), 128)[0]
    assert abs(back[0] - x) <= r + 1 / win.scale and abs(back[1] - y) <= r + 1 / win.scale


def test_tiles_cover_the_frame_and_inner_edges_are_known() -> None:
    tiles = bf.tile_grid(1920, 1080, 640)
    cover = np.zeros((1080, 1920), bool)
    for x, y, w, h in tiles:
        assert w == h == 640 and x >= 0 and x + w <= 1920 and y + h <= 1080
        cover[y : y + h, x : x + w] = True
    assert cover.all() and len(tiles) == 8
    assert bf.tile_grid(500, 400, 640) == [(0, 0, 500, 400)]
    win = bf.Window(640, 0, 640, 640, 0.3, 0.0, 0.0)  # a tile in the top middle
    boxes = np.array([[641, 100, 700, 160], [700, 100, 760, 160], [1200, 600, 1280, 640], [700, 0, 760, 50]])
    # left edge and bottom-right corner are inner edges; the top edge is the frame's
    assert list(bf.touches_inner_edge(boxes, win, 1920, 1080)) == [True, False, True, False]


def test_spec_round_trips_and_bad_specs_are_refused() -> None:
    for spec in (bf.SHORT_RANGE, bf.FULL_RANGE):
        assert bf.BlazeFaceSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        bf.BlazeFaceSpec.from_dict({**bf.SHORT_RANGE.to_dict(), "kind": "yolo"})
    with pytest.raises(ValueError):
        bf.BlazeFaceSpec.from_dict({**bf.SHORT_RANGE.to_dict(), "strides": []})


@pytest.mark.parametrize("name", ["blazeface", "blazeface-full"])
def test_bundled_models_describe_themselves_and_find_the_sample_face(name: str, sample_frames) -> None:
    with make_detector(name) as det:
        spec = det.spec
        assert spec == (bf.SHORT_RANGE if name == "blazeface" else bf.FULL_RANGE)
        found = [det.detect(f) for f in sample_frames]
    assert all(len(f) == 1 for f in found)
    assert all(len(f[0].keypoints) == 6 for f in found)


def test_tiles_run_as_one_batch_equal_to_single_runs(sample_frames) -> None:
    det = make_detector("blazeface")
    frame = cv2.resize(sample_frames[0], (960, 720))
    x = np.empty((3, 128, 128, 3), np.float32)
    for i, region in enumerate([(0, 0, 960, 720), (0, 0, 480, 480), (480, 240, 480, 480)]):
        bf.letterbox(frame, region, 128, x[i])
    boxes, scores = det._run(x)
    for i in range(3):
        b1, s1 = det._run(x[i : i + 1])
        assert np.allclose(boxes[i], b1[0], atol=1e-4) and np.allclose(scores[i], s1[0], atol=1e-4)


def test_tiling_finds_a_small_face_a_single_pass_misses(sample_frames) -> None:
    from edgefer.runtime.settings import DetectorSettings

    face = sample_frames[0]  # 320x240 with one ~85 px face
    big = np.zeros((1440, 2560, 3), np.uint8)  # the face is now 85 px in a 2560 px frame
    big[600:840, 1700:2020] = face
    assert make_detector("blazeface", DetectorSettings(det_size=0)).detect(big) == []  # one pass
    tiled = make_detector("blazeface", DetectorSettings(det_size=480)).detect(big)
    assert len(tiled) == 1
    x, y, w, h = tiled[0].box
    assert x >= 1700 and x + w <= 2020 and y >= 600 and y + h <= 840
    for name in ("blazeface", "blazeface-full"):  # both tile by themselves on a frame this large
        assert len(make_detector(name).detect(big)) == 1
        assert len(make_detector(name).windows(2560, 1440)) > 1 and make_detector(name).windows(1280, 720) == [
            (0, 0, 1280, 720)]


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="LiteRT not installed")
def test_tflite_backend_matches_onnx(sample_frames) -> None:
    from edgefer.models import DETECTORS_DIR

    onnx_det = make_detector("blazeface")
    tfl_det = make_detector("blazeface", model_path=DETECTORS_DIR / "blazeface_short.tflite")
    for frame in sample_frames[:4]:
        a, b = onnx_det.detect(frame), tfl_det.detect(frame)
        assert len(a) == len(b) == 1
        assert np.abs(np.subtract(a[0].box, b[0].box)).max() <= 1


def test_alignment_levels_a_tilted_face() -> None:
    # a synthetic "face": two dark eyes on a bright disc; rotated 20 degrees
    img = np.full((200, 200), 200, np.uint8)
    cv2.circle(img, (80, 90), 8, 0, -1)
    cv2.circle(img, (120, 90), 8, 0, -1)
    m = cv2.getRotationMatrix2D((100, 100), -20, 1.0)  # clockwise in the image
    tilted = cv2.warpAffine(img, m, (200, 200), borderValue=200)
    eyes = cv2.transform(np.array([[[80, 90], [120, 90]]], np.float32), m)[0]
    assert eye_angle(eyes) == pytest.approx(20, abs=0.5)
    spec = PreprocessSpec(size=(48, 48), margin=0.0, align=True)
    box = (50, 50, 100, 100)
    upright = crop_faces(tilted, [box], spec, [[tuple(eyes[0]), tuple(eyes[1])]])[0]
    plain = crop_faces(tilted, [box], spec)[0]

    def eye_rows(face: np.ndarray) -> tuple[int, int]:
        left, right = face[:, :24], face[:, 24:]
        return int(np.argmin(left.min(axis=1))), int(np.argmin(right.min(axis=1)))

    a, b = eye_rows(upright)
    assert abs(a - b) <= 1  # level after alignment
    a, b = eye_rows(plain)
    assert abs(a - b) >= 4  # tilted without it
    assert PreprocessSpec.from_json(spec.to_json()).align is True
    assert "align" not in PreprocessSpec().to_json()  # old cards stay byte-identical


def _crop_from_whole_gray_frame(image: np.ndarray, box, spec: PreprocessSpec, keypoints) -> np.ndarray:
    """The contract written out plainly: gray the whole frame, then cut (and level) the box."""
    from edgefer.runtime.preprocess import MIN_ALIGN_DEGREES, expand_box, resize_face, to_gray

    gray = to_gray(image)
    x, y, w, h = expand_box(box, spec.margin, gray.shape)
    angle = eye_angle(keypoints) if keypoints else 0.0
    if abs(angle) < MIN_ALIGN_DEGREES:
        return resize_face(gray[y : y + h, x : x + w], spec.size)
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, 1.0)
    m[:, 2] -= (x, y)
    return resize_face(cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                       spec.size)


def test_crops_equal_those_cut_from_a_whole_gray_frame() -> None:
    # crop_faces converts only the pixels each crop reads; boxes inside, across and at the
    # frame's edges, level and tilted both ways, must give the pixels of the plain recipe
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    spec = PreprocessSpec(size=(48, 48), margin=0.2, align=True)
    worst = 0
    for _ in range(200):
        w = int(rng.integers(8, 200))
        x, y = int(rng.integers(-w // 2, 320 - w // 2)), int(rng.integers(-w // 2, 240 - w // 2))
        box = (max(0, x), max(0, y), w, w)
        tilt = float(rng.uniform(-40, 40))
        cx, cy = box[0] + w / 2, box[1] + w / 3
        dx, dy = 0.2 * w * np.cos(np.radians(tilt)), 0.2 * w * np.sin(np.radians(tilt))
        eyes = [(cx - dx, cy - dy), (cx + dx, cy + dy)]
        got = crop_faces(frame, [box], spec, [eyes])[0]
        want = _crop_from_whole_gray_frame(frame, box, spec, eyes)
        worst = max(worst, int(np.abs(got.astype(int) - want).max()))
    assert worst == 0
