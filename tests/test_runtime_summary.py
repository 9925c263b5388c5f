"""--csv and --summary: a table a person can read and a picture of each face's emotions."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2

from edgefer.models import MODELS_DIR
from edgefer.runtime.cli import main
from edgefer.runtime.summary import RunSummary

CLIP = MODELS_DIR / "sample_face.mp4"


def test_csv_and_summary_describe_the_clip(tmp_path: Path) -> None:
    jsonl, table, folder = tmp_path / "o.jsonl", tmp_path / "o.csv", tmp_path / "summary"
    assert main(["run", "--source", str(CLIP), "--headless", "--jsonl", str(jsonl), "--csv", str(table),
                 "--summary", str(folder)]) == 0
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    faces = [(r["frame"], face) for r in records for face in r["faces"]]
    assert len(rows) == len(faces) == 60  # the clip: 60 frames, one face on each
    labels = list(records[0]["faces"][0]["probabilities"])
    assert list(rows[0])[-len(labels):] == labels
    for row, (frame, face) in zip(rows, faces):
        assert int(row["frame"]) == frame and row["label"] == face["label"]
        assert [int(row[k]) for k in "xywh"] == face["box"]
        assert abs(float(row[face["label"]]) - face["probabilities"][face["label"]]) < 1e-4

    summary = json.loads((folder / "tracks.json").read_text())
    assert summary["frames"] == 60 and summary["labels"] == labels
    track = summary["tracks"][0]
    assert track["frames"] == 60 and track["first_seen_s"] == 0.0
    shown = [f["label"] for _, f in faces]
    assert track["dominant"] == max(set(shown), key=shown.count)
    assert abs(sum(track[f"share_{n}"] for n in labels) - 1.0) < 1e-3
    with open(folder / "tracks.csv", newline="") as f:
        assert next(csv.DictReader(f))["dominant"] == track["dominant"]
    plot = cv2.imread(str(folder / "emotions.png"))
    assert plot is not None and plot.shape[1] == 1000 and (plot < 250).any()


def test_summary_is_written_when_the_run_is_stopped(tmp_path: Path) -> None:
    video = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "sadtalker_WDA_KatieHill_000.mp4"
    source = video if video.is_file() else CLIP
    table, folder = tmp_path / "o.csv", tmp_path / "summary"
    proc = subprocess.Popen([sys.executable, "-m", "edgefer.runtime.cli", "run", "--source", str(source),
                             "--headless", "--jsonl", os.devnull, "--csv", str(table), "--summary", str(folder)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and (not table.exists() or len(table.read_text().splitlines()) < 6):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) in (0, 130)  # 0 if the clip ended first
    finally:
        proc.kill()
    rows = len(table.read_text().splitlines()) - 1
    summary = json.loads((folder / "tracks.json").read_text())
    assert summary["frames"] >= 5 and sum(t["frames"] for t in summary["tracks"]) == rows


def test_summary_of_a_run_without_faces_still_draws() -> None:
    s = RunSummary(("happy", "sad"))
    s.add({"frame": 0, "timestamp": 0.0, "faces": []})
    assert s.rows() == [] and s.plot().shape[1] == 1000
