"""Latency on this machine: every available detector x every bundled classifier, stage by stage.

Measured as ``edgefer run`` works: frames of a clip (the bundled one unless told otherwise),
resized to the camera size, go through a :class:`Recognizer` (detect, crop, classify, track)
one frame at a time. Decoding is timed once per frame while the clip is read, so that every
row reports the same decode cost and end to end = decode + the recognizer's call. Only the
runtime's own dependencies are needed; LiteRT and mediapipe rows appear when those extras
are installed. Speed is never asserted here: the numbers describe the machine.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, ModelError, SourceError, UsageError
from .settings import DETECTORS

# The report's Haar + Keras webcam loop: about 45 ms per frame on a laptop.
REPORT_MS = 45.0
STAGES = ("decode", "detect", "preprocess", "classify", "track")
SCHEMA = "edgefer-bench/1"


@dataclass(frozen=True)
class Rounds:
    rounds: int
    warmup: int


QUICK = Rounds(rounds=10, warmup=3)
FULL = Rounds(rounds=60, warmup=5)


@dataclass(frozen=True)
class Case:
    detector: str
    model: Path
    threads: int
    size: tuple[int, int]

    @property
    def key(self) -> str:
        return row_key(self.detector, self.model.name, self.threads, self.size)


def row_key(detector: str, model: str, threads: int, size: Sequence[int]) -> str:
    return f"{detector} | {model} | {threads} thread{'s' if threads > 1 else ''} | {size[0]}x{size[1]}"


@dataclass
class Row:
    detector: str
    model: str
    threads: int
    size: tuple[int, int]
    end_to_end_ms: tuple[float, float]  # p50, p90
    stages_ms: dict[str, tuple[float, float]]  # stage -> p50, p90
    faces_per_frame: float
    accuracy: float | None = None  # from the model's card, with the set it was measured on
    accuracy_set: str | None = None

    @property
    def key(self) -> str:
        return row_key(self.detector, self.model, self.threads, self.size)

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        return cls(
            detector=str(d["detector"]), model=str(d["model"]), threads=int(d["threads"]),
            size=(int(d["size"][0]), int(d["size"][1])),
            end_to_end_ms=(float(d["end_to_end_ms"][0]), float(d["end_to_end_ms"][1])),
            stages_ms={k: (float(v[0]), float(v[1])) for k, v in d["stages_ms"].items()},
            faces_per_frame=float(d["faces_per_frame"]),
            accuracy=None if d.get("accuracy") is None else float(d["accuracy"]),
            accuracy_set=d.get("accuracy_set"),
        )


@dataclass
class Frames:
    """Decoded frames at one size, with what decoding and resizing each one cost."""

    size: tuple[int, int]
    images: list[np.ndarray]
    decode_ms: list[float] = field(default_factory=list)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size {text}: use WIDTHxHEIGHT, e.g. 640x480") from None
    if w < 32 or h < 32:
        raise UsageError(f"--size {text}: at least 32x32")
    return w, h


def read_frames(source: str | Path, size: tuple[int, int], limit: int) -> Frames:
    """Up to ``limit`` frames of ``source`` resized to ``size``, timing decode + resize per frame."""
    import cv2

    from .sources import open_source

    frames = Frames(size, [])
    with open_source(source) as src:
        it = iter(src)
        while len(frames.images) < limit:
            t0 = time.perf_counter()
            frame = next(it, None)
            if frame is None:
                break
            image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            frames.decode_ms.append((time.perf_counter() - t0) * 1e3)
            frames.images.append(image)
    if not frames.images:
        raise SourceError(f"{source}: no readable frames")
    return frames


def available_detectors(names: Iterable[str] = DETECTORS) -> tuple[list[str], dict[str, str]]:
    """The detectors that can be created here, and why each other one cannot."""
    from .detectors import make_detector

    ok, skipped = [], {}
    for name in names:
        try:
            make_detector(name).close()
            ok.append(name)
        except ModelError as exc:
            skipped[name] = str(exc)
    return ok, skipped


def available_models(models: Iterable[str | Path] | None = None) -> tuple[list[Path], dict[str, str]]:
    """Classifier files that load here (all bundled ones by default), and why others do not."""
    from edgefer.models import available, resolve

    from .classifiers import load_classifier

    paths = [resolve(m) for m in models] if models else available()
    ok, skipped = [], {}
    for path in paths:
        try:
            load_classifier(path)
            ok.append(Path(path))
        except ModelError as exc:
            skipped[Path(path).name] = str(exc)
    return ok, skipped


@functools.cache  # every pipeline with this model asks; the card is read once
def card_accuracy(path: Path) -> tuple[float | None, str | None]:
    """The model's PublicTest accuracy as its card records it (measured by ``edgefer eval``)."""
    from .metadata import read_model_info

    try:
        metrics = read_model_info(path).card.get("metrics", {})
    except ModelError:
        return None, None
    for name, m in metrics.items():
        if "publictest" in name and isinstance(m, dict) and "accuracy" in m:
            return float(m["accuracy"]), name
    return None, None


