"""Frame sources: camera index, video file, image file, image folder or glob, stream URL.

Every source is an iterator of :class:`Frame` and a context manager. Live sources
(cameras, network streams) are read on a background thread by
:class:`LatestFrameReader`, which keeps only the newest frame: when the pipeline is
slower than the camera, stale frames are dropped instead of queueing up, so the
latency between the scene and the output stays at most about one frame plus one
pipeline pass. Files are read in order and never dropped.
"""

from __future__ import annotations

import errno
import glob as globlib
import os
import re
import stat
import struct
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
# Images above this many pixels are refused before decoding: a 2.6 MB PNG of 30000x30000
# pixels decodes to 2.7 GB of BGR (5.8 GB peak measured in cv2.imdecode), and no face
# photo needs more than a 100-megapixel camera's frame.
DEFAULT_MAX_PIXELS = 100_000_000
_CAMERA_DEVICE = re.compile(r"/dev/video(\d+)")


def stderr_warning(message: str) -> None:
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
    files: tuple[Path, ...] = ()  # the input files it reads (outputs must never be one of them)
    folders: tuple[Path, ...] = ()  # the folders its images come from (no annotated image goes there)

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        return 0

    @property
    def total(self) -> int | None:
        """How many frames the source will give, where that is known in advance (files)."""
        return None

    @property
    def unreadable(self) -> int:
        """Inputs that could not be read and were left out, each with a warning."""
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
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own multi-line warnings (probing a device, FFmpeg's per-frame
    complaints); the caller says what went wrong in one line."""
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

    def __init__(
        self,
        cap: cv2.VideoCapture,
        name: str,
        live: bool,
        first: np.ndarray | None = None,
        warn: Callable[[str], None] = stderr_warning,
    ) -> None:
        self.cap = cap
        self.name = name
        self.live = live
        self.warn = warn
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
                self._check_complete(index)
                return
            msec = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            # Some backends report the position after the frame, some 0: prefer index/fps then.
            ts = index / fps if not msec or msec <= 0 else msec / 1000.0
            yield Frame(index, round(ts, 6), image, self.name)
            index += 1

    @property
    def total(self) -> int | None:
        stated = 0 if self.live else int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return stated if stated > 0 else None

    def _check_complete(self, read: int) -> None:
        """Say so when a file ends before the frame count its header states (a truncated
        download or copy): otherwise the run looks complete. Some containers store no count (0)."""
        stated = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if 0 < read < stated:
            self.warn(f"{self.name}: ended after {read} of the {stated} frames its header states "
                      "(truncated or damaged file?)")
        elif read == 0 and stated > 0:
            self.warn(f"{self.name}: no frame could be decoded of the {stated} its header states")

    def _iter_live(self) -> Iterator[Frame]:
        self._reader = LatestFrameReader(self._read)
        start: float | None = None
        while True:
            item = self._reader.get(timeout=LIVE_STALL_S)
            if item is None:
                if not self._reader.ended:
                    stderr_warning(f"{self.name}: no frame for {LIVE_STALL_S:.0f} s; treating it as ended")
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
    """Still images in order; unreadable or oversized files are skipped with a warning."""

    def __init__(
        self,
        paths: list[Path],
        name: str,
        warn: Callable[[str], None] = stderr_warning,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.paths = paths
        self.name = name
        self.warn = warn
        self.max_pixels = max_pixels
        self.files = tuple(paths)
        self.folders = tuple(dict.fromkeys(p.parent for p in paths))
        self.skipped: list[Path] = []

    @property
    def unreadable(self) -> int:
        return len(self.skipped)

    @property
    def total(self) -> int | None:
        return len(self.paths)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = load_image(path, self.max_pixels)
            except UnreadableImage as exc:
                self.skipped.append(path)
                self.warn(f"skipping {exc}")
                continue
            yield Frame(index, None, image, str(path), new_scene=True)
            index += 1


class UnreadableImage(SourceError):
    """An image file that cannot be read, decoded, or is over the decode limit."""


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """BGR image; raises :class:`UnreadableImage` (never cv2.error or MemoryError) for bad data.

    The size in the file's header is checked against ``max_pixels`` before decoding, since
    decoding allocates the whole bitmap first.
    """
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # imdecode: no cv2 warnings, unicode paths
    except OSError as exc:
        raise UnreadableImage(f"unreadable image {path} ({exc.strerror or exc})") from exc
    if data.size == 0:
        raise UnreadableImage(f"unreadable image {path} (empty file)")
    size = image_size(data[:_HEADER_BYTES].tobytes())
    if size is not None and max_pixels and size[0] * size[1] > max_pixels:
        w, h = size
        raise UnreadableImage(
            f"image {path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the decode limit of "
            f"{max_pixels / 1e6:g} megapixels"
        )
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except (cv2.error, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise UnreadableImage(f"unreadable image {path} ({first})") from exc
    if image is None or not image.size:
        raise UnreadableImage(f"unreadable image {path} (not a decodable image)")
    return image


def read_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray | None:
    """BGR image or None if the file cannot be read or decoded (never raises for bad data)."""
    try:
        return load_image(path, max_pixels)
    except UnreadableImage:
        return None


# JPEG puts its size after any EXIF/ICC segments; 256 KiB covers the photos in shared/data
# and phone pictures with embedded thumbnails.
_HEADER_BYTES = 256 * 1024


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from an image file's first bytes, without decoding; None if unknown.

    PNG, JPEG, BMP, GIF, WebP, TIFF and PNM: the formats OpenCV reads whose header is cheap
    to parse. For anything else OpenCV's own limit applies (OPENCV_IO_MAX_IMAGE_PIXELS).
    """
    try:
        for parse in (_png_size, _jpeg_size, _bmp_size, _gif_size, _webp_size, _tiff_size, _pnm_size):
            size = parse(head)
            if size is not None:
                return size
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png_size(b: bytes) -> tuple[int, int] | None:
    if b[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    w, h = struct.unpack(">II", b[16:24])
    return int(w), int(h)


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    if b[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return int(w), int(h)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            i += 2
            continue
        i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
    return None


def _bmp_size(b: bytes) -> tuple[int, int] | None:
    if b[:2] != b"BM":
        return None
    w, h = struct.unpack("<ii", b[18:26])
    return abs(int(w)), abs(int(h))


def _gif_size(b: bytes) -> tuple[int, int] | None:
    if b[:4] != b"GIF8":
        return None
    w, h = struct.unpack("<HH", b[6:10])
    return int(w), int(h)


def _webp_size(b: bytes) -> tuple[int, int] | None:
    if b[:4] != b"RIFF" or b[8:12] != b"WEBP":
        return None
    chunk = b[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", b[26:30])
        return int(w) & 0x3FFF, int(h) & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", b[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    return None


def _tiff_size(b: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(b[:4])
    if order is None:
        return None
    (ifd,) = struct.unpack(order + "I", b[4:8])
    (n,) = struct.unpack(order + "H", b[ifd:ifd + 2])
    dims: dict[int, int] = {}
    for k in range(n):
        tag, kind, _count, value = struct.unpack(order + "HHI4s", b[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            dims[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[: 2 if kind == 3 else 4])[0]
    return (dims[256], dims[257]) if len(dims) == 2 else None


def _pnm_size(b: bytes) -> tuple[int, int] | None:
    if len(b) < 2 or b[:1] != b"P" or b[1:2] not in b"123456":
        return None
    text = re.sub(rb"#[^\n]*", b" ", b[2:512])
    fields = text.split()
    return int(fields[0]), int(fields[1])


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
    with quiet_opencv():
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
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*options.fourcc.upper().ljust(4)[:4]))
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


def _open_capture(target: str, live: bool, warn: Callable[[str], None] = stderr_warning) -> Source:
    with quiet_opencv():
        cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        kind = "stream" if live else "video"
        raise SourceError(f"cannot open {kind} {target}")
    source = CaptureSource(cap, target, live=live, warn=warn)
    if not live:
        source.files = (Path(target),)
    return source


def is_camera_spec(spec: str | int | Path | None) -> bool:
    return isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit())


def _stat_problem(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "a broken symbolic link"
    return exc.strerror or str(exc)


def _folder_images(folder: Path, warn: Callable[[str], None]) -> list[Path]:
    """The regular image files in ``folder``, sorted; links that cannot be followed are warned about."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise SourceError(f"cannot list folder {folder}: {exc.strerror or exc}") from exc
    images = []
    for p in entries:
        try:
            mode = p.stat().st_mode
        except OSError as exc:  # a loop or a dangling link: say so rather than skip it silently
            warn(f"skipping {p}: {_stat_problem(exc)}")
            continue
        if stat.S_ISREG(mode) and _is_image(p):
            images.append(p)
    return images


_FILE_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _special_file(path: Path, mode: int, camera: CameraOptions | None) -> Source:
    """A path that is neither a regular file nor a folder: a camera device, a FIFO, or a refusal."""
    device = _CAMERA_DEVICE.fullmatch(os.path.realpath(path))  # also /dev/v4l/by-id/... links
    if device and stat.S_ISCHR(mode):
        return open_camera(int(device.group(1)), camera)
    if stat.S_ISFIFO(mode):  # e.g. ffmpeg writing into a named pipe: read like a file, in order
        return _open_capture(str(path), live=False)
    kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise SourceError(f"{path} is {kind}, not a video, image, folder or camera (/dev/videoN)")


def open_source(
    spec: str | int | Path,
    camera: CameraOptions | None = None,
    warn: Callable[[str], None] = stderr_warning,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Source:
    """Open whatever ``spec`` names: camera index or /dev/videoN, URL, image/video file, folder
    or glob. Images over ``max_pixels`` (None or 0: no limit) are skipped before decoding."""
    if isinstance(spec, int) or (isinstance(spec, str) and is_camera_spec(spec)):
        return open_camera(int(spec), camera)
    text = str(spec)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme:
        return _open_capture(text, live=scheme in LIVE_URL_SCHEMES, warn=warn)
    path = Path(text).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if device := _CAMERA_DEVICE.fullmatch(text):
            return open_camera(int(device.group(1)), camera)  # says which cameras exist
        if path.is_symlink():
            raise SourceError(f"{text} is a broken symbolic link") from None
        return _open_glob(text, warn, max_pixels)
    except OSError as exc:
        raise SourceError(f"cannot open {text}: {_stat_problem(exc)}") from exc
    if stat.S_ISDIR(mode):
        images = _folder_images(path, warn)
        if not images:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {path}")
        return ImageSource(images, str(path), warn, max_pixels)
    if not stat.S_ISREG(mode):
        return _special_file(path, mode, camera)
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot open {text}: permission denied")
    if _is_image(path):
        return ImageSource([path], str(path), warn, max_pixels)
    return _open_capture(str(path), live=False, warn=warn)


def _open_glob(text: str, warn: Callable[[str], None], max_pixels: int | None) -> Source:
    if not any(ch in text for ch in "*?["):
        raise SourceError(f"no such file, folder or camera: {text}")
    matches = sorted(Path(p) for p in globlib.glob(os.path.expanduser(text), recursive=True))
    images = [p for p in matches if p.is_file() and _is_image(p)]
    if not images:
        raise SourceError(f"no images match {text}")
    return ImageSource(images, text, warn, max_pixels)
