"""Weight averaging: one model whose weights are the mean of several checkpoints of one network.

The weights a constant learning rate visits over a run's last epochs scatter around a wide optimum;
their mean lies nearer its centre than any single epoch does (stochastic weight averaging,
Izmailov et al. 2018). On FER2013, whose labels are noisy, single epochs of one run differ by up
to 2 points on PublicTest, so the average is also a steadier pick than the best epoch. Checkpoints
of different cycles that started from one model average as well (a "model soup"); networks trained
from different initialisations do not, because their units are in different orders.

The members' BatchNorm statistics describe their own activations, not the average's, so they are
re-estimated on training faces, one layer after another. The result is a run folder like any other
(best.keras, run.json, history.csv), so ``edgefer export``/``eval``/``inspect`` take it unchanged.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgefer.runtime.atomic import atomic_path, write_bytes
from edgefer.runtime.errors import EdgeferError, ModelError
from edgefer.runtime.preprocess import normalize

from .data import Dataset
from .runfolder import SNAPSHOT_SUFFIX, RunFolder, load_first

BN_FACES = 8192  # enough for stable per-channel statistics; more adds time, not accuracy


# Checkpoints that cannot be averaged (one network's weights, of one shape, needed).
AverageError = ModelError


def member_path(path: str | Path) -> Path:
    """A member as given, checked: a run folder (the checkpoint it means, runfolder.py), a .keras
    file, a .weights.h5 snapshot or an exported float .onnx model."""
    path = Path(path)
    if path.is_dir():
        RunFolder(path).model_file()
        return path
    if not path.is_file():
        raise AverageError(f"no such checkpoint: {path}")
    if not (path.suffix in (".keras", ".onnx") or path.name.endswith(SNAPSHOT_SUFFIX)):
        raise AverageError(f"{path}: expected a .keras file, a run folder, a {SNAPSHOT_SUFFIX} snapshot "
                           "or a float .onnx model")
    return path


def _onnx_member_run(path: Path) -> dict:
    """What an exported model's card says of the network, in run.json's terms (arch, labels, preprocess)."""
    from edgefer.runtime.metadata import read_model_info

    info = read_model_info(path)
    arch = info.card.get("arch")
    if not arch:
        raise AverageError(f"{path}: its card names no arch, so it cannot be matched to the other members")
    return {"config": {"arch": arch}, "labels": list(info.labels), "preprocess": info.preprocess.to_dict()}


def _first_is_a_checkpoint(paths: Sequence[Path]) -> None:
    if paths and paths[0].suffix == ".onnx":
        raise AverageError(f"{paths[0]}: put a training checkpoint first; its run.json describes the average")


def run_folder(path: Path) -> RunFolder:
    """The training run a member belongs to: the folder itself, a checkpoint's, or the one above snapshots/."""
    found = RunFolder.of_model(path)
    if found is None:
        raise AverageError(f"{path}: no run.json beside it or one folder up (is it from `edgefer train`?)")
    return found


def _load_member(model, path: Path, labels: Sequence[str], faces: np.ndarray | None) -> Path:
    """Put ``path``'s weights into ``model``; returns the file they came from.

    An ONNX member is imported as ``--init-from`` imports it: its BatchNorms were folded into the
    convolutions, so they are rebuilt from their inputs' statistics on ``faces``, the faces the
    average's BatchNorms are re-estimated on, which keeps that member's own function exact.
    """
    if path.suffix == ".onnx":
        from .transfer import TransferError, load_onnx_weights

        if faces is None:
            raise AverageError(f"{path}: an ONNX member needs training faces to rebuild its BatchNorms")
        try:
            load_onnx_weights(model, path, labels, faces)
        except TransferError as exc:
            raise AverageError(str(exc)) from exc
        return path
    if path.name.endswith(SNAPSHOT_SUFFIX):
        model.load_weights(path)
        return path
    import keras

    source, used = load_first(path, lambda f: keras.models.load_model(f, compile=False))
    model.set_weights(source.get_weights())
    return used


def average_weights(members: Sequence[str | Path], faces: np.ndarray | None = None):
    """(float32 Keras model holding the mean weights, the first member's run.json, the files averaged).

    The first member must be a training checkpoint: its run.json describes the average. Later ones
    may be exported float ONNX models of the same network (imported on ``faces``, normalised inputs).
    """
    import keras

    from .archs import ARCHS

    paths = [member_path(p) for p in members]
    if len(paths) < 2:
        raise AverageError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    _first_is_a_checkpoint(paths)
    runs = [_onnx_member_run(p) if p.suffix == ".onnx" else run_folder(p).read_run() for p in paths]
    meta = runs[0]
    spec = run_folder(paths[0]).preprocess()
    for p, run in zip(paths[1:], runs[1:]):
        if (run["config"]["arch"], run["labels"]) != (meta["config"]["arch"], meta["labels"]):
            raise AverageError(f"{p}: arch {run['config']['arch']} with labels {run['labels']} differs from "
                               f"{paths[0]} ({meta['config']['arch']}, {meta['labels']})")
        if p.suffix == ".onnx" and run["preprocess"] != spec.to_dict():
            raise AverageError(f"{p}: preprocessing {run['preprocess']} differs from {paths[0]}'s {spec.to_dict()}")
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # the average is an inference model
    try:
        model = ARCHS[meta["config"]["arch"]].build((*spec.size, spec.channels), len(meta["labels"]))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    total = [np.zeros(w.shape, np.float64) for w in model.get_weights()]
    used = []
    for p in paths:
        used.append(_load_member(model, p, meta["labels"], faces))
        for acc, w in zip(total, model.get_weights()):
            acc += w
    model.set_weights([(acc / len(paths)).astype(np.float32) for acc in total])
    return model, meta, used


