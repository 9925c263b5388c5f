"""Keras checkpoints: written with the epochs they finished, loaded for inference always in float32.

Training may run under the ``mixed_bfloat16`` policy (about 2x faster on CPUs with AMX or
AVX512-BF16); its variables are float32 but its layers compute in bfloat16, and an export of
such a graph would carry bfloat16 casts. Rebuilding the layers with a float32 policy and copying
the weights gives the model the runtime should see.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

from edgefer.runtime.atomic import atomic_path
from edgefer.runtime.errors import ModelError


def load_inference_model(path: str | Path):
    import keras

    model = keras.models.load_model(path, compile=False)
    if all(getattr(layer, "compute_dtype", "float32") in (None, "float32") for layer in model.layers):
        return model

    def as_float32(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    clone = keras.models.clone_model(model, clone_function=as_float32)
    clone.set_weights(model.get_weights())
    return clone


STATE_ENTRY = "edgefer_state.json"  # inside a .keras zip; Keras ignores entries it does not know
PAUSE_ENV = "EDGEFER_TEST_PAUSE_CHECKPOINT"


def save_checkpoint(model, path: Path, epochs_done: int) -> None:
    """``model`` (with its optimizer) and the number of epochs it finished, in one atomic write."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as z:
            z.writestr(STATE_ENTRY, json.dumps({"epochs_done": epochs_done}))
        _test_pause(path, epochs_done, tmp)


def _test_pause(path: Path, epochs_done: int, tmp: Path) -> None:
    """Test hook: with EDGEFER_TEST_PAUSE_CHECKPOINT=<file name>:<epoch>, the write of that
    checkpoint stops before its rename, prints a marker and sleeps, so a test can kill the
    process at exactly that point (tests/test_faults_train.py)."""
    if os.environ.get(PAUSE_ENV) == f"{path.name}:{epochs_done}":
        print(f"EDGEFER_TEST_PAUSED {tmp}", flush=True)
        time.sleep(3600)


def checkpoint_epoch(path: Path) -> int | None:
    """Epochs finished by the checkpoint ``path``; None if it predates that record.

    Raises ModelError for a file that is empty or not a .keras zip (a checkpoint cut short by
    a kill before writes were atomic).
    """
    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{path} is empty (0 bytes)")
    try:
        with zipfile.ZipFile(path) as z:
            if STATE_ENTRY not in z.namelist():
                return None
            return int(json.loads(z.read(STATE_ENTRY))["epochs_done"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path} is not a readable Keras checkpoint ({size} bytes: {exc})") from exc
