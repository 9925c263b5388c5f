"""Result sinks: JSON Lines records, an annotated video, annotated images.

Each writer is a context manager and refuses to destroy anything:

* :func:`check_outputs` refuses an output that is one of the inputs (same real path or
  inode) or an image folder that is a source folder, before anything is opened;
* :class:`OutputLock` (a ``.NAME.edgefer-lock`` file beside the output holding the writer's
  PID) refuses a path another live edgefer process is writing; a lock whose PID is dead is
  stale and taken over;
* a video is written to a hidden temporary sibling and renamed over the final name only
  once ``release()`` has written its index and the file reads back with every frame. A run
  stopped by Ctrl-C, SIGTERM or SIGHUP, or by a closed stdout pipe, finishes the video of
  the frames so far (those are complete, playable results); a write error or a crash
  leaves the previous file, and a SIGKILL leaves the previous file plus a temporary one
  (and a stale lock) that the next run on that output clears;
* annotated images are written whole or not at all (:mod:`.atomic`);
* JSON lines are flushed one by one (a consumer tailing the file sees whole lines only).

Every write failure is an :class:`OutputError` naming the file; a reader closing a pipe
is a ``BrokenPipeError`` left for the CLI to end quietly.

A JSON line per frame::

    {"frame": 12, "timestamp": 0.48, "source": "clip.mp4",
     "faces": [{"box": [x, y, w, h], "score": 0.93, "label": "happy",
                "probabilities": {"angry": 0.01, ...}, "track_id": 1}],
     "timings_ms": {"detect": 3.1, "preprocess": 0.1, "classify": 0.6, "track": 0.0, "total": 3.9}}
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from glob import escape as glob_escape
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from .atomic import TMP_PREFIX, fsync_dir, temp_sibling, write_bytes
from .errors import OutputError
from .pipeline import FrameResult
from .sources import Frame, quiet_opencv

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v"})
_FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
# Suffixes people give --save expecting a video that OpenCV's bundled FFmpeg cannot encode
# (or not without codecs the wheels lack): refused instead of silently becoming a folder.
_OTHER_VIDEO_SUFFIXES = frozenset({".webm", ".wmv", ".flv", ".mpg", ".mpeg", ".ogv", ".3gp", ".ts", ".gif", ".m2ts"})
_KEPT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
LOCK_SUFFIX = ".edgefer-lock"


def frame_record(frame: Frame, result: FrameResult) -> dict:
    return {
        "frame": frame.index,
        "timestamp": frame.timestamp,
        "source": frame.name,
        **result.to_dict(),
    }


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _is_special(path: Path) -> bool:
    """True for an existing non-regular file (/dev/full, /dev/stdout, a FIFO): written in
    place, with no lock or temporary file beside it (/dev is not ours to write in)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


# ---------------------------------------------------------------- refusing to destroy inputs

def _same_file(a: Path, b: Path) -> bool:
    """Same inode (hard links, bind mounts) or, for a path not created yet, same real path."""
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(
    files: Iterable[str | Path],
    folders: Iterable[str | Path],
    input_files: Iterable[Path],
    input_folders: Iterable[Path],
) -> None:
    """Refuse outputs that would overwrite an input or each other, before any is opened.

    ``files``: file outputs (JSON Lines, video); ``folders``: image-folder outputs, which may
    not be a folder the inputs come from (annotated photos would replace the originals).
    """
    inputs = list(input_files)
    seen: list[Path] = []
    for out in [Path(f) for f in files] + [Path(f) for f in folders]:
        for src in inputs:
            if _same_file(out, src):
                raise OutputError(f"{out} is an input of this run; refusing to overwrite it")
        for other in seen:
            if _same_file(out, other):
                raise OutputError(f"{out} is named for two outputs of this run")
        seen.append(out)
    for folder in (Path(f) for f in folders):
        for src_dir in input_folders:
            if _same_file(folder, src_dir):
                raise OutputError(
                    f"{folder} is a folder this run reads images from; annotated images would "
                    "replace the originals: save them elsewhere"
                )


