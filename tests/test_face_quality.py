"""The detection-quality evaluator: matching rules on synthetic boxes, then the detectors on the labelled set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import face_quality as fq  # noqa: E402 - benchmarks/ is not a package


def test_matching_is_one_to_one_at_iou_0_4_and_ignore_boxes_do_not_count() -> None:
    faces = [[0, 0, 100, 100], [200, 0, 100, 100]]
    ignore = [[500, 500, 40, 40]]
    detected = [
        [5, 5, 100, 100],  # face 1 (IoU 0.82)
        [0, 0, 90, 95],  # face 1 again: a duplicate is a false positive
        [230, 30, 100, 100],  # face 2 at IoU 0.32: not a match, a false positive
        [502, 502, 40, 40],  # on an ignore box: neither
        [900, 900, 50, 50],  # nothing there: a false positive
    ]
    c = fq.score_image(detected, faces, ignore)
    assert (c.faces, c.found, c.detections, c.false) == (2, 1, 4, 3)
    assert c.recall == 0.5 and c.precision == 0.25 and c.fp_per_image == 3
    assert fq.score_image([], faces, []).found == 0
    assert fq.score_image([[1, 1, 10, 10]], [], []).false == 1


def test_groups_follow_the_source() -> None:
    assert fq.group_of("faces/x.jpg") == "photos"
    assert fq.group_of("videos/facenet_crowd_video.mp4").startswith("crowd")
    assert fq.group_of("videos/sadtalker_WDA_KatieHill_000.mp4") == "talking-head frames"


def test_labels_cover_the_shared_photos_and_clips() -> None:
    data = json.loads(fq.LABELS.read_text())
    groups = {fq.group_of(e["source"]) for e in data["images"]}
    assert groups == {"photos", "talking-head frames", "crowd frames (1080p)"}
    for e in data["images"]:
        w, h = e["size"]
        for x, y, bw, bh in e["faces"] + e.get("ignore", []):
            assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h, e["source"]


@pytest.fixture(scope="module")
def quality(shared_data: Path) -> dict:
    return fq.run(("blazeface", "blazeface-full"), root=shared_data)


def test_default_detector_finds_90_percent_of_photo_faces_with_few_false_positives(quality: dict) -> None:
    photos = quality["blazeface"]["photos"]
    assert photos["recall"] >= 0.9, photos
    assert photos["fp_per_image"] <= 0.1, photos


def test_full_range_finds_half_the_faces_of_1080p_crowd_frames(quality: dict) -> None:
    crowd = quality["blazeface-full"]["crowd frames (1080p)"]
    assert crowd["recall"] >= 0.5, crowd
    assert quality["blazeface-full"]["talking-head frames"]["recall"] == 1.0
