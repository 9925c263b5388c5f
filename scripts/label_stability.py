"""How steady is the shown label, and how fast does it follow a real change?

    .venv/bin/python scripts/label_stability.py                # the shared talking-head clips
    .venv/bin/python scripts/label_stability.py --frames 200 --fps 25

1. Each clip runs once through the detector and classifier (the default model), recording the
   main face's raw probabilities per frame.
2. Those real probability sequences are replayed through the tracker for every setting of
   smoothing and hysteresis: label changes per ``--frames`` frames on each clip, as shown.
3. Splices: the first half of one clip segment joined to another segment whose majority raw
   label differs (a known change point at a fixed box); the delay is the number of frames
   from the change until the shown label is the new segment's majority label.
Prints one table (markdown) with both measures for every setting.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from edgefer.runtime.pipeline import Recognizer
from edgefer.runtime.sources import open_source
from edgefer.runtime.tracking import IoUTracker

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CLIPS = ("sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", "sadtalker_WDA_KatieHill_000.mp4")
BOX = (0, 0, 100, 100)
SEGMENT = 40  # frames on each side of a splice


def raw_sequence(path: Path, frames: int) -> np.ndarray:
    """The largest face's raw probabilities on each of the first ``frames`` frames."""
    rows = []
    with Recognizer(track=False) as rec, open_source(path) as src:
        for frame in itertools.islice(src, frames):
            faces = rec(frame.image).faces
            if faces:
                face = max(faces, key=lambda f: f.box[2] * f.box[3])
                rows.append(list(face.raw_probabilities.values()))
    return np.asarray(rows, dtype=np.float32)


def replay(seq: np.ndarray, smooth: float, hysteresis: float) -> list[int]:
    tracker = IoUTracker(smooth=smooth, hysteresis=hysteresis)
    shown = []
    for p in seq:
        ids, _ = tracker.update([BOX], p[None])
        shown.append(tracker.shown(ids[0]))
    return shown


def changes(shown: list[int]) -> int:
    return sum(a != b for a, b in zip(shown, shown[1:]))


def majority(seq: np.ndarray) -> tuple[int, float]:
    votes = np.bincount(seq.argmax(axis=1), minlength=seq.shape[1])
    return int(votes.argmax()), float(votes.max() / len(seq))


def splices(sequences: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
    """(sequence, new label) pairs: SEGMENT frames of one clip, then SEGMENT of another
    segment whose majority label (>= half of its frames) differs from the first's."""
    segments = [s[i:i + SEGMENT] for s in sequences for i in range(0, len(s) - SEGMENT + 1, SEGMENT)]
    out = []
    for a, b in itertools.permutations(segments, 2):
        (la, sa), (lb, sb) = majority(a), majority(b)
        if la != lb and sa >= 0.5 and sb >= 0.5:
            out.append((np.concatenate([a, b]), lb))
    return out


def delay(shown: list[int], target: int) -> int:
    after = shown[SEGMENT:]
    return next((i for i, s in enumerate(after) if s == target), len(after))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, default=SHARED)
    p.add_argument("--frames", type=int, default=200, help="frames per clip (default 200)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate for the delay in seconds (default 25)")
    args = p.parse_args()
    sequences = [raw_sequence(args.videos / c, args.frames) for c in CLIPS]
    cuts = splices(sequences)
    print(f"{', '.join(CLIPS)}: {[len(s) for s in sequences]} frames with a face; {len(cuts)} splices")
    print(f"| smooth | hysteresis | changes per {args.frames} frames ({' / '.join(c[15:30] for c in CLIPS)}) "
          f"| delay to a real change, median / 90th pct / max frames | max delay s at {args.fps:g} fps |")
    print("|---:|---:|---|---|---:|")
    for smooth, hysteresis in itertools.product((0.0, 0.4, 0.6, 0.75), (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)):
        per_clip = [changes(replay(s, smooth, hysteresis)) for s in sequences]
        delays = [delay(replay(seq, smooth, hysteresis), target) for seq, target in cuts]
        d50, d90 = np.percentile(delays, [50, 90]) if delays else (float("nan"), float("nan"))
        worst = max(delays) if delays else float("nan")
        print(f"| {smooth} | {hysteresis} | {' / '.join(map(str, per_clip))} | "
              f"{d50:.0f} / {d90:.0f} / {worst} | {worst / args.fps:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