def video_suffix_problem(path: str | Path) -> str | None:
    """Why ``--save path`` cannot be honoured (None if it can): a video suffix OpenCV does
    not write, or a suffix that is neither a video nor an existing folder."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES or not suffix or p.is_dir():
        return None
    supported = ", ".join(sorted(VIDEO_SUFFIXES))
    if suffix in _OTHER_VIDEO_SUFFIXES:
        return f"cannot write {suffix} video {p}: supported video types are {supported}"
    return (f"{p}: {suffix} is not a video type ({supported}); for a folder of annotated images "
            "give a name without a suffix or an existing folder")


# ---------------------------------------------------------------- one writer per output

_HELD: set[str] = set()  # lock files this process holds: a lock naming our own PID is stale otherwise


def _lock_file(path: Path) -> Path:
    path = Path(os.path.abspath(path))  # "." and "out/" have a name only once absolute
    return path.with_name(f".{path.name}{LOCK_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    return True


def _lock_owner(lock: Path) -> int | None:
    """The live PID holding ``lock``, or None when the lock is stale (its writer died)."""
    try:
        pid = int(lock.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return pid if str(lock) in _HELD else None  # e.g. PID 1 again in a fresh container
    return pid if _pid_alive(pid) else None


class OutputLock:
    """``.NAME.edgefer-lock`` beside ``path``, holding this process's PID, while it writes.

    The lock appears with its PID already inside (written to a temporary file, then
    hard-linked into place, which fails if a lock exists), so no reader ever sees an empty
    lock and mistakes it for a stale one. Two runs taking over the same stale lock at the
    same instant can still both win; that needs a crashed run and a race within a millisecond.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = _lock_file(self.path)
        self._held = False

    def acquire(self) -> OutputLock:
        for _attempt in range(3):
            if self._try_create():
                self._held = True
                _HELD.add(str(self.lock))
                return self
            owner = _lock_owner(self.lock)
            if owner is not None:
                raise OutputError(
                    f"{self.path} is being written by another edgefer run (PID {owner}); "
                    f"wait for it, or delete {self.lock} if that process is not edgefer"
                )
            self.lock.unlink(missing_ok=True)  # stale: its writer is gone
        raise OutputError(f"cannot lock {self.path}: {self.lock} keeps reappearing")

    def _try_create(self) -> bool:
        tmp = temp_sibling(self.lock)
        try:
            self.lock.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
            try:
                os.link(tmp, self.lock)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                return self._create_exclusive()  # no hard links here (FAT, some FUSE mounts)
            return True
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {_why(exc)}") from exc
        finally:
            with contextlib.suppress(OSError):  # e.g. ENOTDIR: the folder was never there
                tmp.unlink(missing_ok=True)

    def _create_exclusive(self) -> bool:
        try:
            fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        return True

    def release(self) -> None:
        if self._held:
            self._held = False
            if _lock_owner(self.lock) == os.getpid():  # not a lock another run took over
                self.lock.unlink(missing_ok=True)
            _HELD.discard(str(self.lock))


def _claim(path: Path) -> OutputLock | None:
    return None if _is_special(path) else OutputLock(path).acquire()


# ---------------------------------------------------------------- sinks

