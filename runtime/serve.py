"""A browser view for headless devices: the annotated stream, live labels and a health check.

Standard library only (``http.server.ThreadingHTTPServer``): one thread per connection, so a
stalled client blocks only its own thread. One pipeline thread reads the source, runs the
recognizer and publishes each result to a :class:`Hub`; every client waits for the *newest*
frame and skips whatever it was too slow to take, so no client can slow the pipeline or
another client. Drawing and JPEG encoding happen once per frame that some client takes,
in the clients' threads (OpenCV releases the GIL while it works).

Endpoints: ``/`` (the page, package data, no external assets), ``/stream.mjpg`` (MJPEG),
``/events`` (Server-Sent Events: the JSON Lines records), ``/snapshot.jpg``, ``/health``.
Off loopback, every endpoint but ``/health`` needs the token.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from .drawing import annotate
from .outputs import frame_record

if TYPE_CHECKING:
    from .pipeline import FrameResult
    from .sources import Frame, Source

BOUNDARY = "edgeferframe"
MAX_REQUEST_LINE = 2048  # bytes: the page's own URLs are short; anything longer is refused
CLIENT_SEND_TIMEOUT_S = 10.0  # a client that takes nothing for this long is dropped


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required off loopback; generated when not given
    max_clients: int = 8  # concurrent /stream.mjpg and /events connections
    jpeg_quality: int = 80
    max_width: int = 960  # frames wider than this are scaled down before encoding
    overlay: str = "full"  # drawing.OVERLAYS
    stats: bool = True

    def needs_token(self) -> bool:
        return not is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def with_token(config: ServeConfig) -> ServeConfig:
    """The config with a generated token where one is needed and none was given."""
    if config.needs_token() and not config.token:
        from dataclasses import replace

        return replace(config, token=secrets.token_urlsafe(16))
    return config


class Published:
    """One frame as the pipeline left it. Its JPEG is drawn and encoded on first request,
    in the requesting client's thread and once for all clients: the pipeline thread never
    pays for drawing or encoding, and with no stream client nothing is encoded at all."""

    def __init__(self, seq: int, record: dict, image: np.ndarray, result: FrameResult, fps: float) -> None:
        self.seq, self.record, self.image, self.result, self.fps = seq, record, image, result, fps
        self._jpeg: bytes | None = None
        self._lock = threading.Lock()

    def jpeg(self, config: ServeConfig) -> bytes:
        with self._lock:
            if self._jpeg is None:
                shown = annotate(self.image, self.result.faces, self.fps, self.result.timings_ms,
                                 overlay=config.overlay, stats=config.stats)
                self._jpeg = encode_jpeg(shown, config.jpeg_quality, config.max_width)
            return self._jpeg


@dataclass
class Hub:
    """The newest annotated frame and its record, plus what /health reports."""

    model: str = ""
    detector: str = ""
    labels: tuple[str, ...] = ()
    started: float = field(default_factory=time.time)
    status: str = "starting"  # starting, running, ended (the source ran out), error: ...
    frames: int = 0
    fps: float = 0.0
    dropped: int = 0
    clients: int = 0
    _latest: Published | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, frame: Frame, result: FrameResult, fps: float, dropped: int) -> None:
        record = frame_record(frame, result)
        record["fps"] = round(fps, 2)
        with self._cond:
            self.frames += 1
            self.fps, self.dropped, self.status = fps, dropped, "running"
            seq = self._latest.seq + 1 if self._latest else 1
            self._latest = Published(seq, record, frame.image, result, fps)
            self._cond.notify_all()

    def finish(self, status: str) -> None:
        with self._cond:
            self.status = status
            self._cond.notify_all()

    def latest(self) -> Published | None:
        with self._cond:
            return self._latest

    def wait_newer(self, seq: int, timeout: float) -> Published | None:
        """The newest frame after ``seq``, or None on timeout or once the source has ended."""
        with self._cond:
            self._cond.wait_for(lambda: (self._latest is not None and self._latest.seq > seq)
                                or self.status not in ("starting", "running"), timeout)
            if self._latest is not None and self._latest.seq > seq:
                return self._latest
            return None

    def try_join(self, limit: int) -> bool:
        with self._cond:
            if self.clients >= limit:
                return False
            self.clients += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self.clients -= 1

    def health(self) -> dict:
        with self._cond:
            return {
                "status": self.status, "uptime_s": round(time.time() - self.started, 1),
                "frames": self.frames, "fps": round(self.fps, 2), "dropped_frames": self.dropped,
                "clients": self.clients, "model": self.model, "detector": self.detector,
                "labels": list(self.labels),
            }


def encode_jpeg(image: np.ndarray, quality: int, max_width: int) -> bytes:
    h, w = image.shape[:2]
    if w > max_width:
        image = cv2.resize(image, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def publish_frames(frames: Iterable[tuple[Frame, FrameResult, float, int]], hub: Hub, stop: threading.Event) -> None:
    """Drain ``(frame, result, fps, dropped)`` tuples into the hub until ``stop`` or the end of
    the source; the hub's status then says which."""
    try:
        for frame, result, fps, dropped in frames:
            hub.publish(frame, result, fps, dropped)
            if stop.is_set():
                break
        hub.finish("stopped" if stop.is_set() else "ended")
    except Exception as exc:  # shown on the page and in /health instead of dying silently
        hub.finish(f"error: {type(exc).__name__}: {exc}")


