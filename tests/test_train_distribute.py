"""--distribute: data-parallel and multi-worker training match one device; bad combinations are one line.

Every comparison trains the ckplus arch on the same 42 images, global batch 8, seed 1, for 2
epochs (tests/distribute_worker.py), on one device and distributed, each in a process of its own.

Tolerances, from measured differences:

* TensorFlow (MirroredStrategy over 2 logical CPUs; MultiWorkerMirroredStrategy with 2 worker
  processes): loss and val_loss differ from one device by at most 1.2e-7 (float32 sums in another
  order), accuracies are equal. Asserted: 1e-5 on losses, accuracies equal. Dropout is off in
  these runs: each replica draws its mask from the same seed for its half of the batch, so the
  masks differ from one device's by design (measured with dropout: 5e-3 in loss, 2 of 42 images
  in accuracy), which would hide an error of that size.
* JAX (keras.distribution.DataParallel over 2 host devices): one program over the global batch,
  dropout included; measured at most 1.5e-7 apart. Asserted: 1e-5, accuracies equal.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from distribute_worker import MARK, tiny_tree

from edgefer.runtime.errors import UsageError
from edgefer.train import distribute
from edgefer.train.config import TrainConfig, build_config

WORKER = Path(__file__).with_name("distribute_worker.py")
LOSS_TOL = 1e-5  # 80x the largest measured difference (1.2e-7); dropout masks alone make 5e-3
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return tiny_tree(tmp_path_factory.mktemp("fer"))


def _start(mode: str, data: Path, out: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(WORKER), mode, str(data), str(out), *flags]
    return subprocess.Popen(cmd, env={**os.environ, **QUIET, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _history(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    (line,) = [ln for ln in out.splitlines() if ln.startswith(MARK)]
    return json.loads(line[len(MARK):])


def _run(mode: str, data: Path, out: Path, *flags: str, env: dict[str, str] | None = None) -> dict:
    return _history(_start(mode, data, out, *flags, env=env))


def _assert_same(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want) == 2
    for g, w in zip(got, want):
        for key in ("loss", "val_loss"):
            assert abs(g[key] - w[key]) <= LOSS_TOL, (key, g, w)
        for key in ("accuracy", "val_accuracy"):
            assert g[key] == w[key], (key, g, w)


@pytest.fixture(scope="module")
def tf_reference(tiny_data: Path, tmp_path_factory) -> list[dict]:
    pytest.importorskip("tensorflow")
    return _run("none", tiny_data, tmp_path_factory.mktemp("one") / "run", "--no-dropout",
                env={"KERAS_BACKEND": "tensorflow"})["history"]


@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(tiny_data: Path, tf_reference: list[dict], tmp_path: Path) -> None:
    got = _run("data-parallel", tiny_data, tmp_path / "run", "--cpus", "2", "--no-dropout",
               env={"KERAS_BACKEND": "tensorflow"})
    _assert_same(got["history"], tf_reference)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_matches_one_device(tiny_data: Path, tf_reference: list[dict], tmp_path: Path) -> None:
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    out = tmp_path / "run"
    def tf_config(i: int) -> str:
        return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})

    procs = [_start("multi-worker", tiny_data, out, "--no-dropout",
                    env={"KERAS_BACKEND": "tensorflow", "TF_CONFIG": tf_config(i)}) for i in range(2)]
    chief, other = (_history(p) for p in procs)
    _assert_same(chief["history"], tf_reference)
    assert other["history"] == chief["history"]  # synchronous: every worker logs the global values
    # The chief writes the run folder; the other worker its own copy beside it, not the chief's files.
    assert Path(chief["run"]) == out and Path(other["run"]) == tmp_path / "run-worker1"
    assert (out / "last.keras").is_file() and (tmp_path / "run-worker1" / "last.keras").is_file()


@pytest.mark.slow
def test_jax_data_parallel_matches_one_device(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("jax", reason="jax is not installed (pip install 'edgefer[jax]')")
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    want = _run("none", tiny_data, tmp_path / "one", env=env)
    got = _run("data-parallel", tiny_data, tmp_path / "two", env=env)
    _assert_same(got["history"], want["history"])


# ---------------------------------------------------------------- one-line refusals
def test_distribute_is_a_train_option() -> None:
    assert TrainConfig().distribute == "none"
    with pytest.raises(UsageError, match="--distribute sideways: expected one of none, data-parallel"):
        build_config({"distribute": "sideways"})
    with pytest.raises(UsageError, match="--time-budget cannot be used with --distribute multi-worker"):
        build_config({"distribute": "multi-worker", "time_budget": 60.0})


def test_unsupported_backend_combinations(monkeypatch) -> None:
    monkeypatch.setattr(distribute, "backend", lambda: "jax")
    with pytest.raises(UsageError, match="multi-worker needs the TensorFlow backend"):
        distribute.check("multi-worker")
    monkeypatch.setattr(distribute, "backend", lambda: "torch")
    with pytest.raises(UsageError, match="not supported on the torch backend"):
        distribute.check("data-parallel")
    distribute.check("none")  # any backend trains on one device


def test_multi_worker_needs_tf_config(monkeypatch) -> None:
    pytest.importorskip("tensorflow")
    monkeypatch.setattr(distribute, "backend", lambda: "tensorflow")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UsageError, match="needs TF_CONFIG"):
        distribute.run_folder("multi-worker", "runs/x")
    monkeypatch.setenv("TF_CONFIG", "{cluster")
    with pytest.raises(UsageError, match="TF_CONFIG is not JSON"):
        distribute.run_folder("multi-worker", "runs/x")


@pytest.mark.parametrize(("backend", "images", "batch", "refused"), [
    ("tensorflow", 42, 8, None),
    ("tensorflow", 43, 8, None),  # only the first batch has to split evenly on TensorFlow
    ("tensorflow", 42, 5, "a training batch of 5 images does not split over 2 replicas"),
    ("jax", 42, 8, None),
    ("jax", 43, 8, "a training batch of 3 images"),  # JAX shards the last, short batch too
])
def test_batches_must_split_over_replicas(monkeypatch, backend: str, images: int, batch: int,
                                          refused: str | None) -> None:
    monkeypatch.setattr(distribute, "backend", lambda: backend)
    monkeypatch.setattr(distribute, "replicas", lambda mode: 2)
    if refused is None:
        distribute.check_batches("data-parallel", ("training", images, batch))
        return
    with pytest.raises(UsageError, match=refused):
        distribute.check_batches("data-parallel", ("training", images, batch))
