"""How steady is the shown label, and how fast does it follow a real change?

    .venv/bin/python scripts/label_stability.py                # the shared talking-head clips
    .venv/bin/python scripts/label_stability.py --frames 200 --fps 25

1. Each clip runs once through the detector and classifier (the default model), recording the
   main face's raw probabilities per frame.
2. Those real probability sequences are replayed through the tracker for every setting of
   smoothing, hysteresis and lead margin: label changes per ``--frames`` frames on each clip,
   as shown.
3. Splices: a segment of one clip joined to another segment whose majority raw label differs
   (a known change point at a fixed box); the delay is the number of frames from the change
   until the shown label is the new segment's majority label. Reported for every splice and
   for the clear ones, where the new label is the raw arg-max on at least ``CLEAR`` of the new
   segment's frames (in a segment where it wins only half the frames, holding the old label
   is arguably right, and the delay there measures the rule's caution, not its lag).
Prints one table (markdown) with both measures for every setting; the defaults' row is marked.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from edgefer.runtime.pipeline import Recognizer
from edgefer.runtime.sources import open_source
from edgefer.runtime.tracking import (
    DEFAULT_HYSTERESIS,
    DEFAULT_SMOOTH,
    LEAD_MARGIN,
    MAX_LAG,
    IoUTracker,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
CLIPS = ("sadtalker_WDA_AlexandriaOcasioCortez_000.mp4", "sadtalker_WDA_KatieHill_000.mp4")
BOX = (0, 0, 100, 100)
SEGMENT = 40  # frames on each side of a splice
CLEAR = 0.75  # share of the new segment's frames its label must win for a clear change


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


def replay(seq: np.ndarray, smooth: float, hysteresis: float, margin: float = LEAD_MARGIN) -> list[int]:
    tracker = IoUTracker(smooth=smooth, hysteresis=hysteresis, lead_margin=margin, max_lag=MAX_LAG)
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


def splices(sequences: list[np.ndarray]) -> list[tuple[np.ndarray, int, bool]]:
    """(sequence, new label, clear) triples: SEGMENT frames of one clip, then SEGMENT of another
    segment whose majority label (>= half of its frames) differs from the first's; clear when
    that label wins at least CLEAR of the new segment's frames."""
    segments = [s[i:i + SEGMENT] for s in sequences for i in range(0, len(s) - SEGMENT + 1, SEGMENT)]
    out = []
    for a, b in itertools.permutations(segments, 2):
        (la, sa), (lb, sb) = majority(a), majority(b)
        if la != lb and sa >= 0.5 and sb >= 0.5:
            out.append((np.concatenate([a, b]), lb, sb >= CLEAR))
    return out


def delay(shown: list[int], target: int) -> int:
    after = shown[SEGMENT:]
    return next((i for i, s in enumerate(after) if s == target), len(after))


def percentiles(delays: list[int]) -> str:
    if not delays:
        return "-"
    d50, d90 = np.percentile(delays, [50, 90])
    return f"{d50:.0f} / {d90:.0f} / {max(delays)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, default=SHARED)
    p.add_argument("--frames", type=int, default=200, help="frames per clip (default 200)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate for the delay in seconds (default 25)")
    args = p.parse_args()
    sequences = [raw_sequence(args.videos / c, args.frames) for c in CLIPS]
    cuts = splices(sequences)
    clear = sum(c for _, _, c in cuts)
    print(f"{', '.join(CLIPS)}: {[len(s) for s in sequences]} frames with a face; {len(cuts)} splices, "
          f"{clear} clear; a class leading {MAX_LAG} frames in a row is always shown")
    print(f"| smooth | hysteresis | lead margin | changes per {args.frames} frames "
          f"({' / '.join(c[15:30] for c in CLIPS)}) | delay, all splices: median / 90th pct / max frames "
          f"| delay, clear changes | clear max s at {args.fps:g} fps |")
    print("|---:|---:|---:|---|---|---|---:|")
    settings = [(s, 0.0, 0.0) for s in (0.0, 0.6)] + list(
        itertools.product((0.0, 0.3, 0.6), (0.5, 1.0, 1.5), (0.0, 0.2, 0.3)))
    for smooth, hysteresis, margin in settings:
        per_clip = [changes(replay(s, smooth, hysteresis, margin)) for s in sequences]
        delays = [delay(replay(seq, smooth, hysteresis, margin), target) for seq, target, _ in cuts]
        clear_delays = [d for d, (_, _, c) in zip(delays, cuts) if c]
        worst = max(clear_delays) / args.fps if clear_delays else float("nan")
        default = (smooth, hysteresis, margin) == (DEFAULT_SMOOTH, DEFAULT_HYSTERESIS, LEAD_MARGIN)
        print(f"| {smooth} | {hysteresis} | {margin}{' (defaults)' if default else ''} | "
              f"{' / '.join(map(str, per_clip))} | {percentiles(delays)} | {percentiles(clear_delays)} | "
              f"{worst:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
