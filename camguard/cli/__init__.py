"""The ``camguard`` command: parses arguments and dispatches to the subcommand modules.

No Qt import here or in the headless subcommands (status, watch, devices, history...): a
test asserts it. Each subcommand module has a ``register(subparsers, common)`` function.

Startup is lazy (issue 16): :data:`COMMANDS` names every command with its one-line help, so
``--version``, ``--help`` and finding which command was asked for import no subcommand
module; only the chosen command's module is imported and registered, and each module
imports its stores, service client, rules, psutil or sound-server client only when its
command runs. ``tests/unit/test_cli_imports.py`` keeps the table equal to what the modules
register and keeps ``--version`` free of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

from camguard import __version__

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

# Every command: (the cli module that registers it, its help line), in the order `--help`
# lists them. A module's commands are adjacent.
COMMANDS: dict[str, tuple[str, str]] = {
    "tray": ("tray", "the tray icon with alerts and the kill switch (the default)"),
    "status": ("detect", "who uses each device right now"),
    "watch": ("detect", "print a line for every device session that starts or stops"),
    "devices": ("detect", "list cameras and microphones"),
    "history": ("history", "past camera and microphone sessions, newest first"),
    "kill": ("actions", "end a process (SIGTERM, then SIGKILL after 3 s)"),
    "block": ("actions", "switch the camera and/or microphone off"),
    "unblock": ("actions", "switch the camera and/or microphone back on"),
    "blocks": ("actions", "what is switched off, how, and until when"),
    "panic": ("actions", "everything off now, until you turn it back on"),
    "keep-blocks": ("keeper", "end timed blocks on time and guard blocked devices (block and "
                    "panic start it; it exits when no block needs it)"),
    "rules": ("rules", "list, add and remove rules (allow, ask, kill, block-device)"),
    "policy": ("policy", "the managed policy (IT, parents)"),
    "service": ("service", "the system service: watches, records and enforces for every "
                "account, and serves the socket API (run as root, by systemd)"),
    "lock": ("service", "the parental lock: a password that guards unblock, pause, quit and "
             "rule changes"),
    "pause": ("service", "stop enforcing the rules for a while (through the service)"),
    "resume": ("service", "enforce the rules again"),
    "selftest": ("selftest", "use each camera and microphone and prove camguard sees and "
                 "blocks them"),
    "forensics": ("forensics", "decode OS records of camera and microphone use (any OS)"),
}
MODULE_NAMES = tuple(dict.fromkeys(module for module, _help in COMMANDS.values()))


def command_module(name: str) -> ModuleType:  # noqa: PLR0911 (one return per module)
    """The cli module called ``name``, imported now. Plain import statements, so that the
    bundler (PyInstaller) still finds every module."""
    if name == "tray":
        from camguard.cli import tray

        return tray
    if name == "detect":
        from camguard.cli import detect

        return detect
    if name == "history":
        from camguard.cli import history

        return history
    if name == "actions":
        from camguard.cli import actions

        return actions
    if name == "keeper":
        from camguard.cli import keeper

        return keeper
    if name == "rules":
        from camguard.cli import rules

        return rules
    if name == "policy":
        from camguard.cli import policy

        return policy
    if name == "service":
        from camguard.cli import service

        return service
    if name == "selftest":
        from camguard.cli import selftest

        return selftest
    if name == "forensics":
        from camguard.cli import forensics

        return forensics
    raise KeyError(name)


def build_parser(modules: Iterable[str] = MODULE_NAMES, *, stubs: bool = True
                 ) -> argparse.ArgumentParser:
    """The parser; the commands of ``modules`` fully, every other command as a stub that
    only names itself (enough for ``--help`` and to find which command was asked for).
    ``stubs=False``: no stubs, for parsing a command already known to be asked for (~1.5
    ms of a command's start; issue 16)."""
    # The common options are accepted both before and after the subcommand. The copy given
    # to subparsers uses SUPPRESS defaults so it cannot overwrite values given before it.
    from camguard.cli.common import add_common_options

    load = set(modules)
    parser_class = _parser_class()
    parser = parser_class(
        prog="camguard",
        description="See which program uses your camera or microphone, and switch it off.",
    )
    parser.add_argument("--version", action="version", version=f"camguard {__version__}")
    add_common_options(parser, suppress=False)
    common = parser_class(add_help=False)
    add_common_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    for name, (module, help_line) in COMMANDS.items():
        if module in load:
            load.discard(module)
            command_module(module).register(sub, common)
        elif stubs and name not in sub.choices:
            sub.add_parser(name, help=help_line, add_help=False)
    return parser


def _columns() -> int:
    """``shutil.get_terminal_size().columns``, as argparse's help asks for it, without
    importing shutil (bz2, lzma, zlib: ~1.7 ms): argparse makes a help formatter to check
    every option it is given, so each command paid for it (issue 16)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parser_class() -> type[argparse.ArgumentParser]:
    """ArgumentParser whose help formatter is told the terminal's width (_columns)."""
    import argparse

    class Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             _columns() - 2 if width is None else width)

    class Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", Formatter)
            super().__init__(*args, **kwargs)

    return Parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """Which command ``argv`` asks for, found by the real top-level options with every
    command a stub (``--version`` and ``--help`` print and exit here)."""
    if argv and argv[0] in COMMANDS:
        # A first word that is no option is the command: what the stub parser would find,
        # without building it (~2 ms of a command's start; issue 16).
        return argv[0]
    args, _rest = build_parser(()).parse_known_args(argv)
    command: str | None = args.command
    return command


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911
    process = argv is None  # the console script's call: this is the whole process
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:
        # What argparse would print, before importing it: argparse and the modules it
        # loads (re, gettext, shutil) cost about as much as Python's own start (issue 16).
        print(f"camguard {__version__}")
        return 0
    if argv[:1] == ["service-mic"]:
        # Hidden (no help, no parser): what the service runs as each logged-in account to
        # mute ("off") or restore ("on") its microphones (platform/linux/user_mic.py).
        if argv[1:] not in (["off"], ["on"]):
            print("camguard: error: service-mic takes off or on", file=sys.stderr)
            return 2
        from camguard.platform import service_mic_child

        return service_mic_child(argv[1])
    if argv[:1] == ["freeze-watchdog"]:
        # Hidden: the watchdog a freezing camguard starts as its own executable, so the
        # PyInstaller bundle starts it too (platform/linux/freeze.py).
        if len(argv) != 2:
            print("camguard: error: freeze-watchdog takes a journal path", file=sys.stderr)
            return 2
        from camguard.platform import freeze_watchdog

        return freeze_watchdog(argv[1])
    if argv[:1] == ["service-pulse"]:
        # Hidden: what the service runs as each logged-in account to follow the apps
        # recording at its sound server (platform/linux/user_pulse.py).
        if argv[1:] not in ([], ["once"]):
            print("camguard: error: service-pulse takes nothing or once", file=sys.stderr)
            return 2
        from camguard.platform import service_pulse_child

        return service_pulse_child(once=argv[1:] == ["once"])
    if argv == ["service-portal"]:
        # Hidden: what the service runs as each logged-in account to read its Flatpak
        # location grants (platform/linux/user_portal.py).
        from camguard.platform import service_portal_child

        return service_portal_child()
    from camguard.cli.argtypes import join_dashed_values
    from camguard.cli.common import CliError

    argv = join_dashed_values(argv)
    command = chosen_command(argv)
    if command is None:
        argv = [*argv, *_default_command()]
        command = _default_command()[0]
    args = build_parser([COMMANDS[command][0]], stubs=False).parse_args(argv)
    if not getattr(args, "configures_logging", False):
        configure_logging(args)
    try:
        result: int = args.func(args)
        if process and getattr(args, "exit_now", False):
            # A command that printed all it had and holds nothing open (history --json's
            # own reader: no thread, no log, its database closed) ends here: Python's
            # teardown of the modules it loaded is ~4 ms, 10% of its run (issue 16). Only
            # as the process's entry point (argv not given), never inside a caller.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(result)
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


def configure_logging(args: argparse.Namespace) -> None:
    """Where and how much camguard logs (-v, -vv). ``main`` does it before running the
    command, unless the command says it will itself (``configures_logging``): a path that
    loads nothing that logs then skips importing logging (~5 ms; issue 16)."""
    import logging  # here: --version and --help do not need it

    logging.basicConfig(
        level=logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else
        logging.WARNING,
        format="camguard: %(levelname)s: %(name)s: %(message)s",
    )


def _default_command() -> list[str]:
    """What plain ``camguard`` does: start the tray."""
    return ["tray"]
