"""Frame sources: camera index, video file, image file, image folder or glob, stream URL.

Every source is an iterator of :class:`Frame` and a context manager. Live sources
(cameras, network streams) are read on a background thread by
:class:`LatestFrameReader`, which keeps only the newest frame: when the pipeline is
slower than the camera, stale frames are dropped instead of queueing up, so the
latency between the scene and the output stays at most about one frame plus one
pipeline pass. Files are read in order and never dropped.
"""

from __future__ import annotations

import glob as globlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SourceError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".jp2"}
)
LIVE_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt", "http", "https")
# How long a live source may deliver nothing before it counts as disconnected.
LIVE_STALL_S = 5.0


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source; gaps in a live source mean dropped frames
    timestamp: float | None  # seconds: video position, or since start for live sources; None for images
    image: np.ndarray  # BGR uint8
    name: str  # the source, or the file name for image sources
    new_scene: bool = False  # True for each still image: tracks must not carry over


@dataclass(frozen=True)
class CameraOptions:
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None  # e.g. MJPG: many USB webcams only reach 30 fps at 640x480 with it


class Source:
    name: str = ""
    live: bool = False
    fps: float | None = None  # nominal rate, for writing video; None if unknown

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LatestFrameReader:
    """Reads ``read()`` -> (ok, frame) on a thread and hands out only the newest frame.

    ``get`` returns a frame captured after the one it returned last, waiting for it if
    needed; frames captured in between are counted in ``dropped``. ``read`` returning
    ok=False (end, disconnect) ends the reader after the frames already handed over.
    """

    def __init__(
        self,
        read: Callable[[], tuple[bool, np.ndarray | None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._fresh = False
        self._ended = False
        self._stop = False
        self.captured = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="edgefer-frame-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                ok, image = self._read()
                t = self._clock()
                with self._cond:
                    if not ok or image is None:
                        break
                    if self._fresh:
                        self.dropped += 1  # the consumer never saw the previous one
                    self._latest = (self.captured, t, image)
                    self.captured += 1
                    self._fresh = True
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> tuple[int, float, np.ndarray] | None:
        """The newest unseen (index, capture time, image); None at the end or on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._fresh or self._ended, timeout)
            if not self._fresh:
                return None
            self._fresh = False
            return self._latest

    @property
    def ended(self) -> bool:
        return self._ended and not self._fresh

    def close(self, timeout: float = 2.0) -> None:
        self._stop = True
        self._thread.join(timeout)


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own multi-line warnings while probing a device; we print one line."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


class CaptureSource(Source):
    """A cv2.VideoCapture: file (read in order) or live (camera/stream, newest frame only)."""

    def __init__(self, cap: cv2.VideoCapture, name: str, live: bool, first: np.ndarray | None = None) -> None:
        self.cap = cap
        self.name = name
        self.live = live
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._first = first
        self._reader: LatestFrameReader | None = None
        self._lock = threading.Lock()

    def _read(self) -> tuple[bool, np.ndarray | None]:
        if self._first is not None:
            image, self._first = self._first, None
            return True, image
        return self.cap.read()

    def __iter__(self) -> Iterator[Frame]:
        return self._iter_live() if self.live else self._iter_file()

    def _iter_file(self) -> Iterator[Frame]:
        index = 0
        fps = self.fps or 25.0
        while True:
            ok, image = self._read()
            if not ok or image is None:
                return
            msec = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            # Some backends report the position after the frame, some 0: prefer index/fps then.
            ts = index / fps if not msec or msec <= 0 else msec / 1000.0
            yield Frame(index, round(ts, 6), image, self.name)
            index += 1

    def _iter_live(self) -> Iterator[Frame]:
        self._reader = LatestFrameReader(self._read)
        start: float | None = None
        while True:
            item = self._reader.get(timeout=LIVE_STALL_S)
            if item is None:
                if not self._reader.ended:
                    _stderr_warning(f"{self.name}: no frame for {LIVE_STALL_S:.0f} s; treating it as ended")
                return
            index, t, image = item
            start = t if start is None else start
            yield Frame(index, round(t - start, 6), image, self.name)

    @property
    def dropped(self) -> int:
        return self._reader.dropped if self._reader else 0

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            if self._reader._thread.is_alive():
                return  # a blocked read still owns the capture; releasing it now could crash
        self.cap.release()


class ImageSource(Source):
    """Still images in order; unreadable files are skipped with a warning."""

    def __init__(self, paths: list[Path], name: str, warn: Callable[[str], None] = _stderr_warning) -> None:
        self.paths = paths
        self.name = name
        self.warn = warn
        self.skipped: list[Path] = []

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            image = read_image(path)
            if image is None:
                self.skipped.append(path)
                self.warn(f"skipping unreadable image {path}")
                continue
            yield Frame(index, None, image, str(path), new_scene=True)
            index += 1


def read_image(path: str | Path) -> np.ndarray | None:
    """BGR image or None if the file cannot be read or decoded (never raises for bad data)."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode: no cv2 warnings, unicode paths
    except OSError:
        return None
    if data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _camera_device(index: int) -> Path:
    return Path(f"/dev/video{index}")


def open_camera(index: int, options: CameraOptions | None = None, first_frame_timeout: float = 5.0) -> Source:
    options = options or CameraOptions()
    if sys.platform.startswith("linux"):
        device = _camera_device(index)
        if not device.exists():
            present = sorted(glob_devices())
            hint = f"present: {', '.join(present)}" if present else "no /dev/video* devices at all"
            raise SourceError(f"camera {index} not found: {device} does not exist ({hint})")
        if not os.access(device, os.R_OK | os.W_OK):
            raise SourceError(f"camera {index}: no permission to open {device} (join the 'video' group)")
        backend = cv2.CAP_V4L2
    else:
        backend = cv2.CAP_ANY
    with _quiet_opencv():
        cap = cv2.VideoCapture(index, backend)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {index} cannot be opened (busy, or not a capture device)")
        _apply_camera_options(cap, options)
        first = _first_frame(cap, first_frame_timeout)
    if first is None:
        cap.release()
        raise SourceError(
            f"camera {index} opened but delivered no frame in {first_frame_timeout:.0f} s "
            "(busy in another program, or the requested size/fps/fourcc is unsupported)"
        )
    return CaptureSource(cap, f"camera {index}", live=True, first=first)


def glob_devices() -> list[str]:
    return globlib.glob("/dev/video*")


def _apply_camera_options(cap: cv2.VideoCapture, options: CameraOptions) -> None:
    # V4L2 wants the pixel format before the size: some cameras reset the size on a format change.
    if options.fourcc:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*options.fourcc.upper().ljust(4)[:4]))
    if options.width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.width)
    if options.height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.height)
    if options.fps:
        cap.set(cv2.CAP_PROP_FPS, options.fps)
    # Ask the driver for the smallest queue; the reader thread drops the rest.
    cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)


