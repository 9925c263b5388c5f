"""Markdown table: what weight averaging gained over its members, from the run folders' own records.

Each row is a run folder written by `edgefer average` or `edgefer train --average-last N`. A member's
accuracy is the one its training run logged for that checkpoint in history.csv (a snapshot
epoch_NNN.weights.h5 or last.keras: that epoch's row; best.keras: the run's best row; an average:
its own evaluation), so under mixed precision it is the bfloat16 figure; the average's accuracy is
`edgefer eval`'s, in float32.

Usage: python scripts/averaging_table.py RUN [RUN ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from edgefer.train.runfolder import LAST, RunFolder


def _history(run: Path) -> list[float]:
    return [float(r["val_accuracy"]) for r in RunFolder(run).read_history()]


def member_accuracy(member: Path) -> tuple[str, float]:
    """(short name, logged validation accuracy) of one averaged checkpoint."""
    snap = re.fullmatch(r"epoch_(\d+)\.weights\.h5", member.name)
    run = member.parent.parent if snap else member.parent
    averaged = RunFolder(run).read_run().get("averaged")
    if averaged and not snap:  # an average itself: its own evaluation, not the members' history
        return f"{run.name} (average of {len(averaged['members'])})", averaged["val_accuracy"]
    accs = _history(run)
    if snap:
        return f"{run.name} epoch {int(snap[1])}", accs[int(snap[1]) - 1]
    if member.name == LAST:
        return f"{run.name} last (epoch {len(accs)})", accs[-1]
    return f"{run.name} best (epoch {accs.index(max(accs)) + 1})", max(accs)


def row(avg: Path) -> str:
    meta = RunFolder(avg).read_run()["averaged"]
    members = [member_accuracy(Path(m)) for m in meta["members"]]
    accs = [a for _, a in members]
    names = [n for n, _ in members]
    what = f"{names[0]} … {names[-1]}" if len(names) > 3 else ", ".join(names)
    got = meta["val_accuracy"]
    return (f"| `{avg}` | {len(members)}: {what} | {min(accs):.4f} – {max(accs):.4f} | {sum(accs) / len(accs):.4f} "
            f"| **{got:.4f}** | {100 * (got - max(accs)):+.2f} pt |")


def table(runs: list[Path]) -> str:
    return "\n".join([
        "| averaged run | members | members' accuracy (logged) | their mean | average's accuracy | vs best member |",
        "|---|---|---:|---:|---:|---:|",
        *(row(r) for r in runs),
    ])


if __name__ == "__main__":
    print(table([Path(a) for a in sys.argv[1:]]))
