"""Host-side wheel helpers for check.sh (stdlib only).

    wheeltool.py unpack DEST WHEEL...   unzip wheels into DEST keeping file modes (like pip, minus scripts)
    wheeltool.py requires WHEEL         print the wheel's Requires-Dist lines (the dependency cache key)
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def unpack(dest: Path, wheels: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for whl in wheels:
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                target = dest / info.filename
                z.extract(info, dest)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    target.chmod(mode | 0o644)


def requires(whl: str) -> None:
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if line.startswith("Requires-Dist:"):
                print(line)


if __name__ == "__main__":
    if sys.argv[1] == "unpack":
        unpack(Path(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "requires":
        requires(sys.argv[2])
    else:
        raise SystemExit(__doc__)
