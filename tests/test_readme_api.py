"""The README's Python API example runs as written, from any folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefer.runtime.pipeline import Recognizer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_api_example_runs_from_any_folder(tmp_path: Path) -> None:
    section = README.read_text().split("### Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "60 frames, 0 skipped"
    assert any(" happy " in line or " neutral " in line for line in lines)


def test_an_image_that_could_not_be_read_says_so() -> None:
    with Recognizer() as rec:
        with pytest.raises(ValueError, match="cannot read image"):
            rec(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="cannot read image"):
            rec(np.zeros((0, 0, 3), np.uint8))
