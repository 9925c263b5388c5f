"""Data-parallel training on the engines Keras and TensorFlow ship: ``--distribute``.

* ``none``: one device, as always.
* ``data-parallel``: every device of this machine holds a copy of the model; each global batch
  is split between them and the gradients summed. TensorFlow: ``tf.distribute.MirroredStrategy``;
  JAX: ``keras.distribution.DataParallel``.
* ``multi-worker``: one process per machine, the cluster described by ``TF_CONFIG``, each worker
  training on its share of every global batch. TensorFlow only:
  ``tf.distribute.MultiWorkerMirroredStrategy``.

``--batch`` stays the global batch: the strategy splits it, so the weights follow the same
trajectory as on one device (up to float summation order). The model is built, loaded and
compiled inside :func:`replicated`; ``model.fit`` then distributes the input pipeline itself.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgefer.runtime.errors import UsageError

MODES = ("none", "data-parallel", "multi-worker")


def backend() -> str:
    import keras

    return keras.backend.backend()


def check(mode: str) -> None:
    """Raise UsageError unless the active Keras backend has an engine for ``mode``."""
    if mode not in MODES:
        raise UsageError(f"--distribute {mode}: expected one of {', '.join(MODES)}")
    name = backend()
    if mode == "none" or (name, mode) in (("tensorflow", "data-parallel"), ("tensorflow", "multi-worker"),
                                          ("jax", "data-parallel")):
        return
    if name == "jax":
        raise UsageError("--distribute multi-worker needs the TensorFlow backend; "
                         "on JAX use --distribute data-parallel (every device of one machine)")
    raise UsageError(f"--distribute {mode} is not supported on the {name} backend (use tensorflow or jax)")


@contextmanager
def replicated(mode: str) -> Iterator[None]:
    """Build, load and compile the model inside this: its variables then live on every replica."""
    check(mode)
    if mode == "none":
        yield
    elif backend() == "tensorflow":
        with _strategy(mode).scope():
            yield
    else:  # JAX: a global setting, read again by model.fit when it shards each batch
        _jax_data_parallel()
        yield


def run_folder(mode: str, out: str) -> Path:
    """Where this process writes its run: ``out``, or beside it for a worker other than the chief.

    Every worker must run every checkpoint write (reading a metric's per-replica variables is a
    collective op), so the others write identical copies to ``<out>-worker<N>`` rather than racing
    the chief for its files. Creates the strategy now: MultiWorkerMirroredStrategy must exist
    before TensorFlow runs its first op.
    """
    check(mode)
    if mode != "multi-worker":
        return Path(out)
    resolver = _strategy(mode).cluster_resolver
    kind, index = resolver.task_type, resolver.task_id
    if kind == "chief" or (kind == "worker" and index == 0 and "chief" not in resolver.cluster_spec().jobs):
        return Path(out)
    return Path(f"{out}-{kind}{index}")


def replicas(mode: str) -> int:
    """Devices one global batch is split over (1 for ``none``)."""
    check(mode)
    if mode == "none":
        return 1
    if backend() == "tensorflow":
        return int(_strategy(mode).num_replicas_in_sync)
    return len(_jax_data_parallel().device_mesh.devices.flatten())


def check_batches(mode: str, *splits: tuple[str, int, int]) -> None:
    """Raise UsageError unless each (what, images, batch size) splits as the engine needs.

    TensorFlow: fit reduces the first batch across replicas to learn its shapes, which fails unless
    that batch splits evenly (later short batches are split unevenly, and that works). JAX shards
    every batch, the last short one too, and refuses one that does not divide by the devices.
    """
    n = replicas(mode)
    for what, images, batch in splits:
        sizes = {min(batch, images)} if backend() == "tensorflow" else {batch, images % batch} - {0}
        for size in sorted(sizes):
            if size % n:
                raise UsageError(f"--distribute {mode}: a {what} batch of {size} images does not split over "
                                 f"{n} replicas ({images} images, batch {batch}); every batch must divide by {n}"
                                 f"{_hint(what, n)}")


def _hint(what: str, n: int) -> str:
    if what == "training":
        return f": give a --batch and a --limit that are multiples of {n}"
    return "; on JAX the last batch too, on TensorFlow only the first" if n > 1 else ""


@functools.cache
def _strategy(mode: str) -> Any:
    """One strategy per process: a second MultiWorkerMirroredStrategy cannot join the cluster again."""
    import tensorflow as tf

    if mode == "data-parallel":
        # MirroredStrategy() alone takes the GPUs, else CPU:0 only; CPUs split into logical devices count too.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if not os.environ.get("TF_CONFIG"):
        raise UsageError("--distribute multi-worker needs TF_CONFIG (the cluster and this worker's task); "
                         "see README 'Training on several GPUs or machines'")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not JSON: {exc}") from exc
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _reduce_each_leaf(strategy)
    return strategy


def _reduce_each_leaf(strategy: Any) -> None:
    """Make ``strategy.reduce`` accept what Keras 3's fit hands it under several workers.

    Measured with Keras 3.15 on TF 2.21, two workers, without this: fit's first call reduces the
    whole (x, y) batch in one ``reduce`` (TensorFlow takes one value: "Attempt to convert a value
    (PerReplica ...) to a Tensor"), and each step reduces the scalar loss and accuracy with
    ``axis=0`` ("Invalid reduction dimension 0 for input with 0 dimensions"). So: one reduce per
    leaf, and a scalar is reduced across replicas only, which is what ``axis=0`` means for it.
    Every worker makes the same calls in the same order, so the collectives still pair up.
    """
    import tensorflow as tf

    reduce = strategy.reduce

    def reduce_leaf(reduce_op: Any, value: Any, axis: Any) -> Any:
        first = value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value
        if axis is not None and getattr(first, "shape", None) is not None and first.shape.rank == 0:
            axis = None
        return reduce(reduce_op, value, axis=axis)

    def reduce_leaves(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return reduce_leaf(reduce_op, value, axis)
        return tf.nest.map_structure(lambda v: reduce_leaf(reduce_op, v, axis), value)

    strategy.reduce = reduce_leaves


@functools.cache
def _jax_data_parallel() -> Any:
    import keras

    dist = keras.distribution.DataParallel()
    keras.distribution.set_distribution(dist)
    return dist
