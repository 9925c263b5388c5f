"""The keys under which cards store measured accuracies.

Imported by ``edgefer models`` at start-up, so it imports nothing (``edgefer --help`` stays instant).
"""

from __future__ import annotations


def metric_key(dataset: str, split: str = "test") -> str:
    """A card's key for accuracy on ``dataset``'s ``split``: one spelling for eval, ship and ``edgefer models``."""
    if dataset == "ferplus":
        return f"ferplus-{'publictest' if split == 'test' else split}-majority"
    part = {"test": "publictest", "train": "training"}.get(split, split)
    return f"fer2013-{part}"
