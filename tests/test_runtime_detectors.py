"""Detectors find the faces in the shared photos; the mediapipe import stays TensorFlow-free."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.detectors import DetectorError, HaarDetector, make_detector
from edgefer.runtime.sources import read_image

# Minimum faces per group photo. BlazeFace short-range is made for faces within ~2 m of a
# webcam: on facerec_obama_and_biden.jpg (2000 px wide, faces ~10% of it) mediapipe finds
# none and blazeface one; full range finds both.
GROUP_PHOTOS = {
    "blazeface": {
        "deepface_couple.jpg": 2,
        "deepface_selfie-many-people.jpg": 4,
        "facerec_two_people.jpg": 2,
    },
    "blazeface-full": {
        "deepface_couple.jpg": 2,
        "deepface_selfie-many-people.jpg": 4,
        "facerec_obama_and_biden.jpg": 2,
        "facerec_two_people.jpg": 2,
    },
    "haar": {
        "deepface_couple.jpg": 2,
        "deepface_selfie-many-people.jpg": 3,
        "facerec_obama_and_biden.jpg": 2,
        "facerec_two_people.jpg": 2,
    },
    "mediapipe": {
        "deepface_couple.jpg": 2,
        "deepface_selfie-many-people.jpg": 3,
        "facerec_two_people.jpg": 2,
    },
}
ALL_GROUP_PHOTOS = set(GROUP_PHOTOS["haar"])

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
NO_MEDIAPIPE = "mediapipe not installed (pip install 'edgefer[mediapipe]')"
DETECTORS = [
    "blazeface",
    "blazeface-full",
    "haar",
    pytest.param(
        "mediapipe",
        marks=pytest.mark.skipif(not HAS_MEDIAPIPE, reason=NO_MEDIAPIPE),
    ),
]


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request: pytest.FixtureRequest):
    with make_detector(request.param) as d:
        yield d


def _photos(faces_dir: Path) -> dict[str, np.ndarray]:
    files = sorted(p for p in faces_dir.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    photos = {p.name: read_image(p) for p in files}
    assert len(photos) >= 20
    return photos


def test_detector_finds_a_face_in_every_single_person_photo(detector, faces_dir: Path) -> None:
    missed = []
    for name, image in _photos(faces_dir).items():
        if name in ALL_GROUP_PHOTOS:
            continue
        detections = detector.detect(image)
        h, w = image.shape[:2]
        for d in detections:
            x, y, bw, bh = d.box
            assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h and 0.0 < d.score <= 1.0
        if detections and detector.name.startswith("blazeface"):
            # the photo's one person: the most confident face (a rare false positive need not be upright)
            _assert_keypoints_in_order(max(detections, key=lambda d: d.score))
        if not detections:
            missed.append(name)
    assert not missed, f"{detector.name} found no face in {missed}"


def test_detector_finds_several_faces_in_group_photos(detector, faces_dir: Path) -> None:
    photos = _photos(faces_dir)
    found = {name: len(detector.detect(photos[name])) for name in GROUP_PHOTOS[detector.name]}
    short = {n: c for n, c in found.items() if c < GROUP_PHOTOS[detector.name][n]}
    assert not short, f"{detector.name}: too few faces {short} (expected {GROUP_PHOTOS[detector.name]})"


def _assert_keypoints_in_order(d) -> None:
    """Upright faces: the person's right eye (image left) before the left eye, eyes above the
    nose tip above the mouth, the nose between the ears, and all of them near the box."""
    (rex, rey), (lex, ley), (nx, ny), (mx, my), (rtx, _), (ltx, _) = d.keypoints
    x, y, w, h = d.box
    assert rex < nx < lex and rtx < nx < ltx, d
    assert max(rey, ley) < ny < my, d
    for kx, ky in d.keypoints:
        assert x - 0.25 * w <= kx <= x + 1.25 * w and y - 0.25 * h <= ky <= y + 1.25 * h, d


def test_detectors_find_nothing_in_a_blank_frame(detector) -> None:
    assert detector.detect(np.full((480, 640, 3), 127, dtype=np.uint8)) == []


def test_haar_accepts_gray_input_and_maps_boxes_back_to_full_resolution(faces_dir: Path) -> None:
    image = read_image(faces_dir / "facerec_obama-720p.jpg")
    gray = image.mean(axis=2).astype(np.uint8)
    det = HaarDetector(max_side=320)
    boxes = [d.box for d in det.detect(gray)]
    assert boxes and all(b[2] > 100 for b in boxes)  # a 720p portrait face, not a 320 px one


@pytest.mark.parametrize("shape", [(10, 10000, 3), (10000, 10, 3), (8, 8, 3), (1, 1, 3)])
@pytest.mark.parametrize("name", ["blazeface", "blazeface-full", "haar"])
def test_detectors_accept_any_aspect_ratio(name: str, shape: tuple[int, int, int]) -> None:
    with make_detector(name) as d:
        assert d.detect(np.full(shape, 90, np.uint8)) == []


def test_settings_filter_every_detector(faces_dir: Path) -> None:
    from edgefer.runtime.settings import DetectorSettings

    image = read_image(faces_dir / "deepface_selfie-many-people.jpg")
    for name in ("blazeface", "haar"):
        every = make_detector(name).detect(image)
        assert len(every) >= 3
        widths = sorted(d.box[2] for d in every)
        big = make_detector(name, DetectorSettings(min_face=widths[1] + 1)).detect(image)
        assert big and all(d.box[2] > widths[1] for d in big)
        if name == "blazeface":  # a pure filter (haar also skips the small scales, so its boxes move)
            assert len(big) == len(every) - 2
        two = make_detector(name, DetectorSettings(max_faces=2)).detect(image)
        best = sorted((d.score for d in every), reverse=True)[:2]
        assert sorted((d.score for d in two), reverse=True) == best
        assert make_detector(name, DetectorSettings(min_score=1.0)).detect(image) == []


def test_bad_settings_are_refused() -> None:
    from edgefer.runtime.settings import DetectorSettings

    for bad in ({"det_size": 5}, {"min_face": -1}, {"min_score": 1.5}, {"max_faces": 0}):
        with pytest.raises(ValueError):
            DetectorSettings(**bad)


def test_haar_det_size_sets_the_scan_resolution(faces_dir: Path) -> None:
    from edgefer.runtime.settings import DetectorSettings

    image = read_image(faces_dir / "deepface_selfie-many-people.jpg")
    assert HaarDetector().max_side == 320
    assert HaarDetector(settings=DetectorSettings(det_size=640)).max_side == 640
    # a finer scan finds at least the faces the default one does
    assert len(HaarDetector(settings=DetectorSettings(det_size=640)).detect(image)) >= len(HaarDetector().detect(image))


def test_unknown_detector_name() -> None:
    with pytest.raises(DetectorError, match="unknown detector"):
        make_detector("yolo")


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="mediapipe is installed")
def test_mediapipe_missing_gives_an_install_hint() -> None:
    with pytest.raises(DetectorError, match=r"edgefer\[mediapipe\]"):
        make_detector("mediapipe")


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason=NO_MEDIAPIPE)
@pytest.mark.skipif(not HAS_TENSORFLOW, reason="needs TensorFlow installed to prove it")
def test_mediapipe_detector_does_not_import_tensorflow_even_when_installed() -> None:
    code = (
        "import sys, numpy as np\n"
        "from edgefer.runtime.detectors import make_detector\n"
        "d = make_detector('mediapipe'); d.detect(np.zeros((240, 320, 3), np.uint8)); d.close()\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


def test_haar_local_search_matches_full_scans_on_video(katie_clip) -> None:
    """Between full scans a tracked face is searched for only near its last box."""
    from helpers import first_frames

    from edgefer.runtime.detectors import HaarDetector
    from edgefer.runtime.tracking import iou

    frames = first_frames(katie_clip, 60)
    full, local = HaarDetector(), HaarDetector(full_scan_every=10)
    scans = 0
    original = local._full_scan

    def counting(gray):
        nonlocal scans
        scans += 1
        return original(gray)

    local._full_scan = counting
    ious = []
    for frame in frames:
        a, b = full.detect(frame), local.detect(frame)
        assert len(a) == len(b) == 1
        ious.append(iou(a[0].box, b[0].box))
    assert scans <= len(frames) // 10 + 3  # full scans only every 10th frame (and on a miss)
    assert min(ious) > 0.7 and sum(ious) / len(ious) > 0.9
    local.reset()
    assert local._known == []
