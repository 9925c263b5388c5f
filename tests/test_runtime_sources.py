"""Sources: newest-frame reading for live sources, bad images, missing cameras, clean endings."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefer.runtime import sources
from edgefer.runtime.cli import main
from edgefer.runtime.sources import CaptureSource, ImageSource, LatestFrameReader, SourceError, open_source


class FastFakeCamera:
    """A cv2.VideoCapture stand-in that produces numbered frames every ``period`` seconds."""

    def __init__(self, frames: int, period: float = 0.001) -> None:
        self.frames, self.period, self.n = frames, period, 0
        self.released = False

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.n >= self.frames:
            return False, None
        time.sleep(self.period)
        image = np.full((4, 4, 3), self.n % 256, dtype=np.uint8)
        self.n += 1
        return True, image

    def get(self, prop: int) -> float:
        return 100.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


def test_latest_frame_reader_drops_stale_frames_for_a_slow_consumer() -> None:
    cam = FastFakeCamera(frames=300)
    reader = LatestFrameReader(cam.read)
    got, ages = [], []
    while (item := reader.get(timeout=5)) is not None:
        ages.append(reader.captured - 1 - item[0])  # frames captured after this one, at hand-over
        got.append(item[0])
        time.sleep(0.01)  # a pipeline ten times slower than the camera
    reader.close()
    assert got == sorted(set(got)), "frames must come out in order, never twice"
    assert reader.dropped > 0 and len(got) < 300 / 2
    assert len(got) + reader.dropped == reader.captured == 300, "every frame is either used or dropped"
    assert max(ages) <= 2, "the consumer always gets (nearly) the newest frame: no queue builds up"
    assert got[-1] == 299, "the last frame before the end is still delivered"


def test_live_capture_source_yields_newest_frames_and_ends_cleanly() -> None:
    cam = FastFakeCamera(frames=200)
    with CaptureSource(cam, "fake camera", live=True) as src:
        indices = []
        for frame in src:
            indices.append(frame.index)
            assert int(frame.image[0, 0, 0]) == frame.index % 256  # the image matches its index
            time.sleep(0.01)
        assert src.dropped > 0
        assert len(indices) + src.dropped == 200
        assert np.all(np.diff(indices) >= 1) and np.any(np.diff(indices) > 1)  # gaps = dropped frames
    assert cam.released
    assert not any(t.name == "edgefer-frame-reader" for t in threading.enumerate())


def test_a_stalled_live_source_is_treated_as_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "LIVE_STALL_S", 0.2)
    stop = threading.Event()

    class StallingCamera(FastFakeCamera):
        def read(self):
            if self.n >= 3:
                stop.wait(5)  # hangs like an unplugged USB camera
                return False, None
            return super().read()

    cam = StallingCamera(frames=10)
    src = CaptureSource(cam, "stalling", live=True)
    frames = list(src)
    stop.set()
    src.close()
    assert [f.index for f in frames][-1] == 2


def _write(path: Path, value: int) -> Path:
    cv2.imwrite(str(path), np.full((40, 60, 3), value, dtype=np.uint8))
    return path


def test_unreadable_images_in_a_folder_are_skipped_with_a_warning(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", 10)
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "c.png").write_bytes(b"")
    _write(tmp_path / "d.jpg", 200)
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    warnings: list[str] = []
    src = open_source(tmp_path, warn=warnings.append)
    assert isinstance(src, ImageSource)
    frames = list(src)
    assert [Path(f.name).name for f in frames] == ["a.png", "d.jpg"]
    assert all(f.new_scene and f.timestamp is None for f in frames)
    assert len(warnings) == 2 and all("unreadable" in w for w in warnings)
    assert {p.name for p in src.skipped} == {"b.jpg", "c.png"}


def test_glob_and_single_image_sources(tmp_path: Path) -> None:
    _write(tmp_path / "x1.png", 1)
    _write(tmp_path / "x2.png", 2)
    assert len(list(open_source(str(tmp_path / "x*.png")))) == 2
    assert len(list(open_source(tmp_path / "x1.png"))) == 1
    with pytest.raises(SourceError, match="no images match"):
        open_source(str(tmp_path / "y*.png"))
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")


def test_missing_camera_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources, "_camera_device", lambda i: tmp_path / f"video{i}")
    monkeypatch.setattr(sources.sys, "platform", "linux")
    with pytest.raises(SourceError) as err:
        open_source("0")
    assert "camera 0 not found" in str(err.value) and "\n" not in str(err.value)


def _no_camera(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make camera lookups fail the Linux way, whether or not this machine has a camera."""
    monkeypatch.setattr(sources, "_camera_device", lambda i: tmp_path / f"video{i}")
    monkeypatch.setattr(sources, "glob_devices", lambda: [])
    monkeypatch.setattr(sources.sys, "platform", "linux")


def test_cli_explicit_camera_without_camera_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_camera(monkeypatch, tmp_path)
    code = main(["run", "--source", "0", "--headless", "--model", str(tiny_onnx)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [
        f"edgefer run: error: camera 0 not found: {tmp_path / 'video0'} does not exist "
        "(no /dev/video* devices at all)"
    ]
    assert captured.out == ""


def test_cli_without_source_and_camera_plays_the_sample_clip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_camera(monkeypatch, tmp_path)
    code = main(["run", "--headless", "--max-frames", "3", "--model", str(tiny_onnx)])
    captured = capsys.readouterr()
    assert code == 0
    assert "playing the bundled sample clip sample_face.mp4" in captured.err
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert records[0]["source"].endswith("sample_face.mp4")


def test_outputs_are_complete_when_a_video_ends(tmp_path: Path, tiny_onnx: Path) -> None:
    from edgefer.models import MODELS_DIR

    clip = MODELS_DIR / "sample_face.mp4"
    out_video, out_jsonl = tmp_path / "out" / "annotated.mp4", tmp_path / "out" / "faces.jsonl"
    code = main([
        "run", "--source", str(clip), "--headless", "--model", str(tiny_onnx),
        "--jsonl", str(out_jsonl), "--save", str(out_video),
    ])
    assert code == 0
    n_src = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    lines = out_jsonl.read_text().splitlines()
    assert len(lines) == n_src and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    cap = cv2.VideoCapture(str(out_video))
    assert cap.isOpened(), "the annotated MP4 must be finalised (playable)"
    n_out = 0
    while cap.read()[0]:
        n_out += 1
    assert n_out == n_src


def test_cli_image_folder_warns_skips_and_saves_annotated_images(
    tmp_path: Path, tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "ok.png", 90)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    code = main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx), "--save", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert f"warning: skipping unreadable image {folder / 'broken.jpg'}" in captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ok.png"]
    assert len(captured.out.splitlines()) == 1
