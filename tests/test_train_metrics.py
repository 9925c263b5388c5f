from __future__ import annotations

import numpy as np

from edgefer.train.metrics import Metrics


def test_metrics_known_values() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = Metrics.from_predictions(y, p, ("a", "b", "c"))
    assert m.confusion.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert m.accuracy == 6 / 8
    assert np.allclose(m.recall, [0.75, 0.5, 1.0])
    assert np.isclose(m.balanced_accuracy, (0.75 + 0.5 + 1.0) / 3)
    assert np.allclose(m.precision, [0.75, 0.5, 1.0])
    d = m.to_dict()
    assert d["per_class"]["b"]["support"] == 2 and d["n"] == 8
    assert "| c | 1.000 | 1.000 | 1.000 | 2 |" in m.table()


def test_balanced_accuracy_ignores_absent_classes() -> None:
    m = Metrics.from_predictions(np.array([0, 0]), np.array([0, 1]), ("a", "b", "c"))
    assert m.balanced_accuracy == 0.5
