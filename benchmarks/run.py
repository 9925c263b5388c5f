"""Run the benchmark suite and regenerate BENCHMARKS.md: the one command.

    .venv/bin/python benchmarks/run.py            # full: 100 rounds, threads 1 and 2 (~3-4 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # 15 rounds: checks the suite in about a minute
    .venv/bin/python benchmarks/run.py --render-only   # re-render from the last run's JSON

One pytest process per thread count (TensorFlow cannot change its thread pools once
started), each writing pytest-benchmark JSON into .cache/bench/; then render.py turns
them into BENCHMARKS.md. Stand-in artifacts are built first, outside any timed process,
when models/ lacks some of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, so benchmarks/ is on sys.path and its sibling modules import directly.
import artifacts
from render import render_session

from edgefer.runtime import machine
from edgefer.runtime.atomic import write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

JSON_DIR = REPO / ".cache" / "bench"
FULL = {"rounds": 100, "warmup": 10}
QUICK = {"rounds": 15, "warmup": 3}
# Libraries that read a thread count from the environment at start-up (OpenMP, BLAS).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run benchmarks/ and regenerate BENCHMARKS.md.")
    p.add_argument("--quick", action="store_true", help=f"{QUICK['rounds']} rounds instead of {FULL['rounds']}")
    p.add_argument("--rounds", type=int, help="timed rounds per benchmark (overrides --quick)")
    p.add_argument("--warmup", type=int, help="warm-up rounds per benchmark")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    p.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--render-only", action="store_true", help="re-render the last session, run nothing")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments after --, e.g. -- -k classify")
    return p.parse_args(argv)


def run_pytest(threads: int, rounds: int, warmup: int, extra: list[str]) -> tuple[Path, int]:
    out = JSON_DIR / f"threads{threads}.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, **{k: str(threads) for k in THREAD_ENV}, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [
        sys.executable, "-m", "pytest", str(HERE), f"--bench-threads={threads}", f"--bench-rounds={rounds}",
        f"--bench-warmup={warmup}", f"--benchmark-json={out}", *extra,
    ]
    print(f"\n== threads={threads}: {shlex.join(cmd)}", flush=True)
    return out, subprocess.call(cmd, cwd=REPO, env=env)


def detection_quality() -> dict:
    """Recall/precision of every detector on the labelled set; empty without the shared data."""
    import face_quality

    try:
        print("\n== detection quality on the labelled set", flush=True)
        return face_quality.run()
    except FileNotFoundError as exc:
        print(f"detection quality not measured: {exc}", file=sys.stderr)
        return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    session_path = JSON_DIR / "session.json"
    if args.render_only:
        print(f"wrote {render_session(session_path, args.output)}")
        return 0
    preset = QUICK if args.quick else FULL
    rounds = args.rounds or preset["rounds"]
    warmup = args.warmup if args.warmup is not None else preset["warmup"]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    JSON_DIR.mkdir(parents=True, exist_ok=True)

    artifacts.resolve(build=True)  # builds stand-ins now, so no timed process pays for TensorFlow export
    info = machine.describe()
    started = time.monotonic()
    files, worst = [], 0
    for n in threads:
        path, rc = run_pytest(n, rounds, warmup, args.pytest_args)
        worst = max(worst, rc)
        if path.is_file():
            files.append(str(path))
    quality = detection_quality()
    info["load_after"] = machine.load_average()
    command = shlex.join(["benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    session = {
        "command": f".venv/bin/python {command}", "machine": info, "rounds": rounds, "warmup": warmup,
        "threads": threads, "quick": bool(args.quick and not args.rounds), "json_files": files,
        "seconds": round(time.monotonic() - started, 1), "quality": quality,
    }
    write_text(session_path, json.dumps(session, indent=2) + "\n")
    if not files:
        print("no benchmark results: nothing rendered", file=sys.stderr)
        return worst or 1
    print(f"\nwrote {render_session(session_path, args.output)} ({session['seconds']:.0f} s of benchmarks)")
    return worst


if __name__ == "__main__":
    sys.exit(main())
