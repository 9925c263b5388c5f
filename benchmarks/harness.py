"""What every benchmark shares: the run's configuration and the one way to time a call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from artifacts import Artifact


@dataclass(frozen=True)
class BenchConfig:
    threads: int
    rounds: int
    warmup: int


def measure(benchmark: Any, config: BenchConfig, group: str, fn: Callable[[], object], **info: Any) -> None:
    """Time ``fn`` for the configured rounds, one call a round, after the warm-up rounds."""
    benchmark.group = group
    benchmark.extra_info.update({"group": group, "threads": config.threads, **info})
    benchmark.pedantic(fn, rounds=config.rounds, warmup_rounds=config.warmup, iterations=1)


def artifact_info(artifact: Artifact) -> dict[str, Any]:
    return {
        "artifact": artifact.display_path,
        "backend": artifact.backend,
        "precision": artifact.precision,
        "size_bytes": artifact.size_bytes,
        "origin": artifact.origin,
    }
