"""The one way edgefer writes a final file: all of it or nothing.

Every artifact (checkpoint, exported model, card, report, table, annotated image) is written
to a temporary file in the destination's folder, flushed and fsynced, then renamed over the
final name. A kill at any moment leaves either the previous file or the new one, never a
truncated mix; the rename is atomic on POSIX and Windows when both names share a folder.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".edgefer-tmp-"


def temp_sibling(path: Path) -> Path:
    """A unique hidden name beside ``path`` that keeps its full suffix (``.weights.h5``, ``.keras``):
    libraries such as Keras and OpenCV choose the format from the name."""
    return path.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{path.name}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` by name (``model.save(tmp)``, ``cv2.imwrite(tmp, ...)``).

    On a clean exit the file is fsynced and renamed over ``path``; on an exception, or if
    nothing was written, the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    tmp = temp_sibling(final)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{final}: the writer produced no file")
        _fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """``open()`` for a file that appears complete or not at all (mode ``w`` or ``wb``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
        yield f


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files a killed writer left in ``folder``; returns how many."""
    n = 0
    for p in folder.glob(f"{TMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n
