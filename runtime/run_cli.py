"""`edgefer run`: placeholder until the runtime command lands."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run detection + emotion recognition on a camera, video or images")
    p.set_defaults(func=lambda args: 0)
