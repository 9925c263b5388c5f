"""Does serving cost the pipeline frames? `edgefer serve` under load, against headless.

    .venv/bin/python benchmarks/serve_load.py                 # the bundled clip, 300 frames per phase
    .venv/bin/python benchmarks/serve_load.py --source clip.mp4 --frames 600

Three phases in one process, same clip, same model and detector, the clip unpaced (as fast as
the pipeline goes):
1. headless: the frame loop alone, as ``edgefer run --headless`` runs it;
2. one stream client reading /stream.mjpg;
3. ten clients: eight MJPEG readers, one /events reader and one that connects and never reads.
Prints pipeline frames/s per phase, the ratios to headless, and the frames each client got.
Targets: phase 2 within 10% of headless; in phase 3 every reading client keeps receiving.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import threading
import time
from pathlib import Path

from edgefer.models import MODELS_DIR
from edgefer.runtime.pipeline import FrameLoop, Recognizer
from edgefer.runtime.serve import BOUNDARY, Hub, ServeConfig, Server, looped, paced_frames, publish_frames
from edgefer.runtime.sources import open_source


def frames(source: Path, n: int):
    it = looped(lambda: open_source(source))
    for _ in range(n):
        yield next(it)


def headless_fps(rec: Recognizer, source: Path, n: int) -> float:
    t0 = time.perf_counter()
    count = sum(1 for _ in FrameLoop(rec, frames(source, n)))
    return count / (time.perf_counter() - t0)


class Reader(threading.Thread):
    """Reads a stream until told to stop, counting MJPEG parts or SSE events."""

    def __init__(self, port: int, path: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.count, self.stop = port, path, 0, threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", self.path)
        resp = conn.getresponse()
        marker = f"--{BOUNDARY}".encode() if self.path.startswith("/stream") else b"data: "
        while not self.stop.is_set():
            line = resp.readline()
            if not line:
                return
            if line.startswith(marker):
                self.count += 1
        conn.close()


def served_fps(rec: Recognizer, source: Path, n: int, readers: int, sse: int, stalled: int) -> tuple[float, list[int]]:
    hub = Hub(labels=rec.labels)
    config = ServeConfig(port=0, max_clients=readers + sse + stalled + 1)
    server = Server(hub, config)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clients = [Reader(server.port, "/stream.mjpg") for _ in range(readers)]
    clients += [Reader(server.port, "/events") for _ in range(sse)]
    for c in clients:
        c.start()
    dead = []
    for _ in range(stalled):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        dead.append(s)
    while hub.clients < len(clients) + stalled:
        time.sleep(0.01)
    stop = threading.Event()
    t0 = time.perf_counter()
    publish_frames(paced_frames(FrameLoop(rec, frames(source, n))), hub, stop)
    fps = hub.frames / (time.perf_counter() - t0)
    for c in clients:
        c.stop.set()
    server.shutdown()
    server.close()
    for s in dead:
        s.close()
    return fps, [c.count for c in clients]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", type=Path, default=MODELS_DIR / "sample_face.mp4")
    p.add_argument("--frames", type=int, default=300, help="frames per phase (default 300)")
    args = p.parse_args()
    with Recognizer(threads=1) as rec:
        headless_fps(rec, args.source, 30)  # warm-up
        base = headless_fps(rec, args.source, args.frames)
        one, got_one = served_fps(rec, args.source, args.frames, readers=1, sse=0, stalled=0)
        ten, got_ten = served_fps(rec, args.source, args.frames, readers=8, sse=1, stalled=1)
    print(f"{args.source.name}, {args.frames} frames per phase, 1 thread")
    print("| phase | pipeline frames/s | vs headless | frames each reading client got |")
    print("|---|---:|---:|---|")
    print(f"| headless frame loop | {base:.1f} | 1.00x | - |")
    print(f"| serve, 1 MJPEG client | {one:.1f} | {one / base:.2f}x | {got_one} |")
    print(f"| serve, 8 MJPEG + 1 SSE + 1 stalled | {ten:.1f} | {ten / base:.2f}x | {got_ten} |")
    ok_one = one >= 0.9 * base
    ok_ten = all(c > 0 for c in got_ten)
    print(f"one client within 10% of headless: {'met' if ok_one else 'missed'} ({one / base:.2f}x); "
          f"every reading client of ten kept receiving: {'met' if ok_ten else 'missed'} (min {min(got_ten)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
