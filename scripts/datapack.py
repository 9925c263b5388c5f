"""Pack a data folder into one file, and unpack it: how training data travels to a GPU machine.

A remote machine that cannot see ``../shared`` receives the FER2013 tree as one uncompressed
.npz (file bytes are kept as they are: JPEG does not compress further, and 36k small files
would cost more in archive headers than a tar's 512-byte blocks allow for).

Usage:
  python scripts/datapack.py pack ../shared/data/fer2013 .gpu/fer2013.npz --skip fer2013new.csv
  python scripts/datapack.py unpack .gpu/fer2013.npz /tmp/data/fer2013
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def pack(src: Path, dest: Path, skip: tuple[str, ...] = ()) -> int:
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name not in skip)
    if not files:
        raise SystemExit(f"pack: no files under {src}")
    blobs = [p.read_bytes() for p in files]
    sizes = np.fromiter((len(b) for b in blobs), np.int64, len(blobs))
    names = np.array([p.relative_to(src).as_posix() for p in files])
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez(dest, names=names, sizes=sizes, blob=np.frombuffer(b"".join(blobs), np.uint8))
    return len(files)


def unpack(pack_file: Path, dest: Path) -> int:
    with np.load(pack_file) as z:
        names, sizes, blob = z["names"], z["sizes"], z["blob"]
    ends = np.cumsum(sizes)
    if len(ends) and ends[-1] != len(blob):
        raise SystemExit(f"unpack: {pack_file} is truncated ({len(blob)} of {ends[-1]} bytes)")
    for name, end, size in zip(names, ends, sizes):
        out = dest / str(name)
        if ".." in out.relative_to(dest).parts:
            raise SystemExit(f"unpack: refusing path outside {dest}: {name}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob[end - size : end].tobytes())
    return len(names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="folder -> .npz")
    p.add_argument("src", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--skip", nargs="*", default=[], help="file names to leave out")
    u = sub.add_parser("unpack", help=".npz -> folder")
    u.add_argument("pack", type=Path)
    u.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "pack":
        n = pack(args.src, args.dest, tuple(args.skip))
        print(f"packed {n} files into {args.dest} ({args.dest.stat().st_size / 2**20:.1f} MiB)")
    else:
        print(f"unpacked {unpack(args.pack, args.dest)} files into {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
