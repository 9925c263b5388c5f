"""The ``edgefer`` command line.

``run`` lives in the runtime. The other subcommands (train, export, eval, inspect, bench)
come from other edgefer packages through the ``edgefer.commands`` entry-point group, so
the runtime never imports them: each entry point is a light ``register(subparsers)``
function, and heavy imports happen only inside the chosen command.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

EXIT_USAGE = 2


class CommandError(RuntimeError):
    """An error the user can fix; printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgefer",
        description=(
            "Facial emotion recognition on the edge: detect faces, read seven emotions, "
            "live from a camera, a video, images or a stream; train, export and benchmark models."
        ),
        epilog=(
            "examples:\n"
            "  edgefer run                      camera 0 (or the bundled sample clip if there is no camera)\n"
            "  edgefer run --source clip.mp4 --headless --jsonl out.jsonl\n"
            "  edgefer run --source photos/ --save annotated/\n"
            "Run 'edgefer COMMAND --help' for each command's options."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .models_cli import register as register_models
    from .run_cli import register as register_run

    register_run(sub)
    register_models(sub)
    for ep in sorted(entry_points(group="edgefer.commands"), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as exc:  # a broken plug-in must not take `edgefer run` down with it
            print(f"warning: command '{ep.name}' unavailable: {exc}", file=sys.stderr)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"edgefer {args.command}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