def _first_frame(cap: cv2.VideoCapture, timeout: float) -> np.ndarray | None:
    result: list[np.ndarray | None] = [None]

    def grab() -> None:
        ok, image = cap.read()
        result[0] = image if ok else None

    t = threading.Thread(target=grab, daemon=True)
    t.start()
    t.join(timeout)
    return None if t.is_alive() else result[0]


def _open_capture(target: str, live: bool) -> Source:
    with _quiet_opencv():
        cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        kind = "stream" if live else "video"
        raise SourceError(f"cannot open {kind} {target}")
    return CaptureSource(cap, target, live=live)


def is_camera_spec(spec: str | int | None) -> bool:
    return isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit())


def open_source(
    spec: str | int | Path,
    camera: CameraOptions | None = None,
    warn: Callable[[str], None] = _stderr_warning,
) -> Source:
    """Open whatever ``spec`` names: camera index, URL, image/video file, folder or glob."""
    if isinstance(spec, int) or is_camera_spec(spec):
        return open_camera(int(spec), camera)
    text = str(spec)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme:
        return _open_capture(text, live=scheme in LIVE_URL_SCHEMES)
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and _is_image(p))
        if not images:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {path}")
        return ImageSource(images, str(path), warn)
    if path.is_file():
        if _is_image(path):
            return ImageSource([path], str(path), warn)
        return _open_capture(str(path), live=False)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True))
        images = [p for p in matches if p.is_file() and _is_image(p)]
        if not images:
            raise SourceError(f"no images match {text}")
        return ImageSource(images, text, warn)
    raise SourceError(f"no such file, folder or camera: {text}")
