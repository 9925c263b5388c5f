"""``edgefer run``: live emotion recognition on a camera, video, images or a stream.

Only argparse is imported at module level so that ``edgefer --help`` stays instant;
OpenCV, ONNX Runtime and the pipeline load when the command actually runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .settings import (
    DEFAULT_HYSTERESIS,
    DEFAULT_SMOOTH,
    LEAD_MARGIN,
    MAX_LAG,
    OVERLAYS,
    add_detector_arguments,
    detector_settings,
)

EPILOG = """\
sources:
  0, 1, ...            camera index (default 0; with no camera and no --source,
                       the bundled sample clip plays instead)
  clip.mp4             a video file (every frame is processed, none dropped)
  photo.jpg            one image;  photos/  a folder;  'photos/*.jpg'  a glob
  rtsp://host/stream   any URL OpenCV opens (live: only the newest frame is used)

outputs:
  a window (default; q or Esc quits), or --headless: JSON Lines on stdout, one
  line per frame: {"frame", "timestamp", "source", "faces": [{"box": [x, y, w, h],
  "score", "label", "probabilities": {label: p}, "track_id", "keypoints":
  {"right_eye": [x, y], "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
  "left_ear_tragion"} (BlazeFace and mediapipe only)}], "timings_ms"}.
  --jsonl FILE writes them to a file instead; --save writes annotated output.

