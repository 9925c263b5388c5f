"""Class names, in the one order every edgefer model trained on FER2013 uses.

Order matches the `emotion` column of the original Kaggle ``fer2013.csv`` (0..6), so a
CSV label is its own index. Models carry their own label list in their metadata; the
runtime reads names from the model, these lists exist for training and data loading.
"""

from __future__ import annotations

FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# FER+ (Barsoum et al. 2016) vote columns, renamed to edgefer's vocabulary.
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
)
FERPLUS_LABELS: tuple[str, ...] = (
    "neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt",
)

# Folder names seen in downloaded datasets, mapped to edgefer's names.
LABEL_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "happy": "happy",
    "happiness": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "contempt": "contempt",
}


def canonical_label(name: str) -> str | None:
    """Map a folder or column name to edgefer's label name, or None if unknown."""
    return LABEL_ALIASES.get(name.strip().lower())
