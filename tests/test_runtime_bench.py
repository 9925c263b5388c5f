"""`edgefer bench`: its table, JSON and comparison on a few rounds (structure and sanity, never speed)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from edgefer.models import MODELS_DIR
from edgefer.runtime import bench
from edgefer.runtime.cli import main
from edgefer.runtime.errors import DataError
from edgefer.runtime.metadata import read_model_info


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("bench") / "here.json"
    rc, stdout, _ = _run(["bench", "--rounds", "3", "--warmup", "1", "--detectors", "blazeface,haar",
                          "--models", "fer2013-int8,fer2013", "--threads", "1", "--json", str(out)])
    return rc, stdout, out


def test_bench_prints_every_pipeline_and_the_report_reference(measured: tuple[int, str, Path]) -> None:
    rc, stdout, _ = measured
    assert rc == 0
    rows = [line for line in stdout.splitlines() if " | 1 thread | 640x480 " in line and " ms p50" not in line]
    assert len(rows) == 4  # 2 detectors x 2 models x 1 thread count x 1 size
    for det in ("blazeface", "haar"):
        for model in ("fer2013-int8.onnx", "fer2013.onnx"):
            assert any(line.startswith(f"{det} | {model} |") for line in rows), (det, model)
    assert "report: Haar + Keras webcam loop" in stdout
    assert "machine: " in stdout and "SIMD" in stdout
    assert "fastest pipeline that keeps accuracy" in stdout


def test_bench_json_validates_and_carries_the_cards_accuracy(measured: tuple[int, str, Path]) -> None:
    _, _, path = measured
    info, rows = bench.load_json(path)
    assert info["cores"] >= 1 and "packages" in info and "onnxruntime" in info["packages"]
    assert len(rows) == 4
    card = read_model_info(MODELS_DIR / "fer2013.onnx").card["metrics"]
    expected = next(m["accuracy"] for k, m in card.items() if "publictest" in k)
    for r in rows:
        p50, p90 = r.end_to_end_ms
        assert 0 < p50 <= p90
        # End to end is decode plus the recognizer's stages (the call adds only Python glue).
        assert p50 >= sum(r.stages_ms[s][0] for s in ("decode", "detect")) * 0.5
        assert r.faces_per_frame == pytest.approx(1.0)  # the bundled clip shows one face throughout
        if r.model == "fer2013.onnx":
            assert r.accuracy == pytest.approx(expected)


def _row(detector: str, p50: float) -> bench.Row:
    stages = {s: (p50 / 5, p50 / 4) for s in bench.STAGES}
    return bench.Row(detector, "fer2013-int8.onnx", 1, (640, 480), (p50, p50 * 1.2), stages, 1.0, 0.70,
                     "fer2013-publictest")


def test_compare_lines_up_two_machines(tmp_path: Path) -> None:
    a, b = tmp_path / "laptop.json", tmp_path / "pi4.json"
    laptop = [_row("blazeface", 4.0), _row("haar", 20.0)]
    pi = [_row("blazeface", 12.0), _row("mediapipe", 9.0)]
    a.write_text(json.dumps(bench.to_json(laptop, {"cpu": "x86"}, {})))
    b.write_text(json.dumps(bench.to_json(pi, {"cpu": "Cortex-A72"}, {})))
    rc, stdout, _ = _run(["bench", "--compare", str(a), str(b)])
    assert rc == 0
    line = next(x for x in stdout.splitlines() if x.startswith("blazeface |"))
    assert line.split()[-3:] == ["4.00", "12.00", "3.00x"]
    assert "haar |" not in stdout and "mediapipe |" not in stdout  # measured on one machine only
    assert "2 rows measured on one machine only" in stdout
    assert "laptop: x86" in stdout and "pi4: Cortex-A72" in stdout


def test_load_json_refuses_foreign_or_broken_files(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"schema": "something-else", "rows": []}))
    with pytest.raises(DataError, match="not an edgefer bench file"):
        bench.load_json(p)
    good = bench.to_json([_row("blazeface", 4.0)], {}, {})
    good["rows"][0]["end_to_end_ms"] = [-1.0, 2.0]
    p.write_text(json.dumps(good))
    with pytest.raises(DataError, match="finite and >= 0"):
        bench.load_json(p)
    p.write_text("{")
    with pytest.raises(DataError, match=r"x\.json"):
        bench.load_json(p)


@pytest.mark.parametrize(("argv", "message"), [
    (["--size", "640"], "WIDTHxHEIGHT"),
    (["--detectors", "nope"], "unknown nope"),
    (["--threads", "0"], "at least 1"),
    (["--rounds", "0"], "at least 1"),
])
def test_bad_options_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    rc, _, err = _run(["bench", *argv])
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_recommendation_keeps_accuracy() -> None:
    fast_but_worse = bench.Row("blazeface", "tiny.onnx", 1, (640, 480), (2.0, 2.5),
                               {s: (0.4, 0.5) for s in bench.STAGES}, 1.0, 0.60, "fer2013-publictest")
    good = _row("blazeface", 5.0)
    tip = bench.recommend([fast_but_worse, good])
    assert tip is not None and "fer2013-int8.onnx" in tip and "tiny.onnx" not in tip