examples:
  edgefer run                                   camera 0 in a window
  edgefer run --source 0 --width 640 --height 480 --fps 30 --fourcc MJPG
  edgefer run --source clip.mp4 --headless --jsonl out.jsonl --save out.mp4
  edgefer run --source photos/ --headless --save annotated/
  edgefer run --detector blazeface-full --source crowd.mp4   small, distant faces (tiles on large frames)
  edgefer run --detector haar --det-size 640 --min-face 40
  edgefer run --detector mediapipe --model models/fer2013-full-int8.tflite
  edgefer run --model ferplus                   the FER+ model (8 emotions incl. contempt)
  edgefer run --smooth 0 --max-frames 100 --headless > raw.jsonl
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run face detection + emotion recognition on a camera, video, images or a stream",
        description=(
            "Detect faces, classify each face's emotion with an edgefer model (ONNX Runtime\n"
            "or LiteRT, no TensorFlow), track faces across frames and smooth their probabilities."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_pipeline_arguments(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--headless", action="store_true", help="no window; JSON Lines to stdout unless --jsonl")
    out.add_argument("--jsonl", metavar="PATH", default=None, help="write JSON Lines to PATH ('-' for stdout)")
    out.add_argument(
        "--save", metavar="PATH", default=None,
        help="write annotated output: a video (.mp4, .avi, .mkv, .mov, .m4v) or a folder of images "
        "(a name without a suffix, or an existing folder); never an input or a source folder",
    )
    out.add_argument("--csv", metavar="PATH", default=None,
                     help="one CSV row per face per frame: frame, timestamp, track id, box, score, label "
                     "and every class probability")
    out.add_argument("--summary", metavar="DIR", default=None,
                     help="when the run ends (Ctrl-C too): DIR/tracks.csv and tracks.json (per face: when "
                     "seen, dominant emotion, share of time in each) and DIR/emotions.png (each face's "
                     "emotions over time)")
    out.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress on stderr for files and folders (a bar on a terminal, else a line every 5 s)")
    p.set_defaults(func=run)


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """Source, model, detector, smoothing and camera flags: one definition for run and serve."""
    p.add_argument(
        "--source", "-s", default=None, help="camera index, video, image, folder, glob or URL (default: 0)"
    )
    p.add_argument(
        "--model", "-m", default=None,
        help="edgefer .onnx or .tflite file, or a bundled model's name: fer2013 (default), fer2013-int8, "
        "ferplus (FER+ labels, 8 emotions incl. contempt), ...; `edgefer models` lists them"
    )
    p.add_argument("--threads", type=int, default=1, help="threads for the classifier and BlazeFace (default: 1)")
    p.add_argument("--flip-tta", action="store_true",
                   help="also classify each face's mirror image and average (about 2x classification time)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the model file's sha256 check (for a model you edited on purpose)")
    p.add_argument(
        "--smooth", type=float, default=None, metavar="W",
        help="temporal smoothing: weight of the past in a per-face moving average, "
        f"0 = off, 0.9 = very steady (default: {DEFAULT_SMOOTH:g})",
    )
    p.add_argument(
        "--hysteresis", type=float, default=None, metavar="H",
        help=f"a new label replaces a face's shown label once its lead over it, less {LEAD_MARGIN:g} a "
        f"frame, sums to H (or once it has led {MAX_LAG} frames in a row): near-ties and one-frame jumps "
        "stay off the screen, a clear change shows in about 5 frames; 0 = show the arg-max of the "
        f"smoothed probabilities (default: {DEFAULT_HYSTERESIS}; `scripts/label_stability.py` "
        "measures the trade-off)",
    )
    p.add_argument(
        "--max-megapixels", type=float, default=100.0, metavar="MP",
        help="skip images larger than this, read from the file's header before decoding: "
        "a small file can decode to gigabytes (default: 100; 0 = no limit)",
    )
    add_detector_arguments(p)
    p.add_argument(
        "--align", choices=("model", "on", "off"), default="model",
        help="turn each face crop so its eyes are level (needs detector keypoints: blazeface, "
        "blazeface-full, mediapipe): as the model's metadata asks, on or off  (default: model)",
    )
    view = p.add_argument_group("what annotated frames show")
    view.add_argument("--overlay", choices=OVERLAYS, default="full",
                      help="per face: box, label and confidence bars (full), box and label, or nothing "
                      "(labels and panels are placed where they cover no other face; default: full)")
    view.add_argument("--no-stats", action="store_true", help="leave out the FPS and per-stage ms band")
    cam = p.add_argument_group("camera options")
    cam.add_argument("--width", type=int, default=None, help="requested capture width, e.g. 640")
    cam.add_argument("--height", type=int, default=None, help="requested capture height, e.g. 480")
    cam.add_argument("--fps", type=float, default=None, help="requested capture frame rate, e.g. 30")
    cam.add_argument(
        "--fourcc", default=None, metavar="CODE",
        help="capture pixel format, e.g. MJPG (USB webcams often need it for 30 fps at 640x480)",
    )


def _notice(message: str) -> None:
    print(f"edgefer run: {message}", file=sys.stderr)


def has_display() -> bool:
    """False where a window cannot open (Linux without X11/Wayland, e.g. SSH or a service)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def _open_source(args: argparse.Namespace):
    from edgefer.models import MODELS_DIR

    from .cli import CommandError
    from .sources import CameraOptions, SourceError, open_source

    camera = CameraOptions(args.width, args.height, args.fps, args.fourcc)
    max_pixels = round(args.max_megapixels * 1e6) or None
    if args.source is not None:
        try:
            return open_source(args.source, camera, max_pixels=max_pixels)
        except SourceError as exc:
            raise CommandError(str(exc)) from exc
    try:
        return open_source(0, camera)
    except SourceError as exc:
        sample = MODELS_DIR / "sample_face.mp4"
        if not sample.is_file():
            raise CommandError(str(exc)) from exc
        _notice(f"{exc}; playing the bundled sample clip {sample.name} instead (use --source to choose)")
        return open_source(sample)


def _make_recognizer(args: argparse.Namespace):
    from .cli import CommandError
    from .detectors import DetectorError
    from .metadata import ModelError
    from .pipeline import Recognizer

    smooth = DEFAULT_SMOOTH if args.smooth is None else args.smooth
    if not 0.0 <= smooth < 1.0:
        raise CommandError(f"--smooth must be in [0, 1), got {smooth}")
    if args.hysteresis is not None and not 0.0 <= args.hysteresis <= 50.0:
        raise CommandError(f"--hysteresis must be in [0, 50], got {args.hysteresis}")
    try:
        detection = detector_settings(vars(args))
    except ValueError as exc:
        raise CommandError(f"--{str(exc).replace('_', '-', 1)}") from exc
    align = {"model": None, "on": True, "off": False}[args.align]
    try:
        model = args.model
        if getattr(args, "no_verify", False):  # loaded here: the Recognizer would check the hash
            from edgefer.models import default_model, resolve

            from .classifiers import load_classifier

            model = load_classifier(default_model() if model is None else resolve(model), threads=args.threads,
                                    flip_tta=args.flip_tta, verify=False)
        return Recognizer(model=model, detector=args.detector, threads=args.threads, smooth=smooth,
                          hysteresis=DEFAULT_HYSTERESIS if args.hysteresis is None else args.hysteresis,
                          flip_tta=args.flip_tta, detection=detection, align=align)
    except (ModelError, DetectorError) as exc:
        raise CommandError(str(exc)) from exc


class _Stats:
    """Running means for the closing summary and the on-screen FPS."""

    def __init__(self) -> None:
        self.frames = 0
        self.with_faces = 0
        self.sums: dict[str, float] = {}
        self.loop_ms = 0.0
        self.fps: float | None = None

    def add(self, timings: dict[str, float], n_faces: int, loop_ms: float) -> None:
        self.frames += 1
        self.with_faces += n_faces > 0
        for k, v in timings.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.loop_ms += loop_ms
        inst = 1000.0 / loop_ms if loop_ms > 0 else 0.0
        self.fps = inst if self.fps is None else 0.9 * self.fps + 0.1 * inst

    def summary(self, detector: str, dropped: int, failed: int = 0, unreadable: int = 0) -> str:
        n = max(1, self.frames)
        stages = ", ".join(f"{k} {v / n:.2f}" for k, v in self.sums.items())
        return (
            f"{self.frames} frames, {self.with_faces} with faces; detector {detector}; "
            f"mean ms per frame: {stages}; end-to-end {self.loop_ms / n:.2f} ms "
            f"({1000.0 * n / self.loop_ms if self.loop_ms else 0:.1f} FPS)"
            + (f"; {dropped} camera frames dropped to stay live" if dropped else "")
            + (f"; {failed} frames skipped after errors" if failed else "")
            + (f"; {unreadable} unreadable or oversized images skipped" if unreadable else "")
        )


def run(args: argparse.Namespace) -> int:
    from .cli import CommandError
    from .outputs import single_image_save, video_suffix_problem

    if args.max_frames is not None and args.max_frames < 1:
        raise CommandError("--max-frames must be at least 1")
    if args.max_megapixels < 0:
        raise CommandError("--max-megapixels must be at least 0 (0 = no limit)")
    if args.save and not single_image_save(args.save, args.source) and (problem := video_suffix_problem(args.save)):
        raise CommandError(f"--save {problem}")
    headless = args.headless
    if not headless and not has_display():
        _notice("no display ($DISPLAY is not set); running headless, JSON Lines to stdout")
        headless = True
    recognizer = _make_recognizer(args)
    source = _open_source(args)

    with recognizer, source:
        return _loop(args, recognizer, source, headless)


def _loop(args: argparse.Namespace, recognizer, source, headless: bool) -> int:
    from contextlib import ExitStack

    import cv2

    from .cli import CommandError
    from .pipeline import FrameLoop
    from .progress import Progress
    from .sinks import Outputs, OutputSpec

    stats = _Stats()
    window = None if headless else "edgefer"
    spec = OutputSpec(jsonl=args.jsonl if args.jsonl is not None else ("-" if headless else None), csv=args.csv,
                      save=args.save, summary=args.summary, overlay=args.overlay, stats=not args.no_stats)
    frames = FrameLoop(recognizer, source)
    with Outputs(spec, recognizer.labels, source, source_spec=args.source, notice=_notice) as outputs, \
            ExitStack() as stack:
        if window:
            stack.callback(cv2.destroyAllWindows)
        total = min(source.total or 0, args.max_frames or source.total or 0)
        progress = Progress(total, source.name.rsplit("/", 1)[-1]) if total > 1 and not args.no_progress else None
        if progress:
            stack.callback(progress.close)
        t_prev = time.perf_counter()
        for frame, result in frames:
            shown = outputs.write(frame, result, stats.fps, image=window is not None)
            if window and shown is not None:
                state = _show(window, shown, wait_ms=0 if frame.new_scene else 1)
                if state == "quit":
                    break
                if state == "failed":
                    window = None
                    outputs.stdout_jsonl()
            t_now = time.perf_counter()
            stats.add(result.timings_ms, len(result.faces), (t_now - t_prev) * 1e3)
            t_prev = t_now
            if progress:
                progress.update(stats.frames + frames.skipped)
            if args.max_frames and stats.frames >= args.max_frames:
                break
    if stats.frames == 0:
        raise CommandError(f"no readable frames in {source.name}", code=1)
    _notice(stats.summary(recognizer.detector.name, source.dropped, frames.skipped, source.unreadable))
    return 0


def _show(window: str, image, wait_ms: int) -> str:
    """Show a frame: "ok", "quit" (q or Esc) or "failed" (no GUI in this OpenCV build)."""
    import cv2

    try:
        cv2.imshow(window, image)
        key = cv2.waitKey(wait_ms) & 0xFF
    except cv2.error as exc:  # e.g. opencv-python-headless: no GUI support compiled in
        _notice(f"cannot open a window ({str(exc).strip().splitlines()[-1]}); continuing headless")
        return "failed"
    return "quit" if key in (ord("q"), 27) else "ok"
