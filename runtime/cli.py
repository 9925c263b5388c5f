"""The ``edgefer`` command line.

``run``, ``serve``, ``models`` and ``bench`` live in the runtime. The other subcommands (train, export,
eval, inspect, average) come from other edgefer packages through the ``edgefer.commands`` entry-point group, so
the runtime never imports them: each entry point is a light ``register(subparsers)``
function, and heavy imports happen only inside the chosen command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from importlib.metadata import entry_points

from .errors import EXIT_USAGE, EdgeferError, UsageError

# Commands raise this for bad options; every EdgeferError prints the same way.
CommandError = UsageError
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGPIPE = 141  # what a shell reports for a writer whose reader went away (`| head`)
DEBUG_ENV = "EDGEFER_DEBUG"


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (an SSH session dropping): unwinds like Ctrl-C, so outputs are closed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind the command like Ctrl-C (only possible on the main thread)."""
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            with contextlib.suppress(ValueError):
                signal.signal(getattr(signal, name), _raise_terminated)


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
            "  edgefer bench --quick            how fast each detector and model runs on this machine\n"
            "Run 'edgefer COMMAND --help' for each command's options."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help=f"print the full traceback of an unexpected error (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .bench_cli import register as register_bench
    from .models_cli import register as register_models
    from .run_cli import register as register_run
    from .serve_cli import register as register_serve

    register_run(sub)
    register_serve(sub)
    register_models(sub)
    register_bench(sub)
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
    install_signal_handlers()
    prog = f"edgefer {args.command}"
    try:
        return int(args.func(args) or 0)
    except EdgeferError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_SIGPIPE
    except Terminated as exc:
        print(f"{prog}: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except OSError as exc:
        # An OS refusal (permissions, a full disk, a missing folder) is the user's to fix.
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{prog}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        if args.debug or os.environ.get(DEBUG_ENV):
            raise
        return EXIT_USAGE
    except Exception as exc:
        if args.debug or os.environ.get(DEBUG_ENV):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"{prog}: unexpected error: {type(exc).__name__}: {first} "
              f"(run 'edgefer --debug {args.command} ...' for the traceback)", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """The reader of stdout has gone: point stdout at /dev/null so the interpreter's final
    flush does not raise a second BrokenPipeError on the way out."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