class JsonlWriter:
    """One JSON object per line to a file, or to stdout when path is ``-``."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._own = self.path != "-"
        self._lock: OutputLock | None = None
        self.lines = 0
        if not self._own:
            self._fh: IO[str] = sys.stdout
            return
        target = Path(self.path)
        self._lock = _claim(target)
        try:
            self._fh = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            self._release()
            raise OutputError(f"cannot write {self.path}: {_why(exc)}") from exc

    @property
    def _where(self) -> str:
        return self.path if self._own else "stdout"

    def write(self, record: dict) -> None:
        self._write_text(json.dumps(record, separators=(",", ":")) + "\n")
        self.lines += 1

    def _write_text(self, text: str) -> None:
        try:
            self._fh.write(text)
            self._fh.flush()  # a consumer tailing the file (or a crash) sees whole lines only
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the CLI ends quietly
        except OSError as exc:
            raise OutputError(f"cannot write {self._where}: {_why(exc)}") from exc

    def close(self) -> None:
        try:
            if self._own and not self._fh.closed:
                try:
                    self._fh.close()
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    raise OutputError(f"cannot write {self._where}: {_why(exc)}") from exc
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CsvWriter(JsonlWriter):
    """One CSV row per face per frame: where it was, what it showed, every class probability.

    Columns: frame, timestamp, source, track_id, x, y, w, h, score, label, then one per label
    (the smoothed probabilities, as in the JSON Lines). A frame without faces has no row.
    Same locking and error handling as the JSON Lines writer."""

    def __init__(self, path: str | Path, labels: Sequence[str]) -> None:
        super().__init__(path)
        self.labels = tuple(labels)
        self._write_text(self._row(["frame", "timestamp", "source", "track_id", "x", "y", "w", "h", "score",
                                    "label", *self.labels]))

    @staticmethod
    def _row(cells: Iterable[object]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(cells)
        return buf.getvalue()

    def write(self, record: dict) -> None:
        rows = []
        for face in record["faces"]:
            probs = face["probabilities"]
            ts = record["timestamp"]
            rows.append(self._row([
                record["frame"], "" if ts is None else round(ts, 3), record["source"],
                "" if face["track_id"] is None else face["track_id"], *face["box"], face["score"], face["label"],
                *(probs.get(name, "") for name in self.labels),
            ]))
        if rows:
            self._write_text("".join(rows))
        self.lines += len(rows)


def _finishes(exc_type: type[BaseException] | None) -> bool:
    """Whether an output is completed when its ``with`` block ends this way: normally, or
    stopped by the user (Ctrl-C, SIGTERM, SIGHUP) or a closed pipe, whose frames so far are
    good results; not after a write error or a crash, which keep the previous file."""
    return exc_type is None or issubclass(exc_type, (KeyboardInterrupt, BrokenPipeError))


class VideoSink:
    """Annotated video; opened on the first frame, whose size every later frame is fitted to.

    Written to a temporary sibling and renamed over ``path`` once released and read back
    complete: a full disk or a killed run never leaves an unplayable file under ``path``.
    """

    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path = Path(path)
        problem = video_suffix_problem(self.path)
        if problem or self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise OutputError(problem or f"{self.path} is not a video name ({', '.join(sorted(VIDEO_SUFFIXES))})")
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self._writer: cv2.VideoWriter | _H264Writer | None = None
        self._size: tuple[int, int] | None = None
        self._tmp = temp_sibling(self.path)
        self._lock = _claim(self.path)
        if self._lock is not None:
            self._remove_dead_temps()
        self.frames = 0

    def _remove_dead_temps(self) -> None:
        """Temporary copies of this output that a killed (SIGKILL, power cut) run left: with
        the lock held no live run writes this name, so they are all dead runs' and can go."""
        for tmp in self.path.parent.glob(f"{TMP_PREFIX}*-{glob_escape(self.path.name)}"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _open(self, image: np.ndarray) -> cv2.VideoWriter | _H264Writer:
        h, w = image.shape[:2]
        self._size = (w, h)
        try:  # a real OSError (EACCES, ENOSPC, EROFS) before OpenCV hides it behind isOpened()
            self._tmp.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.touch()
        except OSError as exc:
            raise OutputError(f"cannot write video {self.path}: {_why(exc)}") from exc
        if self.path.suffix.lower() in _H264_SUFFIXES:
            if _h264_available():
                # yuv420p halves the chroma resolution: H.264 needs even sides.
                self._size = (w - w % 2, h - h % 2)
                try:
                    return _H264Writer(self._tmp, self.fps, self._size)
                except Exception as exc:  # PyAV raises its own error types
                    raise OutputError(f"cannot write video {self.path}: {exc}") from exc
            _notice_once("no H.264 encoder (pip install 'edgefer[video]'): writing MPEG-4 Part 2, "
                         "which most players open but browsers do not")
        code = _FOURCC_BY_SUFFIX[self.path.suffix.lower()]
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter.fourcc(*code), self.fps, self._size)
        if not writer.isOpened():
            raise OutputError(f"cannot write video {self.path}: this OpenCV has no {code} encoder")
        return writer

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            self._writer = self._open(image)
        if (image.shape[1], image.shape[0]) != self._size:  # still images of mixed sizes
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        try:
            with quiet_opencv():  # FFmpeg's per-frame warnings on a full disk: checked in close()
                self._writer.write(image)
        except OSError as exc:  # PyAV reports a full disk at once (OpenCV's writer never does)
            raise OutputError(f"cannot write video {self.path}: {_why(exc)}") from exc
        self.frames += 1

    def close(self, finish: bool = True) -> None:
        """Release the writer; with ``finish``, check the file and rename it into place."""
        try:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                try:
                    with quiet_opencv():
                        writer.release()  # writes the MP4 index: without it the file is unplayable
                except OSError as exc:
                    raise OutputError(f"cannot write video {self.path}: {_why(exc)}") from exc
                if finish and self.frames:
                    self._check_complete()
                    self._publish()
        finally:
            with contextlib.suppress(OSError):
                self._tmp.unlink(missing_ok=True)
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _check_complete(self) -> None:
        # OpenCV's writer reports no error: a full disk (ENOSPC, or EFBIG over a file-size
        # limit) left an MP4 without its index (not openable) and an AVI whose header counts
        # 0 frames, in both cases measured with 200 64x64 frames under a 100 kB limit.
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            stored = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if stored != self.frames:
            free = _free_bytes(self._tmp.parent)
            hint = "the disk is full" if free is not None and free < 1 << 20 else "disk full or write error?"
            raise OutputError(f"cannot write video {self.path}: {stored} of {self.frames} frames "
                              f"reached the file ({hint}); the previous file, if any, is kept")

    def _publish(self) -> None:
        try:
            with open(self._tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise OutputError(f"cannot write video {self.path}: {_why(exc)}") from exc
        fsync_dir(self.path.parent)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close(finish=True)
            return
        try:
            self.close(finish=_finishes(exc_type))
        except OutputError as err:  # keep the exit status of what stopped the run
            print(f"warning: {err}", file=sys.stderr)


# Containers that carry H.264 for browsers and players; .avi keeps MJPG (what OpenCV writes).
_H264_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv"})
_NOTICES: set[str] = set()


def _notice_once(message: str) -> None:
    if message not in _NOTICES:
        _NOTICES.add(message)
        print(f"edgefer: {message}", file=sys.stderr)


def _h264_available() -> bool:
    """PyAV (the ``video`` extra) with its bundled libx264: OpenCV's wheels encode no H.264."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class _H264Writer:
    """H.264 (libx264, yuv420p, CRF 23) through PyAV, with cv2.VideoWriter's write/release."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        from fractions import Fraction

        import av

        self._av = av
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, image: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def release(self) -> None:
        for packet in self.stream.encode():  # flush the encoder's delayed frames
            self.container.mux(packet)
        self.container.close()


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _write_image(path: Path, image: np.ndarray) -> Path:
    """Encode ``image`` in the format ``path``'s suffix names and write it whole or not at all."""
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OutputError(f"cannot write image {path}: OpenCV cannot encode {path.suffix}")
    try:
        write_bytes(path, encoded.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write image {path}: {_why(exc)}") from exc
    return path


class ImageDirSink:
    """Annotated images into a folder, named after their source file (or by frame index).

    ``photo.jpg``/``.jpeg``/``.png`` keep their name; other types become ``NAME.png``
    (``p.bmp`` -> ``p.bmp.png``), so ``p.bmp`` and ``p.tif`` stay two files; names that still
    meet (``a/x.jpg`` and ``b/x.jpg`` from one glob) get ``-2``, ``-3``. Each image is
    written whole or not at all.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = _claim(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.close()
            raise OutputError(f"cannot create folder {self.folder}: {_why(exc)}") from exc
        self._used: set[str] = set()
        self.frames = 0

    def name_for(self, frame: Frame) -> str:
        src = Path(frame.name)
        if frame.new_scene and src.suffix:
            name = src.name if src.suffix.lower() in _KEPT_IMAGE_SUFFIXES else f"{src.name}.png"
        else:
            name = f"frame_{frame.index:06d}.jpg"
        stem, suffix = name[: -len(Path(name).suffix)], Path(name).suffix
        n = 1
        while name.casefold() in self._used:  # casefold: one file on macOS and Windows
            n += 1
            name = f"{stem}-{n}{suffix}"
        self._used.add(name.casefold())
        return name

    def write(self, image: np.ndarray, frame: Frame) -> Path:
        path = _write_image(self.folder / self.name_for(frame), image)
        self.frames += 1
        return path

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ImageDirSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Suffixes --save may name for the one annotated image of a single-image source.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class ImageFileSink:
    """The annotated image of a one-image source, at exactly the path given (whole or not at all)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = _claim(self.path)
        self.frames = 0

    def write(self, image: np.ndarray, frame: Frame) -> Path:
        if self.frames:
            raise OutputError(f"--save {self.path} names one image, but the source gave a second frame")
        _write_image(self.path, image)
        self.frames += 1
        return self.path

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ImageFileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def single_image_save(save: str | Path | None, source: str | Path | None) -> bool:
    """``--save out.png`` for ``--source photo.jpg``: one image in, that one image out."""
    if not save or source is None:
        return False
    src = Path(str(source))
    return (Path(save).suffix.lower() in IMAGE_SUFFIXES and not Path(save).is_dir()
            and src.suffix.lower() in IMAGE_SUFFIXES and src.is_file())


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
