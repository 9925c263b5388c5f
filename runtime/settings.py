"""Detection settings: one definition that the CLI flags, the Python API and the help share.

Imports only the standard library, so ``edgefer --help`` stays instant.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

DETECTORS = ("blazeface", "blazeface-full", "haar", "mediapipe")
DEFAULT_DETECTOR = "blazeface"
OVERLAYS = ("full", "label", "none")  # per face: box + label + bars; box + label; nothing

# The shown label's rule (see tracking.py; values measured by scripts/label_stability.py)
DEFAULT_SMOOTH = 0.6  # EMA weight of the past
DEFAULT_HYSTERESIS = 1.0  # summed excess lead a new label needs before it is shown (0 = show the arg-max)
LEAD_MARGIN = 0.3  # a lead below this is a near-tie and adds no evidence
MAX_LAG = 8  # frames a class may lead the average in a row before it is shown regardless


def _flag(help_text: str, metavar: str, kind: type) -> Any:
    return field(default=None, metadata={"help": help_text, "metavar": metavar, "type": kind})


@dataclass(frozen=True)
class DetectorSettings:
    """What any detector is asked for. None = the detector's own default."""

    det_size: int | None = _flag(
        "the detector looks at the frame in windows of at most PX on the long side: haar shrinks the "
        "frame to PX (default 320); blazeface/blazeface-full cover a larger frame with overlapping PX "
        "tiles plus one whole-frame pass, so small faces in large frames are found (default: frames "
        "up to 1280 px are not tiled; larger ones get 640-px tiles with blazeface, 800-px with "
        "blazeface-full; 0 = never tile)",
        "PX", int,
    )
    min_face: int | None = _flag("ignore faces narrower than PX frame pixels (default: keep all)", "PX", int)
    min_score: float | None = _flag(
        "detection confidence threshold in [0, 1] (default: the model's own, blazeface 0.5, "
        "blazeface-full 0.6, mediapipe 0.5; haar scores are vote shares, default 0.5)", "S", float,
    )
    max_faces: int | None = _flag("keep at most N faces per frame, the most confident first", "N", int)

    def __post_init__(self) -> None:
        if self.det_size is not None and self.det_size != 0 and self.det_size < 32:
            raise ValueError(f"det_size must be 0 (no tiles) or at least 32 px, not {self.det_size}")
        if self.min_face is not None and self.min_face < 0:
            raise ValueError(f"min_face must be >= 0, not {self.min_face}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], not {self.min_score}")
        if self.max_faces is not None and self.max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, not {self.max_faces}")


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """``--detector`` plus one flag per DetectorSettings field (``det_size`` -> ``--det-size``)."""
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--detector", "-d", choices=DETECTORS, default=DEFAULT_DETECTOR,
        help="face detector: blazeface (MediaPipe BlazeFace short range on ONNX Runtime, faces within "
        "~2 m; the default), blazeface-full (full range, faces within ~5 m and crowds), haar (OpenCV "
        "cascade), mediapipe (the mediapipe package; pip install 'edgefer[mediapipe]')  (default: %(default)s)",
    )
    for f in fields(DetectorSettings):
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, type=f.metadata["type"], default=None,
            metavar=f.metadata["metavar"], help=f.metadata["help"],
        )


def detector_settings(values: dict[str, Any]) -> DetectorSettings:
    """The settings from a mapping with (at least) the fields' names, e.g. ``vars(args)``."""
    return DetectorSettings(**{f.name: values.get(f.name) for f in fields(DetectorSettings)})