def update_batchnorm(model, faces: np.ndarray, batch: int = 512) -> None:
    """Set each BatchNorm's moving mean/variance to its input's statistics on ``faces``.

    Layer by layer, in order, because each layer's input depends on the statistics of those
    before it.
    """
    import keras

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in bns:
        ((mean, var),) = input_statistics(model, [bn], faces, batch)
        weights = bn.get_weights()
        weights[-2], weights[-1] = mean, var
        bn.set_weights(weights)


def input_statistics(
    model, layers: Sequence, faces: np.ndarray, batch: int = 512,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-channel mean and variance of each layer's input over ``faces``, one batch at a time.

    Only running float64 sums are kept, never the activations: the first BatchNorm's input of
    ``edge_wide`` over 8,192 faces is 8,192 x 48 x 48 x 96 values, 7 GB as float32, and holding
    it (with a float64 copy) ran a 24 GB machine out of memory.
    """
    import keras

    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    counts = [0] * len(layers)  # values per channel so far: layers differ in spatial size
    means = [np.zeros(layer.input.shape[-1]) for layer in layers]
    m2s = [np.zeros(layer.input.shape[-1]) for layer in layers]
    for start in range(0, len(faces), batch):
        outs = probe(faces[start : start + batch], training=False)
        for i, out in enumerate(outs if isinstance(outs, (list, tuple)) else [outs]):
            act = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
            mean = act.mean(axis=0)
            # Chan et al.'s pairwise update (from zero counts it takes the first batch as it is):
            # exact, and stable where running sums of squares are not
            rows, total = len(act), counts[i] + len(act)
            delta = mean - means[i]
            means[i] = means[i] + delta * rows / total
            m2s[i] = m2s[i] + ((act - mean) ** 2).sum(axis=0) + delta**2 * counts[i] * rows / total
            counts[i] = total
    return [(mean, m2 / n) for mean, m2, n in zip(means, m2s, counts)]


def batchnorm_sample(ds: Dataset, seed: int = 0) -> Dataset:
    """The seeded ``BN_FACES`` images of ``ds`` whose statistics the averaged BatchNorms take
    (all of ``ds`` if it has no more); the same faces whether or not ``ds`` was sampled before."""
    if len(ds) <= BN_FACES:
        return ds
    pick = np.random.default_rng(seed).permutation(len(ds))[:BN_FACES]
    return ds.subset(np.sort(pick))


def write_averaged_run(
    members: Sequence[str | Path], out: str | Path, train_ds: Dataset, val_ds: Dataset | None = None,
    seed: int = 0,
) -> Path:
    """Average ``members`` into the run folder ``out``; prints its validation accuracy."""
    out = Path(out)
    replace = _earlier_average(out)  # refused before the work, removed only once the average exists
    paths = [member_path(p) for p in members]
    _first_is_a_checkpoint(paths)
    spec = run_folder(paths[0]).preprocess()
    bn_faces = batchnorm_sample(train_ds, seed)
    faces = normalize(bn_faces.x, spec)
    model, meta, used = average_weights(paths, faces)
    if list(train_ds.labels) != list(meta["labels"]):
        raise AverageError(f"the data's labels {list(train_ds.labels)} differ from the model's {meta['labels']}")
    update_batchnorm(model, faces)
    if replace:
        shutil.rmtree(out)
    averaged = RunFolder(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(averaged.best) as tmp:
        model.save(tmp)
    source = run_folder(paths[0])
    if source.history.is_file():  # the members' training curves
        write_bytes(averaged.history, source.history.read_bytes())
    meta["averaged"] = {
        "members": [str(p) for p in used],
        "batchnorm_faces": len(bn_faces),
    }
    if imported := [p for p in paths if p.suffix == ".onnx"]:  # shipped files get replaced: keep their lineage
        from .transfer import lineage

        meta["averaged"]["imported"] = [lineage(p) for p in imported]
    averaged.write_run(meta)
    if val_ds is not None:
        from .evaluate import KerasPredictor, evaluate

        acc = evaluate(KerasPredictor(averaged.best), val_ds).metrics.accuracy
        meta["averaged"]["val_accuracy"] = round(float(acc), 4)
        averaged.write_run(meta)
        print(f"{out}: the average of {len(members)} checkpoints scores {acc:.4f} on {val_ds.name}")
    return out


def _earlier_average(out: Path) -> bool:
    """True if ``out`` holds an earlier average, to be replaced whole (its report would describe
    other weights); any other non-empty folder, a training run above all, is refused."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return False
    try:
        earlier = out.is_dir() and "averaged" in RunFolder(out).read_run()
    except EdgeferError:
        earlier = False
    if not earlier:
        raise AverageError(f"{out} exists and is not an earlier average: choose another --out")
    return True


def average_run(run: RunFolder, train_ds: Dataset, val_ds: Dataset, out: Path | None = None) -> Path | None:
    """End of ``edgefer train --average-last N``: the run's snapshots averaged into ``run/averaged``."""
    members = run.snapshots()
    if len(members) < 2:
        print(f"{run.path}: {len(members)} snapshot(s), nothing to average (the run stopped before its last epochs)")
        return None
    print(f"averaging the weights of {len(members)} epochs ({members[0].name} .. {members[-1].name})")
    return write_averaged_run(members, out or run.averaged.path, train_ds, val_ds)
