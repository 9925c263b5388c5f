"""One-page run reports: curves, confusion matrices, per-class scores, samples, kernels.

Reproduces every analysis of the original report (accuracy/loss curves, confusion matrix,
first-layer kernels, an image convolved with each kernel) for any run folder or model file.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgefer.runtime.atomic import atomic_path, write_text

from .data import Dataset
from .eval_data import choose_eval_data, load_eval_data, recorded_of
from .evaluate import evaluate, input_size, load_predictor
from .metrics import Metrics
from .runfolder import RunFolder


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, out: Path, dpi: int) -> None:
    """A picture appears whole or not at all (matplotlib picks PNG from the temp name's suffix)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi)


def plot_history(history_csv: Path, out: Path) -> Path | None:
    if not history_csv.is_file():
        return None
    with history_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    plt = _plt()
    ep = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("accuracy", "loss")):
        ax.plot(ep, [float(r[key]) for r in rows], "o-", ms=3, label="train")
        if f"val_{key}" in rows[0]:
            ax.plot(ep, [float(r[f"val_{key}"]) for r in rows], "o-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    _save_figure(fig, out, 110)
    plt.close(fig)
    return out


def plot_confusion(m: Metrics, out: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, mat, title, fmt in (
        (axes[0], m.confusion, "counts", "d"),
        (axes[1], m.normalized(), "row-normalised (recall on the diagonal)", ".2f"),
    ):
        ax.imshow(mat, cmap="Blues")
        ax.set_xticks(range(len(m.labels)), m.labels, rotation=45, ha="right")
        ax.set_yticks(range(len(m.labels)), m.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        hi = mat.max() if mat.size else 1
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(j, i, format(mat[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if mat[i, j] > hi / 2 else "black")
    fig.tight_layout()
    _save_figure(fig, out, 110)
    plt.close(fig)
    return out


def plot_samples(data: Dataset, out: Path, per_class: int = 8, seed: int = 0) -> Path:
    plt = _plt()
    rng = np.random.default_rng(seed)
    k = len(data.labels)
    fig, axes = plt.subplots(k, per_class, figsize=(per_class * 0.9, k * 1.0))
    for i, name in enumerate(data.labels):
        idx = np.flatnonzero(data.y == i)
        pick: np.ndarray = (rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx)
                            else np.zeros(0, np.int64))
        for j in range(per_class):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(pick):
                ax.imshow(data.x[pick[j]], cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    _save_figure(fig, out, 100)
    plt.close(fig)
    return out


def first_layer_kernels(model_path: Path) -> np.ndarray:
    """First convolution's kernels as (count, kh, kw), first input channel."""
    if model_path.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        g = onnx.load(str(model_path)).graph
        inits = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type in ("Conv", "QLinearConv") and len(node.input) > 1:
                w_name = node.input[1] if node.op_type == "Conv" else node.input[3]
                if w_name in inits:
                    w = numpy_helper.to_array(inits[w_name]).astype(np.float32)  # (out, in, kh, kw)
                    return w[:, 0]
        raise ValueError(f"{model_path}: no Conv with constant weights found")
    import keras

    path = RunFolder(model_path).model_file() if model_path.is_dir() else model_path
    model = keras.models.load_model(path, compile=False)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            w = np.asarray(layer.get_weights()[0])  # (kh, kw, in, out)
            return np.transpose(w[:, :, 0, :], (2, 0, 1))
    raise ValueError(f"{path}: no Conv2D layer")


def _grid(images: list[np.ndarray], titles: list[str], out: Path, cmap="gray", cols: int = 8,
          symmetric: bool = False, size: float = 1.1) -> Path:
    plt = _plt()
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, t in zip(axes.flat, images, titles):
        if symmetric:
            v = float(np.abs(im).max()) or 1.0
            ax.imshow(im, cmap=cmap, vmin=-v, vmax=v)
        else:
            ax.imshow(im, cmap=cmap)
        ax.set_title(t, fontsize=6)
    fig.tight_layout()
    _save_figure(fig, out, 110)
    plt.close(fig)
    return out


def plot_kernels(kernels: np.ndarray, out: Path) -> Path:
    return _grid(list(kernels), [f"k{i}" for i in range(len(kernels))], out, symmetric=True, size=0.8)


def plot_filtered(image: np.ndarray, kernels: np.ndarray, out: Path) -> Path:
    """One real face convolved with each first-layer kernel (cv2.filter2D), as the report showed."""
    x = image.astype(np.float32) / 255.0
    maps = [x] + [cv2.filter2D(x, cv2.CV_32F, k) for k in kernels]
    titles = ["input"] + [f"k{i}" for i in range(len(kernels))]
    return _grid(maps, titles, out, symmetric=False, size=1.0)


def write_model_report(model: Path, out: Path, data: Mapping[str, Any] | None = None,
                       history: Path | None = None, exclude_train_duplicates: bool = False) -> Path:
    """Evaluate ``model`` and write out/report.md with every plot; returns the report path.

    The model is judged on the validation data its run.json (or card) records; ``data`` holds
    data options that override the record (eval_data.py).
    """
    model = Path(model)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_predictor(model)
    spec = choose_eval_data(data or {}, recorded_of(Path(predictor.path), predictor.info.card))
    if spec.warning:
        print(f"warning: {spec.warning}", file=sys.stderr)
    faces, _ = load_eval_data(spec, input_size(predictor), exclude_train_duplicates)
    print(spec.line(len(faces)))
    ev = evaluate(predictor, faces)
    m = ev.metrics
    lines = [f"# edgefer report: {model}", ""]
    run = RunFolder.of_model(Path(predictor.path))
    lines += _provenance(predictor, run)
    lines += [f"- validation data: {spec.title()} ({m.n} images, {spec.origin})", ""]
    history = history or (run or RunFolder(model if model.is_dir() else model.parent)).history
    curves = plot_history(history, out / "curves.png") if history.is_file() else None
    if curves:
        lines += _history_summary(history) + ["", "![accuracy and loss](curves.png)", ""]
    lines += [
        "## Validation", "",
        f"accuracy **{m.accuracy:.4f}**, balanced accuracy **{m.balanced_accuracy:.4f}**", "",
        m.table(), "", "![confusion matrix](confusion.png)", "",
    ]
    plot_confusion(m, out / "confusion.png")
    RunFolder(out).write_metrics(m.to_dict())
    plot_samples(faces, out / "samples.png")
    lines += ["## Samples per class (validation data)", "", "![samples](samples.png)", ""]
    lines += _kernel_sections(Path(predictor.path), faces, out)
    report = out / "report.md"
    write_text(report, "\n".join(lines))
    return report


def _provenance(predictor: Any, run: RunFolder | None) -> list[str]:
    """What the model is and how it trained: from its run folder, else from its own card."""
    lines: list[str] = []
    if run is not None:
        meta = run.read_run()
        lines += [
            f"- architecture: `{meta['config']['arch']}`, {meta['params']:,} parameters",
            f"- training data: {meta['train_data']}",
            f"- recipe: {meta['config']['epochs']} epochs, batch {meta['config']['batch_size']}, "
            f"learning rate {meta['config']['learning_rate']}, seed {meta['config']['seed']}",
        ]
    elif getattr(predictor, "info", None) is not None and predictor.info.card:
        card = predictor.info.card  # an exported model describes itself
        lines += [
            f"- architecture: `{card.get('arch', '?')}`, {card.get('params', 0):,} parameters",
            f"- training data: {card.get('train_data', '?')}",
        ]
        training = dict(card.get("training", {}))
        parent = training.pop("init_from", None)
        lines.append(f"- training: {json.dumps(training)}")
        if isinstance(parent, dict):  # a later cycle: name the model it started from
            lines.append(f"- started from `{parent.get('file')}` (sha256 {str(parent.get('sha256'))[:12]}…, "
                         f"`{parent.get('arch', '?')}`; its own recipe is under training.init_from in the card)")
    return lines


def _kernel_sections(model: Path, faces: Dataset, out: Path) -> list[str]:
    """kernels.png and filtered.png with their sections; a line saying why where there are none."""
    try:
        kernels = first_layer_kernels(model)
        plot_kernels(kernels, out / "kernels.png")
        face = faces.x[int(np.flatnonzero(faces.y == int(np.bincount(faces.y).argmax()))[0])]
        plot_filtered(face, kernels, out / "filtered.png")
    except ValueError as exc:
        return [f"(no kernel plots: {exc})", ""]
    return [
        f"## First-layer kernels ({kernels.shape[0]} of {kernels.shape[1]}x{kernels.shape[2]})", "",
        "![kernels](kernels.png)", "",
        "## One validation face filtered by each kernel (cv2.filter2D)", "", "![filtered](filtered.png)", "",
    ]


def _history_summary(history_csv: Path) -> list[str]:
    with history_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    best = max(rows, key=lambda r: float(r["val_accuracy"]))
    secs = sum(float(r.get("epoch_seconds") or 0) for r in rows)
    return [
        f"- epochs run: {len(rows)}; best validation accuracy {float(best['val_accuracy']):.4f} "
        f"at epoch {int(best['epoch']) + 1}; training time {secs / 60:.1f} min",
    ]


def write_run_report(run: Path) -> Path:
    return write_model_report(Path(run), Path(run))
