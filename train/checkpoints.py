"""Load Keras checkpoints for inference and export, always in float32.

Training may run under the ``mixed_bfloat16`` policy (about 2x faster on CPUs with AMX or
AVX512-BF16); its variables are float32 but its layers compute in bfloat16, and an export of
such a graph would carry bfloat16 casts. Rebuilding the layers with a float32 policy and copying
the weights gives the model the runtime should see.
"""

from __future__ import annotations

from pathlib import Path


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
