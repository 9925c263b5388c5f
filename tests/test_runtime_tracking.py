"""Tracking keeps ids stable on moving faces; EMA smoothing reduces label flicker."""

from __future__ import annotations

import numpy as np
import pytest

from edgefer.runtime.tracking import LEAD_MARGIN, MAX_LAG, IoUTracker, iou


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def _uniform(n: int, k: int = 7) -> np.ndarray:
    return np.full((n, k), 1.0 / k, dtype=np.float32)


def test_ids_stay_stable_on_moving_boxes_and_survive_a_short_gap() -> None:
    tracker = IoUTracker(max_missed=5)
    seen_a, seen_b = set(), set()
    for t in range(60):
        moving = (10 + 4 * t, 50 + 2 * t, 80, 80)  # 4 px/frame right, 2 px/frame down
        still = (500, 40, 60, 60)
        boxes = [still, moving] if t % 2 else [moving, still]  # detection order must not matter
        if 30 <= t < 33:  # the detector misses the moving face for three frames
            boxes = [still]
            ids, _ = tracker.update(boxes, _uniform(1))
            seen_b.add(ids[0])
            continue
        ids, _ = tracker.update(boxes, _uniform(len(boxes)))
        id_of = dict(zip(boxes, ids, strict=True))
        seen_a.add(id_of[moving])
        seen_b.add(id_of[still])
    assert len(seen_a) == 1 and len(seen_b) == 1 and seen_a != seen_b


def test_a_new_face_gets_a_new_id_and_a_lost_track_expires() -> None:
    tracker = IoUTracker(max_missed=2)
    (first,), _ = tracker.update([(0, 0, 50, 50)], _uniform(1))
    for _ in range(3):
        tracker.update([], _uniform(0))
    (again,), _ = tracker.update([(0, 0, 50, 50)], _uniform(1))
    assert again != first
    ids, _ = tracker.update([(0, 0, 50, 50), (200, 200, 50, 50)], _uniform(2))
    assert ids[0] == again and ids[1] not in (first, again)


def _noisy_stream(frames: int, seed: int = 0) -> np.ndarray:
    """A face that is 'happy' throughout, with per-frame classifier noise that often flips the argmax."""
    rng = np.random.default_rng(seed)
    base = np.array([0.05, 0.02, 0.05, 0.45, 0.10, 0.08, 0.25])
    logits = np.log(base) + rng.normal(0, 0.5, size=(frames, 7))
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def _label_changes(tracker: IoUTracker, stream: np.ndarray) -> tuple[int, int]:
    labels = []
    for t, p in enumerate(stream):
        _, smoothed = tracker.update([(100 + t, 100, 80, 80)], p[None])
        labels.append(int(np.argmax(smoothed[0])))
    changes = sum(a != b for a, b in zip(labels, labels[1:], strict=False))
    return changes, labels.count(3)


def test_smoothing_reduces_flicker() -> None:
    stream = _noisy_stream(200)
    raw_changes, raw_happy = _label_changes(IoUTracker(smooth=0.0), stream)
    smooth_changes, smooth_happy = _label_changes(IoUTracker(smooth=0.6), stream)
    assert raw_changes >= 30  # the raw stream really flickers
    assert smooth_changes <= raw_changes / 4
    assert smooth_happy > raw_happy  # and the steadier label is the right one more often


def test_smooth_zero_returns_raw_probabilities() -> None:
    stream = _noisy_stream(10)
    tracker = IoUTracker(smooth=0.0)
    for t, p in enumerate(stream):
        _, out = tracker.update([(t, 0, 50, 50)], p[None])
        np.testing.assert_array_equal(out[0], p)


def test_smooth_must_be_below_one() -> None:
    with pytest.raises(ValueError):
        IoUTracker(smooth=1.0)


def _shown(tracker: IoUTracker, stream: np.ndarray) -> list[int]:
    out = []
    for p in stream:
        ids, _ = tracker.update([(100, 100, 80, 80)], p[None])
        out.append(tracker.shown(ids[0]))
    return out


