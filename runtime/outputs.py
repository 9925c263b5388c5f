"""Result sinks: JSON Lines records, an annotated video, annotated images.

Each writer flushes what it has as it goes and is a context manager, so a source that
ends or disconnects (or Ctrl-C) still leaves every output file complete: whole JSON
lines, and an MP4 whose index was written by ``release()``.

A JSON line per frame::

    {"frame": 12, "timestamp": 0.48, "source": "clip.mp4",
     "faces": [{"box": [x, y, w, h], "score": 0.93, "label": "happy",
                "probabilities": {"angry": 0.01, ...}, "track_id": 1}],
     "timings_ms": {"detect": 3.1, "preprocess": 0.1, "classify": 0.6, "track": 0.0, "total": 3.9}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from .pipeline import FrameResult
from .sources import Frame

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v"})
_FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def frame_record(frame: Frame, result: FrameResult) -> dict:
    return {
        "frame": frame.index,
        "timestamp": frame.timestamp,
        "source": frame.name,
        **result.to_dict(),
    }


class JsonlWriter:
    """One JSON object per line to a file, or to stdout when path is ``-``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._own = self.path != "-"
        if self._own:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        else:
            self._fh = sys.stdout
        self.lines = 0

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._fh.flush()  # a consumer tailing the file (or a crash) sees whole lines only
        self.lines += 1

    def close(self) -> None:
        if self._own and not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSink:
    """Annotated video; opened on the first frame, whose size every later frame is fitted to."""

    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            self._size = (w, h)
            fourcc = cv2.VideoWriter_fourcc(*_FOURCC_BY_SUFFIX.get(self.path.suffix.lower(), "mp4v"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                raise OSError(f"cannot write video {self.path} (codec not available in this OpenCV?)")
        if (image.shape[1], image.shape[0]) != self._size:  # still images of mixed sizes
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()  # writes the MP4 index: without it the file is unplayable
            self._writer = None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ImageDirSink:
    """Annotated images into a folder, named after their source file (or by frame index)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames = 0

    def write(self, image: np.ndarray, frame: Frame) -> Path:
        src = Path(frame.name)
        if frame.new_scene and src.suffix:
            name = f"{src.stem}{src.suffix if src.suffix.lower() in ('.jpg', '.jpeg', '.png') else '.png'}"
        else:
            name = f"frame_{frame.index:06d}.jpg"
        path = self.folder / name
        if not cv2.imwrite(str(path), image):
            raise OSError(f"cannot write image {path}")
        self.frames += 1
        return path

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageDirSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
