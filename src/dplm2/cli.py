"""``dplm2 <stage>``: one subcommand per workflow stage; every Snakemake rule calls one of these.

Each stage package has a ``cli.py`` with ``register(subparsers)``; heavy imports (torch,
transformers) happen inside the command functions so ``dplm2 --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from dplm2 import __version__

# Stage packages, in pipeline order. Each provides ``<pkg>.cli.register(subparsers)``.
STAGES = (
    "dplm2.download",
    "dplm2.process",
    "dplm2.tokenizer",
    "dplm2.lm",
    "dplm2.generate",
    "dplm2.evaluate",
    "dplm2.embed",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dplm2",
        description="DPLM-2 workflow stages: download, process, tokenizer, lm, generate, "
        "evaluate. Run `dplm2 <stage> --help` for a stage's options.",
    )
    parser.add_argument("--version", action="version", version=f"dplm2 {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)
    for name in STAGES:
        try:
            module = importlib.import_module(f"{name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name in (name, f"{name}.cli"):
                continue  # stage not built in this checkout
            raise
        module.register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (Snakemake stopping its jobs, SLURM's time limit, the lifeline): unwinds like
    Ctrl-C, so atomic writes in progress are discarded and nothing half-written remains."""


def _terminate(signum, frame):
    # Ctrl-C reaches the job twice (the terminal's SIGINT, then Snakemake's SIGTERM): one stop.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("dplm2")
    if argv is None:  # the command line, not a test calling main([...]) in its own process
        from dplm2.lifeline import watch_from_env

        signal.signal(signal.SIGTERM, _terminate)
        watch_from_env()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        if argv is None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        how = "SIGTERM" if isinstance(exc, Terminated) else "an interrupt (SIGINT)"
        log.error("stopped by %s; files being written were discarded (a training keeps its "
                  "last complete checkpoint in state/ and resumes from it when run again)", how)
        return 143 if isinstance(exc, Terminated) else 130
    except (ValueError, FileNotFoundError) as exc:
        # Expected user errors: one clear line, no traceback.
        log.error("%s", exc)
        if args.verbose:
            raise
        return 2
    except OSError as exc:
        # Disk full, permissions, I/O errors: what happened and where, no traceback.
        log.error("%s", exc)
        if args.verbose:
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
