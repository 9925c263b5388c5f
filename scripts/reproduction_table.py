"""Summarise training runs as a Markdown table from their own history.csv and run.json files.

Usage: python scripts/reproduction_table.py RUN[=REPORTED_FIGURE] ...
  e.g. python scripts/reproduction_table.py runs/report=62.1 runs/reference=58
The validation accuracies are those Keras measured on the run's validation data at the end of
each epoch (FER2013 PublicTest for FER2013 runs); nothing is typed in.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def row(run: Path, reported: str) -> str:
    meta = json.loads((run / "run.json").read_text())
    hist = list(csv.DictReader((run / "history.csv").open()))
    accs = [100 * float(r["val_accuracy"]) for r in hist]
    best = max(range(len(accs)), key=accs.__getitem__)
    minutes = sum(float(r.get("epoch_seconds") or 0) for r in hist) / 60
    cfg = meta["config"]
    return (
        f"| `{cfg['arch']}` | {meta['val_data'].split(':')[0]} | {meta['params']:,} | {len(hist)} of {cfg['epochs']} | "
        f"{accs[-1]:.1f} | {accs[best]:.1f} (epoch {best + 1}) | {reported or '-'} | {minutes:.0f} min |"
    )


def main(argv: list[str]) -> None:
    print("| model | validation data | parameters | epochs run | final-epoch accuracy % | best epoch % "
          "| report's figure % (its own split) | training time here |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for item in argv:
        run, _, reported = item.partition("=")
        print(row(Path(run), reported))


if __name__ == "__main__":
    main(sys.argv[1:])
