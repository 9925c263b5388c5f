"""The model being exported: a ``.keras`` file or a training run folder, with its run.json.

The run folder (written by ``edgefer train``) supplies the label order, the preprocessing
and the facts that go on the model card; a bare ``.keras`` file without run.json falls back
to the FER2013 labels and the default preprocessing, and says so.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import ModelError
from edgefer.runtime.labels import FER2013_LABELS
from edgefer.runtime.metadata import ModelInfo
from edgefer.runtime.preprocess import PreprocessSpec
from edgefer.train.runfolder import BEST, LAST, RunFolder, load_first, model_files
from edgefer.train.transfer import training_record

from .native_output import captured_native_output

# The model to export cannot be found or does not fit its metadata.
SourceError = ModelError


@dataclass
class SourceModel:
    model: Any  # keras.Model; typed loosely so this module imports without TensorFlow
    path: Path
    info: ModelInfo
    run: dict = field(default_factory=dict)  # run.json, empty when there is none

    @property
    def run_dir(self) -> Path | None:
        return self.path.parent if self.run else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Model input without the batch axis, in the preprocessing's layout."""
        spec = self.info.preprocess
        h, w = spec.size
        return (h, w, spec.channels) if spec.layout == "NHWC" else (spec.channels, h, w)

    @property
    def input_name(self) -> str:
        name = getattr(self.model.inputs[0], "name", "") or ""
        return name if name.isidentifier() else "input"


def resolve_model_path(path: str | Path) -> Path:
    """The checkpoint a run folder means (train/runfolder.py), or a .keras file itself."""
    p = Path(path)
    if p.is_dir():
        return RunFolder(p).model_file()
    if not p.is_file():
        raise SourceError(f"model not found: {p}")
    if p.suffix != ".keras":
        raise SourceError(f"{p}: expected a .keras model or a run folder, not '{p.suffix}'")
    return p


def default_stem(model_path: Path) -> str:
    """runs/report/best.keras -> 'report'; my_model.keras -> 'my_model'."""
    return model_path.parent.name if model_path.name in (BEST, LAST) else model_path.stem


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_card(path: Path, run: dict, model: Any) -> dict:
    """What the card says about the model itself, before any format-specific details."""
    cfg = run.get("config", {})
    card: dict = {
        "arch": cfg.get("arch") or getattr(model, "name", "unknown"),
        "params": int(run.get("params") or model.count_params()),
        "source": {"model": str(path), "sha256": _sha256(path)},
    }
    if run:
        card["source"]["run"] = str(path.parent)
        for key in ("train_data", "val_data"):
            if run.get(key):
                card[key] = run[key]
        # the whole recipe, so the card alone says how to retrain the model
        skip = {"data", "out", "resume", "limit", "preprocess"}
        card["training"] = {k: v for k, v in training_record(run).items() if k not in skip}
    # written by the run's report (`edgefer train`): the Keras model on its validation data
    metrics = RunFolder(path.parent).read_metrics() if run else None
    if metrics is not None:
        card["metrics"] = {"run-validation": metrics}
    return card


def load_source(path: str | Path) -> SourceModel:
    """The model ``path`` means: a .keras file, or the checkpoint of a run folder (runfolder.py:
    best.keras, else last.keras when best.keras is missing or does not load)."""
    candidates = model_files(path)
    if candidates[0].suffix != ".keras":
        resolve_model_path(candidates[0])  # the one-line error for a file of another kind
    run = RunFolder(candidates[0].parent).run_or_empty()

    with captured_native_output("importing Keras"):  # TensorFlow's start-up log lines
        import keras  # noqa: F401 - imported here so its start-up log lines are captured

        import edgefer.train.checkpoints  # noqa: F401 - its Keras imports log too

    from edgefer.train.checkpoints import load_inference_model

    # float32 even for a mixed_bfloat16 run; the optimizer state is irrelevant for export.
    model, model_path = load_first(path, load_inference_model)

    if run:
        labels = tuple(run.get("labels") or ())
        recorded = run.get("preprocess")
        spec = PreprocessSpec.from_dict(recorded) if recorded else PreprocessSpec()
    else:
        labels, spec = FER2013_LABELS, PreprocessSpec()
        print(
            f"warning: no run.json beside {model_path}: assuming FER2013 labels ({', '.join(labels)}) "
            "and the default preprocessing",
            file=sys.stderr,
        )
    info = ModelInfo(labels, spec, base_card(model_path, run, model))
    source = SourceModel(model=model, path=model_path, info=info, run=run)
    _check_fits(source)
    return source


def _check_fits(source: SourceModel) -> None:
    model = source.model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise SourceError(f"{source.path}: expected one input and one output, got {len(model.inputs)} and "
                          f"{len(model.outputs)}")
    got_in = tuple(model.inputs[0].shape[1:])
    if got_in != source.input_shape:
        raise SourceError(f"{source.path}: input shape {got_in} does not match the preprocessing "
                          f"{source.input_shape}")
    n_out = model.outputs[0].shape[-1]
    if n_out != len(source.info.labels):
        raise SourceError(f"{source.path}: {n_out} outputs but {len(source.info.labels)} labels")
