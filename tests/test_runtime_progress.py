"""Progress for file sources: on stderr only, a bar on a terminal, status lines otherwise."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from edgefer.models import MODELS_DIR
from edgefer.runtime.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_redrawn_bar() -> None:
    out = _Tty()
    p = Progress(10, "clip.mp4", stream=out)
    for done in range(1, 11):
        p.update(done)
    p.close()
    text = out.getvalue()
    assert text.startswith("\r\033[K[") and text.endswith("\n")
    assert "clip.mp4: 10/10 frames (100%)" in text and "ETA 0:00" in text


def test_a_log_gets_whole_lines() -> None:
    out = io.StringIO()
    p = Progress(4, stream=out, log_every_s=0.0)
    for done in range(1, 5):
        p.update(done)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("4/4 frames (100%)") and "\r" not in out.getvalue()
    assert len(lines) == 4


def test_progress_never_enters_the_json_lines_on_stdout() -> None:
    proc = subprocess.run([sys.executable, "-m", "edgefer.runtime.cli", "run", "--source",
                           str(MODELS_DIR / "sample_face.mp4"), "--headless"],
                          capture_output=True, text=True, timeout=120, check=True)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 60
