"""`edgefer run` under faults: outputs never destroy anything and say when they fail; bad
inputs never end a run. Real processes and signals where that is what users hit."""

from __future__ import annotations

import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgefer.runtime import outputs, pipeline, sources
from edgefer.runtime.cli import main
from edgefer.runtime.errors import OutputError
from edgefer.runtime.outputs import OutputLock
from edgefer.runtime.sources import SourceError, open_source

CLI = [sys.executable, "-m", "edgefer.runtime.cli", "run"]


def _write_clip(path: Path, frames: int, fourcc: str = "mp4v", size: int = 64) -> Path:
    """Noise frames: they compress poorly, so the annotated copy grows by kilobytes a frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 25.0, (size, size))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1500 frames: longer than any test lets a run get before it is stopped."""
    return _write_clip(tmp_path_factory.mktemp("clips") / "long.mp4", 1500)


def _frames_in(path: Path) -> tuple[int, int]:
    """(frames the header states, frames cv2 decodes)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    stated, decoded = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    return stated, decoded


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("edgefer run: error:")]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".edgefer-tmp-")
                  or p.name.endswith(".edgefer-lock"))


# ---------------------------------------------------------------- write failures


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_signal_mid_run_leaves_a_playable_video(
    signum: int, long_clip: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "annotated.mp4"
    proc = subprocess.Popen(
        [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--save", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # 50 JSON lines mean the handlers are installed and 49 frames are in the video. The test
    # reads nothing more, so the run soon blocks on a full stdout pipe: still mid-run when
    # the signal lands, however fast the machine.
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(50)]
    assert lines[-1].startswith('{"frame":49,')
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    stated, decoded = _frames_in(out)
    assert 49 <= decoded == stated < 1500
    assert _leftovers(tmp_path) == []


def test_a_killed_run_leaves_the_previous_video(long_clip: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "annotated.mp4"
    previous = _write_clip(tmp_path / "previous.mp4", 5)
    previous.rename(out)
    before = out.read_bytes()
    proc = subprocess.Popen(
        [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--save", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(50)]  # 49 frames are in the new video
    assert lines[-1].startswith('{"frame":49,')
    proc.kill()  # SIGKILL: no handler runs, nothing is released
    proc.communicate(timeout=120)
    assert out.read_bytes() == before  # the previous video, whole, not half of the new one
    assert _frames_in(out) == (5, 5)
    assert len(_leftovers(tmp_path)) == 2  # the dead run's temporary video and its lock
    # the next run takes over the dead run's lock and clears its temporary file
    subprocess.run([*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--save", str(out),
                    "--max-frames", "3"], stdout=subprocess.DEVNULL, check=True, timeout=120)
    assert _frames_in(out) == (3, 3)
    assert _leftovers(tmp_path) == []


def _limit_file_size() -> None:
    # A 30 kB file-size limit (under one H.264 key frame of the clip) stands in for a full
    # disk: writes past it fail with EFBIG the way they fail with ENOSPC (the signal it
    # would send is ignored, as a full disk sends none).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))


def test_full_disk_exits_2_naming_the_video_and_keeps_the_previous_one(
    long_clip: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "annotated.mp4"
    out.write_bytes(b"the previous run's video")
    proc = subprocess.run(
        [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--save", str(out),
         "--max-frames", "300"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=_limit_file_size,
    )
    assert proc.returncode == 2, proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1 and f"cannot write video {out}" in errors[0], proc.stderr
    assert "frames, " not in proc.stderr  # no summary pretending all went well
    assert out.read_bytes() == b"the previous run's video"
    assert _leftovers(tmp_path) == []


def test_jsonl_onto_a_full_device_is_one_line_and_exit_2(
    tiny_onnx: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgefer.models import MODELS_DIR

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless", "--model", str(tiny_onnx),
                 "--jsonl", "/dev/full"])
    err = capsys.readouterr().err
    assert code == 2
    assert _error_lines(err) == ["edgefer run: error: cannot write /dev/full: No space left on device"]


def test_an_oserror_writing_an_image_is_one_line_naming_the_file(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 60, 3), 90, np.uint8))

    def refuse(path: object, data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(outputs, "write_bytes", refuse)
    code = main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx),
                 "--save", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert _error_lines(err) == [f"edgefer run: error: cannot write image {tmp_path / 'out' / 'a.png'}: "
                                 "Permission denied"]


def test_outputs_under_a_regular_file_are_one_line_and_exit_2(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgefer.models import MODELS_DIR

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for option, name in (("--jsonl", "x.jsonl"), ("--save", "x.mp4"), ("--save", "annotated")):
        code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless",
                     "--model", str(tiny_onnx), option, str(blocker / name), "--max-frames", "1"])
        errors = _error_lines(capsys.readouterr().err)
        assert code == 2 and len(errors) == 1 and str(blocker / name) in errors[0], (option, errors)


def test_a_reader_closing_the_pipe_ends_the_run_quietly(long_clip: Path, tiny_onnx: Path) -> None:
    proc = subprocess.Popen(
        [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141
    assert b"Traceback" not in err and b"error" not in err


# ---------------------------------------------------------------- never overwrite an input


def test_save_onto_the_source_video_is_refused_and_the_source_untouched(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = _write_clip(tmp_path / "self.mp4", 20)
    before = clip.read_bytes()
    link = tmp_path / "hardlink.mp4"
    os.link(clip, link)
    for target in (clip, link, tmp_path / "." / "self.mp4"):
        code = main(["run", "--source", str(clip), "--headless", "--model", str(tiny_onnx), "--save", str(target)])
        errors = _error_lines(capsys.readouterr().err)
        assert code == 2 and len(errors) == 1 and "is an input of this run" in errors[0], target
    code = main(["run", "--source", str(clip), "--headless", "--model", str(tiny_onnx), "--jsonl", str(clip)])
    assert code == 2
    assert clip.read_bytes() == before


def test_save_into_the_source_folder_is_refused_and_the_photos_untouched(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 60, 3), 90, np.uint8))
    before = (folder / "a.png").read_bytes()
    for source in (folder, folder / "a.png", f"{folder}/*.png"):
        code = main(["run", "--source", str(source), "--headless", "--model", str(tiny_onnx), "--save", str(folder)])
        errors = _error_lines(capsys.readouterr().err)
        assert code == 2 and len(errors) == 1 and "reads images from" in errors[0], source
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]
    assert (folder / "a.png").read_bytes() == before


def test_images_with_one_stem_get_distinct_outputs(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, name in enumerate(("p_same.bmp", "p_same.tif", "p_same.png", "p_same.jpg")):
        cv2.imwrite(str(folder / name), np.full((40 + 10 * i, 60, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx), "--save", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["p_same.bmp.png", "p_same.jpg", "p_same.png", "p_same.tif.png"]
    assert len(capsys.readouterr().out.splitlines()) == 4
    # the height of each output is its own source's: nothing was overwritten by a namesake
    heights = {name: np.asarray(cv2.imread(str(out / name))).shape[0] for name in written}
    assert heights["p_same.bmp.png"] == 40 and heights["p_same.tif.png"] == 50


def test_an_unsupported_video_suffix_is_refused_with_the_supported_list(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgefer.models import MODELS_DIR

    code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless", "--model", str(tiny_onnx),
                 "--save", str(tmp_path / "out.webm")])
    errors = _error_lines(capsys.readouterr().err)
    assert code == 2 and len(errors) == 1
    assert ".webm" in errors[0] and ".mp4" in errors[0] and ".avi" in errors[0]
    assert not (tmp_path / "out.webm").exists()


# ---------------------------------------------------------------- one writer per output


def test_a_second_run_on_the_same_jsonl_is_refused(long_clip: Path, tiny_onnx: Path, tmp_path: Path) -> None:
    shared = tmp_path / "faces.jsonl"
    first = subprocess.Popen(
        [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--jsonl", str(shared)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (shared.is_file() and b"\n" in shared.read_bytes()):  # the first run is writing
            assert first.poll() is None and time.monotonic() < deadline, "the first run never wrote a line"
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # frozen mid-run, still holding its output
        second = subprocess.run(
            [*CLI, "--source", str(long_clip), "--headless", "--model", str(tiny_onnx), "--jsonl", str(shared)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120,
        )
        assert second.returncode == 2
        errors = _error_lines(second.stderr)
        assert len(errors) == 1 and f"being written by another edgefer run (PID {first.pid})" in errors[0]
    finally:
        first.send_signal(signal.SIGTERM)
        first.send_signal(signal.SIGCONT)
        first.communicate(timeout=120)
    assert first.returncode == 143
    lines = shared.read_text().splitlines()
    assert lines and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))
    assert _leftovers(tmp_path) == []


def test_a_stale_lock_of_a_dead_run_is_taken_over(tiny_onnx: Path, tmp_path: Path) -> None:
    from edgefer.models import MODELS_DIR

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "faces.jsonl"
    lock = tmp_path / f".faces.jsonl{outputs.LOCK_SUFFIX}"
    lock.write_text(f"{dead.pid}\n")
    code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless", "--model", str(tiny_onnx),
                 "--jsonl", str(out), "--max-frames", "2"])
    assert code == 0
    assert len(out.read_text().splitlines()) == 2
    assert not lock.exists()


def test_a_save_another_live_run_holds_is_refused_and_the_old_jsonl_kept(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgefer.models import MODELS_DIR

    video, jsonl = tmp_path / "annotated.mp4", tmp_path / "faces.jsonl"
    jsonl.write_text('{"frame":0}\n')
    holder = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:  # a live process that holds the video's lock, as a running edgefer would
        (tmp_path / f".annotated.mp4{outputs.LOCK_SUFFIX}").write_text(f"{holder.pid}\n")
        code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless",
                     "--model", str(tiny_onnx), "--save", str(video), "--jsonl", str(jsonl)])
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait()
    errors = _error_lines(capsys.readouterr().err)
    assert code == 2 and len(errors) == 1 and f"(PID {holder.pid})" in errors[0]
    assert not video.exists()
    assert jsonl.read_text() == '{"frame":0}\n'


def test_a_lock_names_its_holder_and_refuses_a_second_holder(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    holder = OutputLock(target).acquire()
    try:
        assert holder.lock.read_text().strip() == str(os.getpid())
        with pytest.raises(OutputError, match=f"PID {os.getpid()}"):
            OutputLock(target).acquire()
    finally:
        holder.release()
    assert not holder.lock.exists()
    OutputLock(target).acquire().release()


# ---------------------------------------------------------------- inputs that never end a run


def test_a_frame_that_fails_is_skipped_with_a_warning_and_the_rest_processed(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 60, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "b_thin.png"), np.full((10, 10000, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "c_tall.png"), np.full((10000, 10, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "d.png"), np.full((60, 60, 3), 90, np.uint8))
    process = pipeline.Recognizer.process

    def fails_on_thin(self: pipeline.Recognizer, image: np.ndarray) -> pipeline.FrameResult:
        if image.shape[0] == 10:  # the error the Haar detector used to raise on such images
            raise cv2.error("OpenCV(4.x) resize.cpp:4208: error: (-215:Assertion failed) inv_scale_x > 0")
        return process(self, image)

    monkeypatch.setattr(pipeline.Recognizer, "process", fails_on_thin)
    code = main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx), "--detector", "haar",
                 "--save", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: skipping frame 1 of" in captured.err and "inv_scale_x > 0" in captured.err
    assert [Path(json.loads(line)["source"]).name for line in captured.out.splitlines()] == [
        "a.png", "c_tall.png", "d.png"]
    assert "1 frames skipped after errors" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c_tall.png", "d.png"]


def test_a_broken_recognizer_stops_after_a_run_of_failures(tiny_onnx: Path) -> None:
    class Broken:
        def __call__(self, image: np.ndarray) -> pipeline.FrameResult:
            raise RuntimeError("onnxruntime: invalid input")

        def reset(self) -> None:
            pass

    frames = [sources.Frame(i, None, np.zeros((4, 4, 3), np.uint8), "x") for i in range(10)]
    warnings: list[str] = []
    loop = pipeline.FrameLoop(Broken(), frames, warn=warnings.append,
                              max_consecutive_failures=3)
    with pytest.raises(pipeline.EdgeferError, match="3 frames in a row failed"):
        list(loop)
    assert loop.skipped == 3 and len(warnings) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line_naming_the_video(
    tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgefer.models import MODELS_DIR

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code = main(["run", "--source", str(MODELS_DIR / "sample_face.mp4"), "--headless",
                     "--model", str(tiny_onnx), "--save", str(folder / "x.mp4")])
    finally:
        folder.chmod(0o755)
    errors = _error_lines(capsys.readouterr().err)
    assert code == 2 and errors == [f"edgefer run: error: cannot write {folder / 'x.mp4'}: Permission denied"]


@pytest.mark.parametrize("detector", ["haar", "blazeface"])
def test_images_of_any_aspect_ratio_are_processed(
    detector: str, tiny_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, shape in (("a_thin", (10, 10000)), ("b_tall", (10000, 10)), ("c_dot", (1, 1)), ("d", (80, 80))):
        cv2.imwrite(str(folder / f"{name}.png"), np.full((*shape, 3), 90, np.uint8))
    code = main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx), "--detector", detector,
                 "--save", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(captured.out.splitlines()) == 4 and "skipping" not in captured.err


def _bomb_png(path: Path, side: int = 30000) -> Path:
    """A 1-bit greyscale PNG of side x side pixels: about 100 kB on disk, 2.7 GB as BGR."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bomb = _bomb_png(folder / "a_bomb.png")
    assert bomb.stat().st_size < 1_000_000
    cv2.imwrite(str(folder / "b_ok.png"), np.full((60, 60, 3), 90, np.uint8))
    decoded: list[int] = []
    imdecode = cv2.imdecode

    def counting_imdecode(data: np.ndarray, flags: int) -> np.ndarray | None:
        decoded.append(int(data.size))
        return imdecode(data, flags)

    monkeypatch.setattr(sources.cv2, "imdecode", counting_imdecode)
    code = main(["run", "--source", str(folder), "--headless", "--model", str(tiny_onnx)])
    captured = capsys.readouterr()
    assert code == 0
    assert f"warning: skipping image {bomb}: 30000x30000 is 900 megapixels, over the decode limit of 100" \
        in captured.err
    assert len(decoded) == 1  # only b_ok.png: the bomb never reached the decoder
    assert [json.loads(line)["source"] for line in captured.out.splitlines()] == [str(folder / "b_ok.png")]
    assert "1 unreadable or oversized images skipped" in captured.err


