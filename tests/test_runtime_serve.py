"""The browser view's server on 127.0.0.1, fed by the bundled clip: MJPEG, SSE, token, limits."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from edgefer.models import MODELS_DIR
from edgefer.runtime.pipeline import FrameLoop, Recognizer
from edgefer.runtime.serve import (
    BOUNDARY,
    Hub,
    ServeConfig,
    Server,
    is_loopback,
    looped,
    paced_frames,
    publish_frames,
    with_token,
)
from edgefer.runtime.sources import open_source

CLIP = MODELS_DIR / "sample_face.mp4"
TOKEN = "test-token"


@dataclass
class Running:
    server: Server
    hub: Hub

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse()


@contextlib.contextmanager
def serving(**options: object) -> Iterator[Running]:
    config = ServeConfig(host="127.0.0.1", port=0, **options)  # type: ignore[arg-type]
    hub = Hub()
    stop = threading.Event()
    with Recognizer(threads=1) as rec:
        hub.model, hub.detector, hub.labels = "fer2013.onnx", rec.detector.name, rec.labels
        frames = paced_frames(FrameLoop(rec, looped(lambda: open_source(CLIP))), source_fps=30.0)
        worker = threading.Thread(target=publish_frames, args=(frames, hub, stop), daemon=True)
        server = Server(hub, config)
        http_thread = threading.Thread(target=server.serve_forever, daemon=True)
        worker.start()
        http_thread.start()
        try:
            yield Running(server, hub)
        finally:
            stop.set()
            server.shutdown()
            server.close()
            worker.join(10)


def read_mjpeg_parts(resp: http.client.HTTPResponse, n: int) -> list[tuple[dict[str, str], bytes]]:
    parts = []
    while len(parts) < n:
        line = resp.readline().strip()
        if not line:
            continue
        assert line == f"--{BOUNDARY}".encode(), line
        headers = {}
        while (h := resp.readline().strip()):
            k, v = h.decode().split(":", 1)
            headers[k.strip().lower()] = v.strip()
        body = resp.read(int(headers["content-length"]))
        parts.append((headers, body))
    return parts


def read_events(resp: http.client.HTTPResponse, n: int) -> list[dict]:
    events = []
    while len(events) < n:
        line = resp.readline().decode().strip()
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
    return events


def raw_frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def test_mjpeg_frames_decode_and_show_the_face_box() -> None:
    with serving(token=TOKEN) as s:
        resp = s.get(f"/stream.mjpg?token={TOKEN}")
        assert resp.status == 200
        assert resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        parts = read_mjpeg_parts(resp, 5)
        resp.close()
    for headers, body in parts:
        assert headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
    # The annotated frame differs from the raw clip frame along the detected face's box.
    headers, body = parts[-1]
    shown = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).astype(int)
    index = int(headers["x-edgefer-frame"])
    raw = raw_frame(index)
    with Recognizer(threads=1, track=False) as rec:
        faces = rec(raw).faces
    assert faces, "the clip shows a face on every frame"
    x, y, w, h = faces[0].box
    diff = np.abs(shown - raw.astype(int)).max(axis=2)
    # A 1-pixel line, JPEG-compressed: its colour bleeds, so look 3 pixels either side.
    left_edge = diff[y + h // 4: y + 3 * h // 4, max(x - 3, 0): x + 4].max(axis=1)
    assert (left_edge > 35).mean() > 0.9, "no box drawn along the face's left edge"
    assert np.median(diff[:, :]) < 30, "the rest of the frame should be the clip itself"


def test_events_carry_the_records_with_labels() -> None:
    with serving(token=TOKEN) as s:
        resp = s.get(f"/events?token={TOKEN}")
        assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
        events = read_events(resp, 5)
        resp.close()
        labels = set(s.hub.labels)
    frames = [e["frame"] for e in events]
    assert frames == sorted(frames) or min(frames) == 0  # newest first always; a loop restarts at 0
    for e in events:
        assert e["faces"], "the clip shows a face on every frame"
        face = e["faces"][0]
        assert face["label"] in labels and set(face["probabilities"]) == labels
        assert e["fps"] > 0 and "detect" in e["timings_ms"]


def test_token_is_required_and_accepted_three_ways() -> None:
    with serving(token=TOKEN) as s:
        assert s.get("/").status == 401
        assert s.get("/?token=wrong").status == 401
        assert s.get("/snapshot.jpg").status == 401
        ok = s.get(f"/?token={TOKEN}")
        assert ok.status == 200 and b"EventSource" in ok.read()
        assert s.get("/snapshot.jpg", {"X-Edgefer-Token": TOKEN}).status == 200
        assert s.get("/snapshot.jpg", {"Authorization": f"Bearer {TOKEN}"}).status == 200
        health = s.get("/health")  # health needs no token: it carries no image
        assert health.status == 200
        h = json.loads(health.read())
        assert h["status"] == "running" and h["frames"] > 0 and h["labels"] and h["detector"] == "blazeface"


def test_off_loopback_a_token_is_generated() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.20") and not is_loopback("")
    assert with_token(ServeConfig(host="127.0.0.1")).token is None
    generated = with_token(ServeConfig(host="0.0.0.0")).token
    assert generated and len(generated) >= 16
    assert with_token(ServeConfig(host="0.0.0.0", token="mine")).token == "mine"


def test_client_limit_answers_503() -> None:
    with serving(max_clients=2) as s:
        a, b = s.get("/stream.mjpg"), s.get("/events")
        assert a.status == 200 and b.status == 200
        extra = s.get("/stream.mjpg")
        assert extra.status == 503 and b"2 clients" in extra.read()
        assert json.loads(s.get("/health").read())["clients"] == 2


def test_a_stalled_client_slows_nobody() -> None:
    with serving() as s:
        stalled = socket.create_connection(("127.0.0.1", s.server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        time.sleep(1.0)  # long enough to fill its socket buffers at 30 frames/s
        before = s.hub.frames
        resp = s.get("/stream.mjpg")
        parts = read_mjpeg_parts(resp, 20)
        resp.close()
        assert len(parts) == 20
        assert s.hub.frames - before >= 15, "the pipeline stalled with the client"
        stalled.close()


def test_unknown_paths_and_long_requests_are_refused() -> None:
    with serving() as s:
        assert s.get("/etc/passwd").status == 404
        assert s.get("/../models/fer2013.onnx").status == 404
        assert s.get("/" + "a" * 5000).status == 414


def test_serve_cli_writes_outputs_while_serving_and_stops_on_sigterm(tmp_path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    jsonl, video = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgefer.runtime.cli", "serve", "--source", str(CLIP), "--port", "0",
         "--jsonl", str(jsonl), "--save", str(video)],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = ""
        while "serving" not in line:
            line = proc.stderr.readline()
            assert line, "edgefer serve exited before serving"
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))  # type: ignore[union-attr]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.time() + 30
        while time.time() < deadline:
            conn.request("GET", "/health")
            if json.loads(conn.getresponse().read())["frames"] >= 10:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 143
    finally:
        proc.kill()
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(records) >= 10 and all(r["faces"] for r in records)
    cap = cv2.VideoCapture(str(video))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    assert decoded == len(records)  # the video holds every frame the JSON Lines describe


def test_serve_refuses_a_save_that_is_not_a_video(tmp_path) -> None:
    from edgefer.runtime.cli import main

    assert main(["serve", "--source", str(CLIP), "--save", str(tmp_path / "frames")]) == 2
    assert main(["serve", "--source", str(CLIP), "--jsonl", str(CLIP)]) == 2  # an input of the run
