"""``edgefer serve``: watch a headless device's camera, faces and emotions from a browser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline import FrameResult
    from .sinks import Outputs
    from .sources import Frame

EPILOG = """\
endpoints:
  /              the page: annotated stream, live label bars, FPS, per-stage ms, emotion charts
  /stream.mjpg   annotated frames as MJPEG      /events   per-frame JSON records (Server-Sent Events)
  /snapshot.jpg  the latest annotated frame     /health   status, frames, fps, clients, model (JSON)

safety:
  binds to 127.0.0.1 unless --host says otherwise; on any other address every endpoint but
  /health needs the token (--token, or one generated and printed at start), given as
  ?token=..., an 'X-Edgefer-Token' header or 'Authorization: Bearer ...'. Traffic is plain
  HTTP: use it on a network you trust, or behind an SSH tunnel (ssh -L 8080:127.0.0.1:8080 pi).

examples:
  edgefer serve                                    camera 0 (or the sample clip), http://127.0.0.1:8080/
  edgefer serve --host 0.0.0.0 --port 8080         on the Pi; open the printed URL on a laptop
  edgefer serve --source clip.mp4 --loop           a file, replayed at its own frame rate
"""


def register(sub: argparse._SubParsersAction) -> None:
    from .run_cli import add_pipeline_arguments

    p = sub.add_parser(
        "serve",
        help="serve the annotated stream and live emotions to a browser (for headless devices)",
        description="Run the same pipeline as 'edgefer run' and serve it over HTTP: a page with the "
                    "annotated stream and live labels, MJPEG, Server-Sent Events, a snapshot and a health check.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    web = p.add_argument_group("server")
    web.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    web.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    web.add_argument("--token", default=None, help="access token (default: generated when --host is not loopback)")
    web.add_argument("--max-clients", type=int, default=8,
                     help="concurrent stream and event connections; more get 503 (default 8)")
    web.add_argument("--jpeg-quality", type=int, default=80, help="JPEG quality of the stream, 1-100 (default 80)")
    web.add_argument("--max-width", type=int, default=960,
                     help="wider frames are scaled down to this before encoding (default 960)")
    web.add_argument("--loop", action="store_true", help="replay a video file or image folder when it ends")
    web.add_argument("--jsonl", metavar="PATH", default=None, help="also write the JSON Lines records to PATH")
    web.add_argument("--save", metavar="VIDEO", default=None,
                     help="also write the annotated frames to a video (.mp4, .avi, .mkv, .mov, .m4v)")
    add_pipeline_arguments(p)
    p.set_defaults(func=run_serve)


def _notice(message: str) -> None:
    print(f"edgefer serve: {message}", file=sys.stderr, flush=True)


def _config(args: argparse.Namespace):  # -> ServeConfig
    from .errors import UsageError
    from .serve import ServeConfig, with_token

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: use 0-65535")
    if not 1 <= args.jpeg_quality <= 100:
        raise UsageError(f"--jpeg-quality {args.jpeg_quality}: use 1-100")
    if args.max_width < 64:
        raise UsageError(f"--max-width {args.max_width}: at least 64")
    if args.max_clients < 1:
        raise UsageError(f"--max-clients {args.max_clients}: at least 1")
    return with_token(ServeConfig(host=args.host, port=args.port, token=args.token, max_clients=args.max_clients,
                                  jpeg_quality=args.jpeg_quality, max_width=args.max_width,
                                  overlay=args.overlay, stats=not args.no_stats))


def _pace(source: object) -> float | None:
    """Frames per second to release frames at: a file at its own rate, images one per second;
    None for a camera or stream, which paces itself."""
    from .sources import CaptureSource

    if isinstance(source, CaptureSource):
        return None if source.live else (source.fps or 25.0)
    return 1.0


def _recorded(items: Iterable[tuple[Frame, FrameResult, float, int]],
              outputs: Outputs) -> Iterator[tuple[Frame, FrameResult, float, int]]:
    """Pass the frames through, writing each to the outputs first (in the pipeline thread)."""
    for frame, result, fps, dropped in items:
        outputs.write(frame, result, fps)
        yield frame, result, fps, dropped


def _save_problem(path: str) -> str | None:
    from .outputs import is_video_path, video_suffix_problem

    problem = video_suffix_problem(path)
    if problem:
        return problem
    return None if is_video_path(path) else f"{path}: serve saves one video file (.mp4, .avi, .mkv, .mov, .m4v)"


def run_serve(args: argparse.Namespace) -> int:
    import threading

    from .errors import UsageError
    from .pipeline import FrameLoop
    from .run_cli import _make_recognizer, _open_source
    from .serve import Hub, Server, looped, paced_frames, publish_frames
    from .sinks import Outputs, OutputSpec
    from .sources import open_source

    config = _config(args)
    if args.save and (problem := _save_problem(args.save)):
        raise UsageError(f"--save {problem}")
    recognizer = _make_recognizer(args)
    source = _open_source(args)
    outputs = Outputs(OutputSpec(jsonl=args.jsonl, save=args.save, overlay=config.overlay, stats=config.stats),
                      recognizer.labels, source)
    outputs.check()  # before the port is taken: a refused output leaves nothing half started
    model_path = getattr(recognizer.classifier, "path", None)
    hub = Hub(model=model_path.name if model_path else str(args.model), detector=recognizer.detector.name,
              labels=recognizer.labels)
    try:
        server = Server(hub, config)
    except OSError as exc:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    frames: Iterable[Frame] = source
    if args.loop and args.source is not None and not source.live:
        spec = args.source
        frames = looped(lambda: open_source(spec))
    stop = threading.Event()
    with recognizer, source, outputs:
        results = _recorded(paced_frames(FrameLoop(recognizer, frames), source_fps=_pace(source),
                                         dropped=lambda: source.dropped), outputs)
        worker = threading.Thread(target=publish_frames, args=(results, hub, stop), name="edgefer-pipeline",
                                  daemon=True)
        worker.start()
        _notice(f"serving {source.name} on {server.url('/')}  (Ctrl-C stops)")
        if config.needs_token():
            _notice("other machines: replace the address with this device's own (e.g. `hostname -I`); "
                    "the token is required")
        try:
            server.serve_forever()
        finally:
            stop.set()
            server.close()
            worker.join(5.0)
            health = hub.health()
            _notice(f"stopped: {health['frames']} frames served, source {health['status']}")
    return 0
