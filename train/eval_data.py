"""Which images `edgefer eval` and `edgefer inspect` score a model on, and what to call them.

A run folder is scored on the validation data its run.json records: FER2013 (or FER+)
PublicTest, or for CK+ the validation side of the same split (kind, fraction, seed) the trainer
drew, through the same function, so never an image the run trained on. An exported model is
scored on the dataset its card's "training" section names. Data options given on the command
line override the record one by one; a dataset other than the recorded one sets the record
aside. With neither, FER2013 PublicTest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.errors import DataError, UsageError
from edgefer.runtime.metric_keys import metric_key

from .config import CKPLUS_DEFAULT, DATA_KEYS, DEFAULT_DATA_OF, CkplusSplit
from .data import Dataset, ckplus_train_val, load_ckplus, load_fer2013, load_ferplus, pixel_duplicates
from .runfolder import RunFolder

CKPLUS_SPLITS = ("random", "subject", "all")  # all: every CK+ image, for a model that never trained on CK+
RUN, CARD = "as the run recorded", "as the model card records"


@dataclass(frozen=True)
class Recorded:
    """The data settings a model trained with, and where they were read."""

    settings: dict[str, Any]
    origin: str  # RUN or CARD


@dataclass(frozen=True)
class EvalData:
    """The images to score on: a dataset, its location and which part of it."""

    dataset: str = "fer2013"
    data: str = DEFAULT_DATA_OF["fer2013"]
    split: str = "test"  # fer2013 / ferplus: train | test (PublicTest); ckplus: random | subject | all
    seed: int = CKPLUS_DEFAULT.seed  # of the CK+ split
    val_fraction: float = CKPLUS_DEFAULT.val_fraction  # of the CK+ split
    origin: str = "by default (nothing recorded or given)"
    warning: str = ""  # why these may not be the model's own validation images

    def images(self) -> tuple:
        """What decides the images (not where they lie): two equal tuples mean the same images."""
        return self.dataset, self.split, self.seed, self.val_fraction

    def title(self) -> str:
        if self.dataset == "ckplus":
            if self.split == "all":
                return "CK+, every image"
            return f"CK+ validation split (seed {self.seed}, {self.val_fraction:.0%}, {self.split})"
        name = "FER+ (majority labels)" if self.dataset == "ferplus" else "FER2013"
        return f"{name} PublicTest" if self.split in ("test", "val") else f"{name} {self.split} split"

    def key(self) -> str:
        """The name the metrics are recorded under in a model card."""
        if self.dataset != "ckplus":
            return metric_key(self.dataset, self.split)
        if self.split == "all":
            return "ckplus-all"
        tail = "" if self.val_fraction == CKPLUS_DEFAULT.val_fraction else f"-val{round(100 * self.val_fraction)}"
        return f"ckplus-{self.split}-seed{self.seed}{tail}"

    def line(self, n: int) -> str:
        """What a command prints before scoring."""
        return f"scoring on {self.title()}: {n} images, {self.origin}"


def recorded_of(model_path: Path, card: Mapping[str, Any]) -> Recorded | None:
    """What a model trained on: its run folder's run.json, else the "training" section of its card."""
    run = RunFolder.of_model(model_path)
    if run is not None:
        return Recorded(run.data_settings(), RUN)
    training = card.get("training")
    if isinstance(training, dict) and training.get("dataset"):
        return Recorded({k: training[k] for k in DATA_KEYS if k in training}, CARD)
    return None


def choose_eval_data(given: Mapping[str, Any], recorded: Recorded | None) -> EvalData:
    """The images to score on: the settings ``given`` (None counts as not given) over the record.

    A warning is set when the result is not what the record alone would pick: those images
    may include ones the model trained on.
    """
    given = {k: v for k, v in given.items() if v is not None}
    unknown = set(given) - set(DATA_KEYS)
    if unknown:
        raise ValueError(f"not data settings: {', '.join(sorted(unknown))}")
    spec = _apply(given, recorded)
    if recorded is not None and spec.dataset == recorded.settings.get("dataset", "fer2013"):
        own = _apply({k: v for k, v in given.items() if k == "data"}, recorded)
        if own.images() != spec.images():
            spec = replace(spec, warning=f"not the model's validation data ({own.title()}, {recorded.origin}): "
                                         "these images may include ones it trained on")
    return spec


def _apply(given: Mapping[str, Any], recorded: Recorded | None) -> EvalData:
    dataset = given.get("dataset") or (recorded.settings.get("dataset") if recorded else None) or "fer2013"
    record: dict[str, Any] = {}
    if recorded is not None and recorded.settings.get("dataset", "fer2013") == dataset:
        record = dict(recorded.settings)
        if dataset != "ckplus":
            record.pop("split", None)  # a FER2013 run records the (unused) CK+ split; it validates on PublicTest
    settings = {**record, **given}
    split = str(settings.get("split") or ("all" if dataset == "ckplus" else "test"))
    if dataset == "ckplus" and split not in CKPLUS_SPLITS:
        raise UsageError(f"--split {split}: CK+ splits are {', '.join(CKPLUS_SPLITS)}")
    spec = EvalData(
        dataset=dataset, data=str(settings.get("data") or DEFAULT_DATA_OF[dataset]), split=split,
        origin=_origin(given, recorded if record else None),
    )
    if dataset == "ckplus" and split != "all":  # seed and fraction draw only the CK+ split
        drawn = CkplusSplit.of(settings)
        spec = replace(spec, seed=drawn.seed, val_fraction=drawn.val_fraction)
    return spec


def _origin(given: Mapping[str, Any], recorded: Recorded | None) -> str:
    flags = ", ".join("--" + k.replace("_", "-") for k in given)
    if recorded is None:
        return f"as given ({flags})" if given else "by default (nothing recorded or given)"
    return f"{recorded.origin}, with {flags} as given" if given else recorded.origin


def load_eval_data(spec: EvalData, size: tuple[int, int] = (48, 48),
                   exclude_train_duplicates: bool = False) -> tuple[Dataset, str]:
    """The images ``spec`` names at ``size``, and the key their metrics are recorded under."""
    if not Path(spec.data).exists():
        raise DataError(f"{spec.data}: not found (the {spec.title()} images, {spec.origin}); "
                        "pass --data to say where they are")
    if spec.dataset == "ckplus":
        ds = load_ckplus(spec.data, size)
        if spec.split != "all":
            _, ds, _ = ckplus_train_val(ds, spec.split, spec.val_fraction, spec.seed)
        return ds, spec.key()
    load = load_ferplus if spec.dataset == "ferplus" else load_fer2013
    ds = load(spec.data, spec.split, size)
    if not exclude_train_duplicates:
        return ds, spec.key()
    return _without_train_duplicates(ds, spec.data, size), spec.key() + "-dedup"


def _without_train_duplicates(ds: Dataset, data: str, size: tuple[int, int]) -> Dataset:
    dup = pixel_duplicates(ds, load_fer2013(data, "train", size))
    print(f"excluding {len(dup)} images pixel-identical to a training image")
    keep = np.setdiff1d(np.arange(len(ds)), dup)
    return ds.subset(keep, f"{ds.name} without {len(dup)} training duplicates")