def plan(detectors: Sequence[str], models: Sequence[Path], threads: Sequence[int],
         sizes: Sequence[tuple[int, int]]) -> list[Case]:
    return [Case(d, m, t, s) for s in sizes for t in threads for d in detectors for m in models]


def _p50_p90(values: Sequence[float]) -> tuple[float, float]:
    p50, p90 = np.percentile(np.asarray(values, dtype=np.float64), [50, 90])
    return float(p50), float(p90)


def measure(case: Case, frames: Frames, rounds: Rounds) -> Row:
    """Warm up, then time ``rounds.rounds`` frames (cycling through the clip) through one pipeline."""
    from .pipeline import Recognizer

    n = len(frames.images)
    stage_ms: dict[str, list[float]] = {s: [] for s in STAGES}
    e2e: list[float] = []
    faces = 0
    with Recognizer(model=case.model, detector=case.detector, threads=case.threads) as rec:
        for i in range(rounds.warmup):
            rec(frames.images[i % n])
        rec.reset()
        for i in range(rounds.rounds):
            t0 = time.perf_counter()
            result = rec(frames.images[i % n])
            call_ms = (time.perf_counter() - t0) * 1e3
            decode = frames.decode_ms[i % n]
            e2e.append(decode + call_ms)
            stage_ms["decode"].append(decode)
            for s in STAGES[1:]:
                stage_ms[s].append(result.timings_ms[s])
            faces += len(result.faces)
    accuracy, accuracy_set = card_accuracy(case.model)
    return Row(
        detector=case.detector, model=case.model.name, threads=case.threads, size=case.size,
        end_to_end_ms=_p50_p90(e2e), stages_ms={s: _p50_p90(v) for s, v in stage_ms.items()},
        faces_per_frame=faces / rounds.rounds, accuracy=accuracy, accuracy_set=accuracy_set,
    )


def run(cases: Sequence[Case], frames: dict[tuple[int, int], Frames], rounds: Rounds,
        progress: Callable[[int, int, Case], None] | None = None) -> Iterator[Row]:
    """Measure each case in turn; ``progress(i, total, case)`` is called before each."""
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case)
        yield measure(case, frames[case.size], rounds)


def _fmt(ms: float) -> str:
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def table(rows: Sequence[Row]) -> str:
    """One table, fastest first, with the report's 45 ms loop as a reference row."""
    head = ["pipeline (detector | model | threads | frame)", "p50 ms", "p90 ms", "FPS", "vs 45 ms",
            *[f"{s} p50" for s in STAGES], "faces/frame", "accuracy"]
    lines = []
    reference = ["report: Haar + Keras webcam loop", _fmt(REPORT_MS), "-", f"{1000 / REPORT_MS:.0f}", "1.0x",
                 *["-"] * len(STAGES), "-", "0.58-0.62"]
    placed = False
    for row in sorted(rows, key=lambda r: r.end_to_end_ms[0]):
        p50, p90 = row.end_to_end_ms
        if not placed and p50 > REPORT_MS:
            lines.append(reference)
            placed = True
        lines.append([
            row.key, _fmt(p50), _fmt(p90), f"{1000 / p50:.0f}", f"{REPORT_MS / p50:.1f}x",
            *[_fmt(row.stages_ms[s][0]) for s in STAGES], f"{row.faces_per_frame:.2f}",
            "-" if row.accuracy is None else f"{row.accuracy:.4f}",
        ])
    if not placed:
        lines.append(reference)
    return _render([head, *lines])


