"""A per-person summary of a run: who was seen when, showing what, and a picture of it.

:class:`RunSummary` takes each frame's JSON Lines record and, at the end, writes into a
folder: ``tracks.csv`` and ``tracks.json`` (one row per track: first and last time seen,
frames, dominant emotion, share of frames showing each emotion, mean confidence) and
``emotions.png`` (each track's probabilities over time, drawn with OpenCV: the runtime
needs no plotting library). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_path, write_text
from .drawing import label_color
from .errors import OutputError

MAX_PLOTTED_TRACKS = 6
MAX_POINTS = 2000  # per track in the plot; longer runs are thinned evenly


@dataclass
class _Track:
    track_id: int
    first: float
    last: float
    frames: int = 0
    shown: dict[str, int] = field(default_factory=dict)
    confidence: float = 0.0
    times: list[float] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)


class RunSummary:
    """Accumulates records; ``write(folder)`` produces the tables and the plot."""

    def __init__(self, labels: Sequence[str], source: str = "") -> None:
        self.labels = tuple(labels)
        self.source = source
        self.frames = 0
        self._tracks: dict[int, _Track] = {}

    def add(self, record: dict) -> None:
        self.frames += 1
        # Seconds into the video; for still images (no timestamp) the frame index stands in.
        t = float(record["timestamp"]) if record.get("timestamp") is not None else float(record["frame"])
        for face in record["faces"]:
            tid = face.get("track_id")
            if tid is None:
                continue
            tr = self._tracks.get(tid) or self._tracks.setdefault(tid, _Track(tid, t, t))
            tr.last = t
            tr.frames += 1
            tr.shown[face["label"]] = tr.shown.get(face["label"], 0) + 1
            p = face["probabilities"]
            tr.confidence += float(p.get(face["label"], 0.0))
            tr.times.append(t)
            tr.probs.append([float(p.get(name, 0.0)) for name in self.labels])

    def rows(self) -> list[dict]:
        out = []
        for tr in sorted(self._tracks.values(), key=lambda t: (-t.frames, t.track_id)):
            dominant = max(tr.shown, key=lambda k: tr.shown[k])
            out.append({
                "track_id": tr.track_id, "first_seen_s": round(tr.first, 3), "last_seen_s": round(tr.last, 3),
                "frames": tr.frames, "dominant": dominant,
                **{f"share_{name}": round(tr.shown.get(name, 0) / tr.frames, 4) for name in self.labels},
                "mean_confidence": round(tr.confidence / tr.frames, 4),
            })
        return out

    def write(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write the summary into {folder}: {exc.strerror or exc}") from exc
        rows = self.rows()
        columns = ["track_id", "first_seen_s", "last_seen_s", "frames", "dominant",
                   *[f"share_{n}" for n in self.labels], "mean_confidence"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        paths = [folder / "tracks.csv", folder / "tracks.json", folder / "emotions.png"]
        try:
            write_text(paths[0], buf.getvalue())
            write_text(paths[1], json.dumps({"source": self.source, "frames": self.frames,
                                             "labels": list(self.labels), "tracks": rows}, indent=1) + "\n")
            with atomic_path(paths[2]) as tmp:
                if not cv2.imwrite(str(tmp), self.plot()):
                    raise OSError(f"OpenCV could not encode {paths[2].name}")
        except OSError as exc:
            raise OutputError(f"cannot write the summary into {folder}: {exc.strerror or exc}") from exc
        return paths

    def plot(self, width: int = 1000, panel_h: int = 150) -> np.ndarray:
        """One panel per track (the longest-seen first): each emotion's probability over time."""
        tracks = sorted(self._tracks.values(), key=lambda t: (-t.frames, t.track_id))[:MAX_PLOTTED_TRACKS]
        legend_h, margin_l, margin_r = 34, 60, 16
        img = np.full((legend_h + max(1, len(tracks)) * (panel_h + 26) + 24, width, 3), 255, np.uint8)
        font = cv2.FONT_HERSHEY_SIMPLEX
        x = margin_l
        for name in self.labels:  # legend
            color = _dark(label_color(name))
            cv2.rectangle(img, (x, 12), (x + 18, 24), color, -1)
            cv2.putText(img, name, (x + 24, 24), font, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
            x += 34 + cv2.getTextSize(name, font, 0.5, 1)[0][0]
        if not tracks:
            cv2.putText(img, "no tracked face", (margin_l, legend_h + 60), font, 0.7, (40, 40, 40), 1, cv2.LINE_AA)
            return img
        t0 = min(t.first for t in tracks)
        t1 = max(max(t.last for t in tracks), t0 + 1e-6)
        for k, tr in enumerate(tracks):
            top = legend_h + k * (panel_h + 26) + 20
            x0, x1, y0, y1 = margin_l, width - margin_r, top, top + panel_h
            cv2.rectangle(img, (x0, y0), (x1, y1), (200, 200, 200), 1)
            for frac in (0.0, 0.5, 1.0):  # probability grid
                yy = round(y1 - frac * (y1 - y0))
                cv2.line(img, (x0, yy), (x1, yy), (225, 225, 225), 1)
                cv2.putText(img, f"{frac:.1f}", (x0 - 34, yy + 4), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
            dominant = max(tr.shown, key=lambda name: tr.shown[name])
            title = (f"track #{tr.track_id}: {tr.frames} frames, {tr.first - t0:.1f}-{tr.last - t0:.1f} s, "
                     f"mostly {dominant} ({tr.shown[dominant] / tr.frames:.0%})")
            cv2.putText(img, title, (x0, y0 - 6), font, 0.5, (30, 30, 30), 1, cv2.LINE_AA)
            step = max(1, len(tr.times) // MAX_POINTS)
            times = np.asarray(tr.times[::step])
            probs = np.asarray(tr.probs[::step])
            xs = x0 + (times - t0) / (t1 - t0) * (x1 - x0)
            for j, name in enumerate(self.labels):
                ys = y1 - probs[:, j] * (y1 - y0)
                pts = np.stack([xs, ys], axis=1).round().astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(img, [pts], False, _dark(label_color(name)), 2, cv2.LINE_AA)
        axis_y = img.shape[0] - 4
        cv2.putText(img, f"{t1 - t0:.1f} s", (width - margin_r - 50, axis_y), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
        cv2.putText(img, "0 s", (margin_l, axis_y), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
        return img


def _dark(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """The label colour, darkened enough to read on white (the overlay colours are for dark bands)."""
    b, g, r = bgr
    lum = 0.114 * b + 0.587 * g + 0.299 * r
    k = min(1.0, 120.0 / lum) if lum > 0 else 1.0
    return (round(b * k), round(g * k), round(r * k))
