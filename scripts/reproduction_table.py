"""Summarise training runs as a Markdown table from their own history.csv and run.json files.

Usage: python scripts/reproduction_table.py RUN[=REPORTED_FIGURE] ...
  e.g. python scripts/reproduction_table.py runs/report=62.1 runs/reference=58
       python scripts/reproduction_table.py runs/edge runs/edge_wide     (no figures: no report column)
The validation accuracies are those Keras measured on the run's validation data at the end of
each epoch (FER2013 PublicTest for FER2013 runs); nothing is typed in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgefer.train.runfolder import RunFolder


def row(run: Path, reported: str | None) -> str:
    meta = RunFolder(run).read_run()
    hist = RunFolder(run).read_history()
    accs = [100 * float(r["val_accuracy"]) for r in hist]
    best = max(range(len(accs)), key=accs.__getitem__)
    minutes = sum(float(r.get("epoch_seconds") or 0) for r in hist) / 60
    cfg = meta["config"]
    name = f"`{cfg['arch']}`" + (f" ({run.name})" if run.name != cfg["arch"] else "")
    figure = "" if reported is None else f" {reported or '-'} |"
    return (
        f"| {name} | {meta['val_data'].split(':')[0]} | {meta['params']:,} | {len(hist)} of {cfg['epochs']} | "
        f"{accs[-1]:.1f} | {accs[best]:.1f} (epoch {best + 1}) |{figure} {minutes:.0f} min |"
    )


def main(argv: list[str]) -> None:
    with_figures = any("=" in item for item in argv)
    figure = " report's figure % (its own split) |" if with_figures else ""
    print(f"| model | validation data | parameters | epochs run | final-epoch accuracy % | best epoch % |{figure}"
          " training time here |")
    print("|---|---|---:|---:|---:|---:|" + ("---:|" if with_figures else "") + "---:|")
    for item in argv:
        run, _, reported = item.partition("=")
        print(row(Path(run), reported if with_figures else None))


if __name__ == "__main__":
    main(sys.argv[1:])