def _render(cells: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    out = []
    for j, r in enumerate(cells):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def recommend(rows: Sequence[Row], tolerance: float = 0.005) -> str | None:
    """The fastest pipeline whose model keeps accuracy: within ``tolerance`` of the most
    accurate model with the same card metric (so FER2013 models compete with each other)."""
    best: dict[str, float] = {}
    for r in rows:
        if r.accuracy is not None and r.accuracy_set:
            best[r.accuracy_set] = max(best.get(r.accuracy_set, 0.0), r.accuracy)
    keep = [r for r in rows if r.accuracy is not None and r.accuracy_set
            and r.accuracy >= best[r.accuracy_set] - tolerance and r.faces_per_frame > 0]
    if not keep:
        return None
    r = min(keep, key=lambda r: r.end_to_end_ms[0])
    return (f"fastest pipeline that keeps accuracy: {r.key}: {_fmt(r.end_to_end_ms[0])} ms p50 "
            f"({REPORT_MS / r.end_to_end_ms[0]:.1f}x faster than the report's 45 ms), "
            f"{r.model} scores {r.accuracy:.2%} on {r.accuracy_set} (best {best[r.accuracy_set or '']:.2%}); "
            f"edgefer run --detector {r.detector} --model {Path(r.model).stem} --threads {r.threads}")


def describe_machine(info: dict) -> str:
    pkgs = ", ".join(f"{k} {v}" for k, v in info.get("packages", {}).items())
    simd = ", ".join(info.get("simd", [])) or "none listed"
    return (f"{info.get('cpu')} ({info.get('arch')}; SIMD: {simd}), {info.get('usable_cores')} of "
            f"{info.get('cores')} cores usable, {info.get('os')}; Python {info.get('python')}; {pkgs}")


def to_json(rows: Sequence[Row], info: dict, settings: dict) -> dict:
    return {"schema": SCHEMA, "machine": info, "settings": settings, "rows": [asdict(r) for r in rows]}


def load_json(path: str | Path) -> tuple[dict, list[Row]]:
    """Read and validate a ``--json`` file: its machine description and rows."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not an edgefer bench file (schema {data.get('schema')!r}, expected {SCHEMA})")
        rows = [Row.from_dict(r) for r in data["rows"]]
        info = dict(data["machine"])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{path}: {exc}") from None
    for r in rows:
        if not all(np.isfinite(v) and v >= 0 for v in r.end_to_end_ms):
            raise DataError(f"{path}: row {r.key}: end-to-end times must be finite and >= 0")
        if set(r.stages_ms) != set(STAGES):
            raise DataError(f"{path}: row {r.key}: stages {sorted(r.stages_ms)}, expected {list(STAGES)}")
    return info, rows


def compare(a: tuple[dict, list[Row]], b: tuple[dict, list[Row]], names: tuple[str, str] = ("A", "B")) -> str:
    """Two machines side by side: every pipeline both measured, with B's p50 over A's."""
    (info_a, rows_a), (info_b, rows_b) = a, b
    by_key = {r.key: r for r in rows_b}
    head = ["pipeline (detector | model | threads | frame)", f"{names[0]} p50 ms", f"{names[1]} p50 ms",
            f"{names[1]} / {names[0]}"]
    cells = [head]
    for r in sorted(rows_a, key=lambda r: r.end_to_end_ms[0]):
        other = by_key.get(r.key)
        if other is None:
            continue
        ratio = other.end_to_end_ms[0] / r.end_to_end_ms[0] if r.end_to_end_ms[0] else float("nan")
        cells.append([r.key, _fmt(r.end_to_end_ms[0]), _fmt(other.end_to_end_ms[0]), f"{ratio:.2f}x"])
    if len(cells) == 1:
        raise DataError("the two files share no pipeline (detector, model, threads and frame size)")
    only = len(rows_a) + len(rows_b) - 2 * (len(cells) - 1)
    return "\n".join([
        f"{names[0]}: {describe_machine(info_a)}",
        f"{names[1]}: {describe_machine(info_b)}",
        "",
        _render(cells),
        *([f"({only} rows measured on one machine only are left out)"] if only else []),
    ])