def paced_frames(results: Iterable[tuple[Frame, FrameResult]], source_fps: float | None = None,
                 dropped: Callable[[], int] = lambda: 0) -> Iterator[tuple[Frame, FrameResult, float, int]]:
    """Each result with the measured frame rate and the source's dropped-frame count.

    With ``source_fps`` (a video file), frames are released no faster than the clip's own
    rate, so a file plays in the page like the camera it stands in for."""
    fps = 0.0
    t_prev = t_start = time.perf_counter()
    for i, (frame, result) in enumerate(results):
        if source_fps:
            wait = t_start + i / source_fps - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        now = time.perf_counter()
        if now > t_prev:
            fps = 1.0 / (now - t_prev) if fps == 0.0 else 0.9 * fps + 0.1 / (now - t_prev)
        t_prev = now
        yield frame, result, fps, dropped()


def looped(open_frames: Callable[[], Source]) -> Iterator[Frame]:
    """A file source played again and again (a demo that keeps the page alive)."""
    while True:
        n = 0
        with open_frames() as source:
            for frame in source:
                n += 1
                yield frame
        if n == 0:
            return


def page() -> bytes:
    return resources.files("edgefer.runtime").joinpath("web/index.html").read_bytes()


NO_STORE = {"Cache-Control": "no-store"}
PAGE_POLICY = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                          "script-src 'self' 'unsafe-inline'; img-src 'self'"}


class _Handler(BaseHTTPRequestHandler):
    """One HTTP connection; ``Server`` binds ``hub`` and ``config`` in a subclass (``bound``)."""

    hub: Hub
    config: ServeConfig
    raw_requestline: bytes  # set by BaseHTTPRequestHandler.handle_one_request
    server_version = "edgefer"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    @classmethod
    def bound(cls, hub: Hub, config: ServeConfig) -> type[_Handler]:
        return type("Handler", (cls,), {"hub": hub, "config": config})

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the run prints its own summary
        pass

    def parse_request(self) -> bool:
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command = "", "HTTP/1.0", "GET"
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return False
        return super().parse_request()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        routes: dict[str, Callable[[], None]] = {
            "/": self._page, "/index.html": self._page, "/stream.mjpg": self._stream,
            "/events": self._events, "/snapshot.jpg": self._snapshot, "/health": self._health,
        }
        route = routes.get(url.path)
        if route is None:
            self._plain(HTTPStatus.NOT_FOUND, "not found")
            return
        if url.path != "/health" and not self._authorised(url.query):
            self._plain(HTTPStatus.UNAUTHORIZED, "a valid token is needed: open the URL edgefer serve printed")
            return
        self.connection.settimeout(CLIENT_SEND_TIMEOUT_S)
        route()

    def _authorised(self, query: str) -> bool:
        token = self.config.token
        if not token:
            return True
        given = parse_qs(query).get("token", [""])[0] or self.headers.get("X-Edgefer-Token", "")
        bearer = self.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            given = given or bearer[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _plain(self, status: HTTPStatus, text: str, body_type: str = "text/plain; charset=utf-8") -> None:
        self._send(status, text.encode(), body_type, NO_STORE)

    def _page(self) -> None:
        self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8", PAGE_POLICY)

    def _health(self) -> None:
        self._plain(HTTPStatus.OK, json.dumps(self.hub.health()), "application/json")

    def _snapshot(self) -> None:
        latest = self.hub.latest() or self.hub.wait_newer(0, 5.0)
        if latest is None:
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, f"no frame yet (source {self.hub.status})")
            return
        self._send(HTTPStatus.OK, latest.jpeg(self.config), "image/jpeg", NO_STORE)

    def _client_stream(self, content_type: str, send: Callable[[Published], None]) -> None:
        hub = self.hub
        if not hub.try_join(self.config.max_clients):
            self._plain(HTTPStatus.SERVICE_UNAVAILABLE, f"{self.config.max_clients} clients already connected")
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            seq = 0
            while True:
                latest = hub.wait_newer(seq, 1.0)
                if latest is None:
                    if hub.status in ("starting", "running"):
                        continue
                    self._send_status()
                    return
                seq = latest.seq
                send(latest)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            return  # the client went away or stopped reading: only its own thread ends
        finally:
            hub.leave()

    def _send_status(self) -> None:
        if self.path.startswith("/events"):
            self.wfile.write(f"event: status\ndata: {json.dumps(self.hub.health())}\n\n".encode())
            self.wfile.flush()

    def _stream(self) -> None:
        def send(p: Published) -> None:
            jpeg = p.jpeg(self.config)
            head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                    f"X-Edgefer-Frame: {p.record.get('frame', '')}\r\n\r\n")
            self.wfile.write(head.encode() + jpeg + b"\r\n")
            self.wfile.flush()

        self._client_stream(f"multipart/x-mixed-replace; boundary={BOUNDARY}", send)

    def _events(self) -> None:
        def send(p: Published) -> None:
            self.wfile.write(f"data: {json.dumps(p.record)}\n\n".encode())
            self.wfile.flush()

        self._client_stream("text/event-stream", send)


class Server:
    """The HTTP server; ``serve_forever`` in the caller's thread, ``shutdown`` from another."""

    def __init__(self, hub: Hub, config: ServeConfig) -> None:
        self.config = config
        self.httpd = ThreadingHTTPServer((config.host, config.port), _Handler.bound(hub, config))
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        query = f"?token={self.config.token}" if self.config.token else ""
        return f"http://{host}:{self.port}{path}{query}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self.httpd.shutdown()

    def close(self) -> None:
        self.httpd.server_close()
