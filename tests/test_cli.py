"""`edgefer --help` is instant: every command registers without importing anything heavy."""

from __future__ import annotations

import json
import subprocess
import sys


def test_help_lists_every_command_and_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from edgefer.runtime.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = main([])\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnx', 'onnxruntime', 'cv2', 'matplotlib')\n"
        "               if m in sys.modules)\n"
        "print(json.dumps({'rc': rc, 'help': buf.getvalue(), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], report["heavy"]
    assert report["rc"] == 2  # no command: help, and a usage exit code
    for command in ("run", "models", "bench", "train", "eval", "inspect", "export"):
        assert f"    {command} " in report["help"], command
    assert "warning" not in out.stderr