def _near_tie(frames: int, seed: int = 1) -> np.ndarray:
    """neutral and sad within a few points of each other, the lead changing every few frames."""
    rng = np.random.default_rng(seed)
    p = np.full((frames, 7), 0.02, np.float32)
    lead = np.repeat(rng.choice([-1.0, 1.0], size=frames // 3 + 1), 3)[:frames] * 0.04
    p[:, 6] = 0.45 + lead
    p[:, 4] = 0.45 - lead
    return p / p.sum(axis=1, keepdims=True)


def test_hysteresis_keeps_a_near_tie_off_the_screen() -> None:
    stream = _near_tie(300)
    plain = _shown(IoUTracker(smooth=0.0, hysteresis=0.0), stream)
    held = _shown(IoUTracker(smooth=0.0, hysteresis=0.5), stream)
    plain_changes = sum(a != b for a, b in zip(plain, plain[1:]))
    held_changes = sum(a != b for a, b in zip(held, held[1:]))
    assert plain_changes >= 40  # without it the label trades places all the time
    assert held_changes <= plain_changes / 5  # only leads that last several blocks get through


def test_hysteresis_follows_a_clear_change_within_a_quarter_second() -> None:
    happy, sad = np.full(7, 0.02, np.float32), np.full(7, 0.02, np.float32)
    happy[3], sad[4] = 0.88, 0.88
    stream = np.stack([happy] * 30 + [sad] * 30)
    shown = _shown(IoUTracker(), stream)  # the defaults
    assert shown[29] == 3
    delay = next(i for i, s in enumerate(shown[30:]) if s == 4)
    # the average needs 2 frames to put sad ahead, the evidence 3 more to pass the threshold
    assert delay <= 6, shown[28:40]  # 0.24 s at 25 fps
    assert all(s == 4 for s in shown[30 + delay:])  # and it stays


def test_short_excursions_never_reach_the_screen() -> None:
    # neutral throughout, with one- and two-frame jumps to surprise, fear and angry, as the
    # raw classifier output on a talking head shows them
    neutral = np.full(7, 0.04, np.float32)
    neutral[6] = 0.76
    stream = [neutral] * 10
    for label, frames in ((5, 1), (2, 1), (0, 2), (5, 2), (2, 1)):
        jump = np.full(7, 0.04, np.float32)
        jump[label] = 0.76
        stream += [jump] * frames + [neutral] * 6
    shown = _shown(IoUTracker(), np.stack(stream))
    assert set(shown) == {6}
    plain = _shown(IoUTracker(hysteresis=0.0), np.stack(stream))
    assert len(set(plain)) > 1  # the average alone lets some of them through


def test_a_small_lasting_lead_is_shown_within_max_lag() -> None:
    # a lead below the margin adds no evidence; holding it off for ever would hide a real,
    # if mild, change, so a class that leads MAX_LAG frames in a row is shown
    a, b = np.full(7, 0.1, np.float32), np.full(7, 0.1, np.float32)
    a[6], a[4] = 0.3, 0.1
    b[6], b[4] = 0.2, 0.3  # sad ahead by 0.1 < LEAD_MARGIN
    stream = np.stack([a] * 20 + [b] * 30)
    shown = _shown(IoUTracker(smooth=0.0), stream)
    assert shown[19] == 6
    delay = next(i for i, s in enumerate(shown[20:]) if s == 4)
    assert delay == MAX_LAG - 1  # shown on its MAX_LAG-th frame in the lead
    assert LEAD_MARGIN > 0.1


def test_hysteresis_zero_shows_the_arg_max() -> None:
    stream = _noisy_stream(50)
    tracker = IoUTracker(smooth=0.6, hysteresis=0.0)
    for p in stream:
        ids, smoothed = tracker.update([(100, 100, 80, 80)], p[None])
        assert tracker.shown(ids[0]) == int(np.argmax(smoothed[0]))
    with pytest.raises(ValueError):
        IoUTracker(hysteresis=-1.0)


def test_reset_starts_ids_again() -> None:
    tracker = IoUTracker()
    p = np.full((2, 7), 1 / 7, np.float32)
    assert tracker.update([(0, 0, 10, 10), (50, 50, 10, 10)], p)[0] == [1, 2]
    tracker.reset()
    assert tracker.update([(200, 200, 10, 10)], p[:1])[0] == [1]
