"""Where a run's frames go: every file output of ``edgefer run`` and ``edgefer serve``, in one place.

:class:`Outputs` opens the outputs an :class:`OutputSpec` names and writes each frame to all
of them, annotating the image once for every sink that wants pictures:

    spec = OutputSpec(jsonl="faces.jsonl", save="annotated.mp4", summary="report/")
    with Outputs(spec, recognizer.labels, source) as outputs:
        for frame, result in FrameLoop(recognizer, source):
            outputs.write(frame, result)

Opening is ordered so that a refusal destroys nothing: every path is checked against the
inputs first (no output may overwrite a source file), then the sinks that only create files
(video, images) are opened before the JSON Lines and CSV files, whose opening truncates
them. The summary is written however the loop ends, so Ctrl-C keeps what was seen so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from .outputs import (
    CsvWriter,
    ImageDirSink,
    ImageFileSink,
    JsonlWriter,
    VideoSink,
    check_outputs,
    frame_record,
    is_video_path,
    single_image_save,
)
from .pipeline import FrameResult
from .settings import OVERLAYS
from .sources import Frame

if TYPE_CHECKING:
    from .summary import RunSummary


@dataclass(frozen=True)
class OutputSpec:
    """The outputs of one run. ``jsonl`` may be ``"-"`` (stdout); ``save`` is a video file, an
    image folder, or (with a single photo as the source) one image file."""

    jsonl: str | None = None
    csv: str | None = None
    save: str | None = None
    summary: str | None = None  # a folder: tracks.json, tracks.csv and the emotions.png plot
    overlay: str = "full"  # per face: box + label + bars ("full"), box + label ("label"), nothing
    stats: bool = True  # the FPS and timing line on annotated frames

    def __post_init__(self) -> None:
        if self.overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {self.overlay!r}")


class Outputs:
    """The open outputs of one run (a context manager); :meth:`write` sends a frame to all of them."""

    def __init__(self, spec: OutputSpec, labels: Sequence[str], source, *, source_spec: str | None = None,
                 notice: Callable[[str], None] | None = None) -> None:
        """``source``: the opened source (its ``files``, ``folders`` and ``fps``); ``source_spec``:
        what the user named as the source (a single photo makes ``save`` one image)."""
        self.spec = spec
        self.labels = tuple(labels)
        self.source = source
        self.notice = notice
        save = spec.save
        self.save_file = save if save and single_image_save(save, source_spec) else None
        self.save_video = save if save and not self.save_file and is_video_path(save) else None
        self.save_dir = save if save and not self.save_video and not self.save_file else None
        self.jsonl: JsonlWriter | None = None
        self.table: CsvWriter | None = None
        self.video: VideoSink | None = None
        self.images: ImageDirSink | ImageFileSink | None = None
        self.summary: RunSummary | None = None
        self._stack = ExitStack()

    @property
    def annotates(self) -> bool:
        """Whether any open sink takes annotated images."""
        return self.video is not None or self.images is not None

    def check(self) -> None:
        """Refuse outputs that would overwrite an input or are not writable (before any is opened)."""
        spec = self.spec
        files = [p for p in (spec.jsonl, self.save_video, self.save_file, spec.csv) if p and p != "-"]
        folders = [d for d in (self.save_dir, spec.summary) if d]
        check_outputs(files, folders, self.source.files, self.source.folders)

    def __enter__(self) -> Outputs:
        self.check()
        spec = self.spec
        stack = self._stack
        try:
            if self.save_video:
                self.video = stack.enter_context(VideoSink(self.save_video, self.source.fps))
            if self.save_dir:
                self.images = stack.enter_context(ImageDirSink(self.save_dir))
            elif self.save_file:
                self.images = stack.enter_context(ImageFileSink(self.save_file))
            if spec.jsonl:
                self.jsonl = stack.enter_context(JsonlWriter(spec.jsonl))
            if spec.csv:
                self.table = CsvWriter(spec.csv, self.labels)
                stack.enter_context(self.table)
            if spec.summary:
                from .summary import RunSummary

                self.summary = RunSummary(self.labels, self.source.name)
                stack.callback(self._write_summary)
        except BaseException:
            stack.close()
            raise
        return self

    def _write_summary(self) -> None:
        assert self.summary is not None and self.spec.summary is not None
        written = self.summary.write(self.spec.summary)
        if self.notice:
            self.notice(f"summary: {', '.join(str(p) for p in written)}")

    def stdout_jsonl(self) -> None:
        """Start JSON Lines on stdout (a window that failed leaves no other record of the run)."""
        if self.jsonl is None:
            self.jsonl = self._stack.enter_context(JsonlWriter("-"))

    def write(self, frame: Frame, result: FrameResult, fps: float | None = None, *,
              image: bool = False) -> np.ndarray | None:
        """Send one frame to every output; returns the annotated image when a sink drew one or
        ``image`` asks for it (for a window), else None."""
        if self.jsonl or self.table or self.summary:
            record = frame_record(frame, result)
            if self.jsonl:
                self.jsonl.write(record)
            if self.table:
                self.table.write(record)
            if self.summary:
                self.summary.add(record)
        if not (image or self.annotates):
            return None
        from .drawing import annotate

        shown = annotate(frame.image, result.faces, fps, result.timings_ms, overlay=self.spec.overlay,
                         stats=self.spec.stats)
        if self.video:
            self.video.write(shown)
        if self.images:
            self.images.write(shown, frame)
        return shown

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.__exit__(exc_type, exc, tb)