def test_image_size_reads_headers_of_the_common_formats(tmp_path: Path) -> None:
    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm"):
        ok, data = cv2.imencode(suffix, image[:, :, 0] if suffix == ".pgm" else image)
        assert ok
        assert sources.image_size(data.tobytes()) == (53, 37), suffix
    assert sources.image_size(b"not an image") is None


# ---------------------------------------------------------------- accurate messages


def test_dev_null_as_source_gets_an_accurate_message(tiny_onnx: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--source", "/dev/null", "--headless", "--model", str(tiny_onnx)])
    errors = _error_lines(capsys.readouterr().err)
    assert code == 2
    assert errors == ["edgefer run: error: /dev/null is a character device, not a video, image, folder "
                      "or camera (/dev/videoN)"]


def test_a_dev_video_path_is_a_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []

    def fake_camera(index: int, options: object = None) -> sources.Source:
        opened.append(index)
        return sources.Source()

    monkeypatch.setattr(sources, "open_camera", fake_camera)
    open_source("/dev/video7")
    assert opened == [7]


def test_a_truncated_video_says_it_ended_early(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "full.avi", 40, fourcc="MJPG")
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    warnings: list[str] = []
    with open_source(cut, warn=warnings.append) as src:
        n = sum(1 for _ in src)
    assert 0 < n < 40
    assert warnings == [f"{cut}: ended after {n} of the 40 frames its header states (truncated or damaged file?)"]
    with open_source(clip, warn=warnings.append) as src:
        assert sum(1 for _ in src) == 40
    assert len(warnings) == 1  # a complete file says nothing


def test_symlink_loops_are_warned_about(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((20, 20, 3), 90, np.uint8))
    (folder / "loop.png").symlink_to(folder / "loop.png")
    warnings: list[str] = []
    src = open_source(folder, warn=warnings.append)
    assert [Path(p).name for p in src.files] == ["a.png"]
    assert warnings == [f"skipping {folder / 'loop.png'}: a symbolic link loop"]
    with pytest.raises(SourceError, match="symbolic link loop"):
        open_source(folder / "loop.png")
