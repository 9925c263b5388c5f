"""Faults in training: a kill during a checkpoint write, damaged checkpoints, malformed CSV rows.

The kill is real (SIGKILL to a training subprocess) and lands at a fixed point: the test hook
EDGEFER_TEST_PAUSE_CHECKPOINT makes the trainer stop inside a checkpoint write, after the
temporary file is complete and before its rename, and print a marker the test waits for.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.errors import DataError

_pixels_ok = " ".join(["7"] * 2304)


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["emotion,pixels,Usage", *rows]) + "\n")
    return path


# ---------------------------------------------------------------- CSV accounting
@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (f"3,{_pixels_ok},Trainingg", "bad or empty Usage"),
        (f"3,{_pixels_ok},", "bad or empty Usage"),
        (f"3,{_pixels_ok}", "short row"),
        (f"3,{_pixels_ok},Training,extra", "extra column"),
        ("3," + " ".join(["7"] * 2303 + ["nan"]) + ",Training", "pixel not an integer 0..255"),
        ("3," + " ".join(["7"] * 2303 + ["12.7"]) + ",Training", "pixel not an integer 0..255"),
        ("3," + " ".join(["7"] * 2303 + ["256"]) + ",Training", "pixel not an integer 0..255"),
        ("3," + " ".join(["7"] * 2500) + ",Training", "wrong pixel count"),
        (f"7,{_pixels_ok},Training", "bad emotion index"),
        (f"-1,{_pixels_ok},Training", "bad emotion index"),
        (f"x,{_pixels_ok},Training", "bad emotion index"),
    ],
)
def test_csv_row_dropped_and_counted_by_reason(tmp_path: Path, capsys, row: str, reason: str) -> None:
    from edgefer.train.data import load_fer_csv

    p = _csv(tmp_path / "fer2013.csv", [f"0,{_pixels_ok},Training", row, f"1,{_pixels_ok},PublicTest"])
    ds = load_fer_csv(p, "Training")
    err = capsys.readouterr().err
    assert ds.y.tolist() == [0]
    assert ds.dropped == {reason: 1}
    assert f"line 3: row dropped, {reason}" in err
    assert f"1 rows dropped (1 {reason})" in err


def test_csv_counts_every_reason_once_per_row(tmp_path: Path, capsys) -> None:
    """Many bad rows: each reason counted in full, while only the first few are printed one by one."""
    from edgefer.train.data import load_fer_csv

    rows = [f"0,{_pixels_ok},Training"] + [f"3,{_pixels_ok}"] * 10 + [f"3,{_pixels_ok},?"] * 2
    ds = load_fer_csv(_csv(tmp_path / "fer2013.csv", rows), "Training")
    err = capsys.readouterr().err
    assert len(ds) == 1 and ds.dropped == {"short row": 10, "bad or empty Usage": 2}
    assert err.count("row dropped, short row") == 3
    assert "12 rows dropped (2 bad or empty Usage, 10 short row)" in err


def test_csv_with_only_bad_rows_is_one_error(tmp_path: Path) -> None:
    from edgefer.train.data import load_fer_csv

    with pytest.raises(DataError, match="no usable rows"):
        load_fer_csv(_csv(tmp_path / "fer2013.csv", ["3,1 2 3,Training"]), "Training")


# ---------------------------------------------------------------- checkpoints and resume
pytest.importorskip("tensorflow")

# No --deterministic: on CPU the seeded run repeats bit for bit without it (measured max |dw| = 0),
# and TensorFlow's op determinism, once on, stays on for the rest of the test process.
ARGS = ["--arch", "ckplus", "--epochs", "3", "--batch", "8", "--seed", "5", "--augment", "--no-report"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    import cv2

    from edgefer.runtime.labels import FER2013_LABELS

    root = tmp_path_factory.mktemp("fer")
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for i, name in enumerate(FER2013_LABELS):
            (root / split / name).mkdir(parents=True)
            for j in range(n):
                img = np.clip(rng.normal(30 + 30 * i, 10, (48, 48)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(root / split / name / f"{j}.png"), img)
    return root


def _edgefer(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "import sys; from edgefer.runtime.cli import main; sys.exit(main())", *args]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, text=True, **kw)


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r.pop("epoch_seconds")  # wall-clock, the one column that may differ
    return rows


def _weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path).get_weights()


def _max_dw(a: Path, b: Path) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(_weights(a), _weights(b), strict=True))


@pytest.fixture(scope="module")
def uninterrupted(tiny_data: Path, tmp_path_factory) -> Path:
    from edgefer.runtime.cli import main

    run = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", "--data", str(tiny_data), "--out", str(run), *ARGS]) == 0
    return run


def test_kill_during_last_keras_write_then_resume_equals_uninterrupted(
    tiny_data: Path, tmp_path: Path, uninterrupted: Path
) -> None:
    from edgefer.train.trainer import checkpoint_epoch

    run = tmp_path / "run"
    proc = _edgefer("train", "--data", str(tiny_data), "--out", str(run), *ARGS,
                    env={"EDGEFER_TEST_PAUSE_CHECKPOINT": "last.keras:2"}, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    paused = next((line for line in proc.stdout if line.startswith("EDGEFER_TEST_PAUSED")), None)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.wait()
    assert paused is not None, "the trainer never reached the checkpoint write"
    tmp = Path(paused.split(maxsplit=1)[1].strip())
    assert tmp.is_file() and tmp.stat().st_size > 0  # the new checkpoint, complete but never renamed
    # The kill came after epoch 2's history row and before its checkpoint landed.
    assert len(_history(run)) == 2
    assert checkpoint_epoch(run / "last.keras") == 1

    resumed = _edgefer("train", "--data", str(tiny_data), "--out", str(run), "--resume", *ARGS,
                       stdout=subprocess.PIPE)
    out, _ = resumed.communicate()
    assert resumed.returncode == 0
    assert "resuming" in out and "after epoch 1" in out
    assert not tmp.exists()  # the interrupted write's leftover is cleared
    assert _history(run) == _history(uninterrupted)
    assert checkpoint_epoch(run / "last.keras") == 3
    assert _max_dw(run / "last.keras", uninterrupted / "last.keras") == 0.0
    assert _max_dw(run / "best.keras", uninterrupted / "best.keras") == 0.0


def _two_epochs(tiny_data: Path, run: Path) -> None:
    from edgefer.runtime.cli import main

    assert main(["train", "--data", str(tiny_data), "--out", str(run), *ARGS[:2], "--epochs", "2", *ARGS[4:]]) == 0


def test_empty_last_keras_falls_back_to_best(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from edgefer.runtime.cli import main
    from edgefer.train.trainer import checkpoint_epoch

    run = tmp_path / "run"
    _two_epochs(tiny_data, run)
    best_epoch = checkpoint_epoch(run / "best.keras")
    assert best_epoch is not None
    (run / "last.keras").write_bytes(b"")  # what an in-place write cut short by a kill left
    capsys.readouterr()
    assert main(["train", "--data", str(tiny_data), "--out", str(run), "--resume", *ARGS]) == 0
    captured = capsys.readouterr()
    assert f"last.keras is empty (0 bytes); resuming from best.keras after epoch {best_epoch}" in captured.err
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1, 2]
    assert checkpoint_epoch(run / "last.keras") == 3


def test_damaged_checkpoints_without_fallback_are_one_line_error(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from edgefer.runtime.cli import main

    run = tmp_path / "run"
    _two_epochs(tiny_data, run)
    (run / "last.keras").write_bytes(b"")
    data = (run / "best.keras").read_bytes()
    (run / "best.keras").write_bytes(data[: len(data) // 2])  # truncated
    capsys.readouterr()
    assert main(["train", "--data", str(tiny_data), "--out", str(run), "--resume", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("edgefer train: error: cannot resume")
    assert "last.keras is empty (0 bytes)" in err[0] and "best.keras" in err[0]
    assert "Traceback" not in err[0]


def test_old_run_folder_without_epoch_record_resumes_by_history_rows(tiny_data: Path, tmp_path: Path) -> None:
    from edgefer.train.trainer import STATE_ENTRY, TrainConfig, checkpoint_epoch, train

    run = tmp_path / "run"
    _two_epochs(tiny_data, run)
    for name in ("last.keras", "best.keras"):  # as the trainer wrote them before they carried their epoch
        with zipfile.ZipFile(run / name) as z:
            entries = {n: z.read(n) for n in z.namelist() if n != STATE_ENTRY}
        with zipfile.ZipFile(run / name, "w") as z:
            for n, b in entries.items():
                z.writestr(n, b)
        assert checkpoint_epoch(run / name) is None
    train(TrainConfig(data=str(tiny_data), arch="ckplus", out=str(run), epochs=3, batch_size=8, seed=5,
                      resume=True))
    assert [int(r["epoch"]) for r in _history(run)] == [0, 1, 2]
