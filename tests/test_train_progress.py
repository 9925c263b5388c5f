"""Progress lines of training (train/progress.py) on a fake clock: formatting and throttling."""

from __future__ import annotations

import datetime as dt
import io

from edgefer.train.progress import TrainProgress, duration, finish_time

NOW = dt.datetime(2026, 12, 2, 20, 51, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _progress(tty: bool, epochs: int = 120) -> tuple[TrainProgress, Clock, io.StringIO]:
    clock, out = Clock(), io.StringIO()
    return TrainProgress(epochs, stream=out, tty=tty, clock=clock, now=lambda: NOW), clock, out


def test_durations_and_finish_times() -> None:
    assert [duration(s) for s in (0.4, 41, 341, 599.6, 725, 3600, 36840)] == [
        "0 s", "41 s", "341 s", "10 min", "12 min", "1 h 0 min", "10 h 14 min"]
    assert finish_time(NOW, 60) == "about 20:52 UTC"
    assert finish_time(NOW, 36840) == "about 07:05 UTC tomorrow"
    assert finish_time(NOW, 3 * 86400) == "about 20:51 UTC on 2026-12-05"


def test_epoch_end_prints_the_run_eta_from_measured_epochs() -> None:
    p, clock, out = _progress(tty=False)
    p.begin_epoch(10, steps=449)
    clock.t += 500  # the first epoch of a process also traces the graph: left out of the estimate
    p.begin_epoch(11, steps=449)
    clock.t += 341
    p.begin_epoch(12, steps=449)
    lines = out.getvalue().splitlines()
    assert lines[0] == "epoch 11/120 done in 500 s; run ETA 15 h 8 min (about 11:59 UTC tomorrow)"  # 109 x 500 s
    # 108 epochs left x 341 s
    assert lines[1] == "epoch 12/120 done in 341 s; run ETA 10 h 13 min (about 07:04 UTC tomorrow)"
    clock.t += 300
    p.end_run()  # stopped early (a time budget): no ETA, the time of what ran
    assert out.getvalue().splitlines()[2] == "epoch 13/120 done in 300 s; 3 epochs trained in 19 min"


def test_log_lines_at_most_every_30_s_and_every_10_percent() -> None:
    p, clock, out = _progress(tty=False)
    p.begin_epoch(0, steps=100)
    for done in range(1, 101):  # 1 s a step: 30 s pass before 10% would allow a line
        clock.t += 1
        p.step(done)
    lines = out.getvalue().splitlines()
    assert lines == [
        "epoch 1/120: 30/100 steps (30%), 30 s, epoch ETA 70 s",
        "epoch 1/120: 60/100 steps (60%), 60 s, epoch ETA 40 s",
        "epoch 1/120: 90/100 steps (90%), 90 s, epoch ETA 10 s",
    ]
    assert "\r" not in out.getvalue()
    p, clock, out = _progress(tty=False)
    p.begin_epoch(0, steps=1000)
    for done in range(1, 1001):  # 0.5 s a step: 10% (100 steps, 50 s) is the tighter limit
        clock.t += 0.5
        p.step(done)
    assert len(out.getvalue().splitlines()) == 9  # at 10%, 20% ... 90%; the epoch line covers 100%


def test_terminal_line_redraws_in_place_a_few_times_a_second() -> None:
    p, clock, out = _progress(tty=True, epochs=2)
    p.begin_epoch(0, steps=50)
    for done in range(1, 51):  # 16 steps a second
        clock.t += 0.0625
        p.step(done)
    drawn = out.getvalue().split("\r\033[K")[1:]
    assert len(drawn) == 13  # every 0.25 s (4 steps), and the last step
    assert drawn[0] == "epoch 1/2: 4/50 steps (8%), 0 s, epoch ETA 3 s"
    assert drawn[-1] == "epoch 1/2: 50/50 steps (100%), 3 s, epoch ETA 0 s"
    assert "\n" not in out.getvalue()
    p.validating()
    assert out.getvalue().endswith("\r\033[Kepoch 1/2: 50/50 steps, validating")
    p.end_steps()  # before Keras prints its epoch line: an empty line for it
    assert out.getvalue().endswith("\r\033[K")
    clock.t += 1
    p.begin_epoch(1, steps=50)
    assert out.getvalue().endswith("epoch 1/2 done in 4 s; run ETA 4 s (about 20:51 UTC)\n")
    clock.t += 3
    p.end_run()
    assert out.getvalue().endswith("epoch 2/2 done in 3 s; 2 epochs trained in 7 s\n")
