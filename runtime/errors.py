"""The one error hierarchy: every failure a user can fix is an :class:`EdgeferError`.

The CLI prints any of them as one line, ``edgefer COMMAND: error: MESSAGE``, and exits with
``code`` (2 unless a subclass says otherwise). Libraries raise the subclass that names what
went wrong, so a caller can catch a model problem apart from an output problem.
"""

from __future__ import annotations

EXIT_USAGE = 2


class EdgeferError(Exception):
    """A problem the user can fix, printed as one line; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class UsageError(EdgeferError):
    """A bad option or combination of options."""


class ModelError(EdgeferError):
    """A model file that is missing, unreadable, tampered with, or whose metadata does not fit its graph."""


class SourceError(EdgeferError):
    """An input (camera, video, image, stream, folder) that cannot be opened or read."""


class OutputError(EdgeferError):
    """An output that cannot be written, or that would overwrite an input or another run's output."""


class DataError(EdgeferError):
    """A dataset, CSV, teacher file or calibration set that is missing or malformed."""


class ExportError(EdgeferError):
    """A conversion that failed or whose artifact disagrees with its source."""
