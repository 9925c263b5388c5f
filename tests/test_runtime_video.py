"""--save video: H.264 with the video extra (browsers play it), MPEG-4 Part 2 without."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefer.models import MODELS_DIR
from edgefer.runtime import outputs
from edgefer.runtime.cli import main

CLIP = MODELS_DIR / "sample_face.mp4"


def _codec(path: Path) -> tuple[str, int]:
    cap = cv2.VideoCapture(str(path))
    code = int(cap.get(cv2.CAP_PROP_FOURCC))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    return "".join(chr(code >> 8 * i & 0xFF) for i in range(4)), frames


def test_save_writes_h264_with_the_video_extra(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="the video extra (PyAV) is not installed")
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", str(CLIP), "--headless", "--jsonl", str(tmp_path / "o.jsonl"),
                 "--save", str(out), "--no-progress"]) == 0
    codec, frames = _codec(out)
    assert codec in ("avc1", "h264", "H264") and frames == 60


def test_without_an_h264_encoder_mp4v_with_one_notice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(outputs, "_h264_available", lambda: False)
    monkeypatch.setattr(outputs, "_NOTICES", set())
    out = tmp_path / "out.mp4"
    with outputs.VideoSink(out, 15.0) as sink:
        for i in range(10):
            sink.write(np.full((64, 96, 3), i * 20, np.uint8))
    codec, frames = _codec(out)
    assert codec in ("mp4v", "FMP4") and frames == 10  # MPEG-4 Part 2, as FFmpeg names it
    notices = [line for line in capsys.readouterr().err.splitlines() if "H.264" in line]
    assert len(notices) == 1 and "edgefer[video]" in notices[0]


def test_h264_needs_even_sides_and_gets_them(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="the video extra (PyAV) is not installed")
    out = tmp_path / "odd.mp4"
    with outputs.VideoSink(out, 10.0) as sink:
        for _ in range(5):
            sink.write(np.zeros((65, 97, 3), np.uint8))
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 64)
    cap.release()


def test_save_of_a_single_image_writes_that_one_file(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    frame = cv2.VideoCapture(str(CLIP)).read()[1]
    cv2.imwrite(str(photo), frame)
    out = tmp_path / "annotated.png"
    assert main(["run", "--source", str(photo), "--headless", "--jsonl", str(tmp_path / "o.jsonl"),
                 "--save", str(out)]) == 0
    shown = cv2.imread(str(out))
    assert out.is_file() and shown.shape == frame.shape and not np.array_equal(shown, frame)
    assert main(["run", "--source", str(photo), "--headless", "--jsonl", str(tmp_path / "o.jsonl"),
                 "--save", str(photo)]) == 2  # never onto the input
