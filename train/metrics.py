"""Classification metrics in plain numpy (no scikit-learn needed to evaluate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Metrics:
    labels: tuple[str, ...]
    confusion: np.ndarray  # rows: true class, columns: predicted class

    @classmethod
    def from_predictions(cls, y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> Metrics:
        k = len(labels)
        cm = np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)
        return cls(tuple(labels), cm)

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.n))

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def recall(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(1, self.support)

    @property
    def precision(self) -> np.ndarray:
        return np.diag(self.confusion) / np.maximum(1, self.confusion.sum(axis=0))

    @property
    def f1(self) -> np.ndarray:
        p, r = self.precision, self.recall
        return np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)

    @property
    def balanced_accuracy(self) -> float:
        present = self.support > 0
        return float(self.recall[present].mean()) if present.any() else 0.0

    def normalized(self) -> np.ndarray:
        return self.confusion / np.maximum(1, self.support)[:, None]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "balanced_accuracy": round(self.balanced_accuracy, 4),
            "per_class": {
                name: {
                    "precision": round(float(self.precision[i]), 4),
                    "recall": round(float(self.recall[i]), 4),
                    "f1": round(float(self.f1[i]), 4),
                    "support": int(self.support[i]),
                }
                for i, name in enumerate(self.labels)
            },
            "confusion": self.confusion.tolist(),
        }

    def table(self) -> str:
        """Per-class precision / recall / F1 as a Markdown table."""
        rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        for i, name in enumerate(self.labels):
            rows.append(
                f"| {name} | {self.precision[i]:.3f} | {self.recall[i]:.3f} | {self.f1[i]:.3f} | {self.support[i]} |"
            )
        return "\n".join(rows)

    def confusion_text(self) -> str:
        w = max(8, *(len(s) for s in self.labels))
        head = " " * w + " " + " ".join(f"{s[:7]:>7}" for s in self.labels)
        lines = [head] + [
            f"{name:>{w}} " + " ".join(f"{v:>7d}" for v in row) for name, row in zip(self.labels, self.confusion)
        ]
        return "\n".join(lines)
