"""The ``camguard`` command: parses arguments and dispatches to the subcommand modules.

No Qt import here or in the headless subcommands (status, watch, devices, history...): a
test asserts it. Each subcommand module has a ``register(subparsers, common)`` function.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from camguard import __version__
from camguard.cli import (
    actions,
    detect,
    forensics,
    history,
    keeper,
    policy,
    rules,
    selftest,
    service,
    tray,
)
from camguard.cli.argtypes import join_dashed_values
from camguard.cli.common import CliError, add_common_options

log = logging.getLogger(__name__)

# Subcommand modules, in the order `--help` lists them. Each has register(subparsers, common).
COMMAND_MODULES = [tray, detect, history, actions, keeper, rules, policy, service, selftest,
                   forensics]


def build_parser() -> argparse.ArgumentParser:
    # The common options are accepted both before and after the subcommand. The copy given
    # to subparsers uses SUPPRESS defaults so it cannot overwrite values given before it.
    parser = argparse.ArgumentParser(
        prog="camguard",
        description="See which program uses your camera or microphone, and switch it off.",
    )
    parser.add_argument("--version", action="version", version=f"camguard {__version__}")
    add_common_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    add_common_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = join_dashed_values(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else
        logging.WARNING,
        format="camguard: %(levelname)s: %(name)s: %(message)s",
    )
    if args.command is None:
        args = parser.parse_args([*argv, *_default_command()])
    try:
        result: int = args.func(args)
        return result
    except CliError as exc:
        print(f"camguard: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (`camguard watch | head`): not an error worth a traceback.
        sys.stderr.close()
        return 0


def _default_command() -> list[str]:
    """What plain ``camguard`` does: start the tray."""
    return ["tray"]
