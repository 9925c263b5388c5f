"""Keep converter chatter (TensorFlow C++ logs, "Saved artifact at ..." prints) off the console.

Converters write straight to file descriptors 1 and 2, so redirecting ``sys.stdout`` is not
enough. The captured text is attached to the error if the conversion fails, where it helps.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

from edgefer.runtime.errors import ExportError

# A converter failed; the message ends with the tail of what it logged.
ConversionError = ExportError


@contextlib.contextmanager
def captured_native_output(what: str, tail_lines: int = 15) -> Iterator[None]:
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        except Exception as exc:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()[-tail_lines:]
            detail = "\n    ".join(lines)
            log_text = f"\n  converter log:\n    {detail}" if lines else ""
            raise ConversionError(f"{what} failed: {exc}{log_text}") from exc
        finally:
            for fd in saved:
                os.close(fd)
