"""Outputs: the one place that opens a run's files and writes each frame to all of them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from edgefer.models import MODELS_DIR
from edgefer.runtime import drawing
from edgefer.runtime.errors import OutputError
from edgefer.runtime.pipeline import FrameLoop, Recognizer
from edgefer.runtime.sinks import Outputs, OutputSpec
from edgefer.runtime.sources import open_source

CLIP = MODELS_DIR / "sample_face.mp4"


def test_one_loop_feeds_every_output_and_draws_each_frame_once(tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = drawing.annotate
    monkeypatch.setattr(drawing, "annotate", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = OutputSpec(jsonl=str(tmp_path / "o.jsonl"), csv=str(tmp_path / "o.csv"), save=str(tmp_path / "o.mp4"),
                      summary=str(tmp_path / "summary"), overlay="label")
    with Recognizer() as rec, open_source(CLIP) as source, Outputs(spec, rec.labels, source) as outputs:
        for frame, result in FrameLoop(rec, source):
            shown = outputs.write(frame, result)
            assert shown is not None and shown.shape == frame.image.shape
    frames = 60  # the bundled clip
    assert len(calls) == frames  # the video's picture is drawn once per frame
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == frames
    assert len((tmp_path / "o.csv").read_text().splitlines()) == frames + 1  # one face a frame, a header
    assert json.loads((tmp_path / "summary" / "tracks.json").read_text())["frames"] == frames
    video = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    video.release()


def test_records_only_draw_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(drawing, "annotate", lambda *a, **k: pytest.fail("nothing asked for a picture"))
    with Recognizer() as rec, open_source(CLIP) as source, \
            Outputs(OutputSpec(jsonl=str(tmp_path / "o.jsonl")), rec.labels, source) as outputs:
        frame, result = next(iter(FrameLoop(rec, source)))
        assert outputs.write(frame, result) is None


def test_an_output_over_the_input_is_refused_before_anything_opens(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(CLIP.read_bytes())
    old = tmp_path / "o.jsonl"
    old.write_text("keep me\n")
    spec = OutputSpec(jsonl=str(old), save=str(clip))
    with open_source(str(clip)) as source:
        outputs = Outputs(spec, ("a", "b"), source)
        with pytest.raises(OutputError):
            outputs.check()
        with pytest.raises(OutputError), outputs:
            pass
    assert old.read_text() == "keep me\n" and clip.read_bytes() == CLIP.read_bytes()


def test_unknown_overlay_is_refused() -> None:
    with pytest.raises(ValueError, match="overlay"):
        OutputSpec(overlay="boxes")
