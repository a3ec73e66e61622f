"""Options shared by every subcommand, and the error type that means "user mistake"."""

from __future__ import annotations

import argparse
import sys

from camguard.cli.argtypes import existing_file

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name). The rest is
# imported where used: every command's parser imports this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from camguard.core.settings import DetectionSettings
    from camguard.store.policy import PolicyReader, PolicyStatus

# The managed settings that are also detection settings: a policy's value wins over the
# user's file (and over a command-line glob when the policy locks it) for every command.
MANAGED_DETECTION = ("camera_globs", "mic_globs", "watch_sound_server", "rescan_interval")


# The exit codes every command uses (the README and the man page list them).
EXIT_DONE = 0  # success
EXIT_FAILED = 1  # a runtime failure
EXIT_BAD_ARGS = 2  # a mistake on the command line (argparse's own code, too)
EXIT_REFUSED = 3  # refused: protected process, locked setting, wrong or missing password
EXIT_NOT_FOUND = 4  # no such process or device


class CliError(Exception):
    """A problem the user can fix; shown as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _device_glob(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise argparse.ArgumentTypeError(f"must be an absolute path pattern, got {value!r}")
    return value


def _path(value: str) -> Path:
    from pathlib import Path  # here: pathlib costs ~3 ms that --version does not need

    return Path(value)


def add_common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--camera-glob", action="append", type=_device_glob, default=default,
        metavar="GLOB", help="device path pattern for cameras (repeatable; replaces the "
        "default /dev/video*)")
    parser.add_argument(
        "--mic-glob", action="append", type=_device_glob, default=default, metavar="GLOB",
        help="device path pattern for raw microphone nodes (repeatable; replaces the default "
        "/dev/snd/pcmC*D*c)")
    parser.add_argument(
        "--config", type=existing_file, default=default, metavar="FILE",
        help="settings file (default: settings.json in the user config folder)")
    parser.add_argument(
        "--events-file", type=_path, default=default, metavar="PATH",
        help="JSON-lines event log (default: the events_file setting, else events.jsonl in "
        "the state folder)")
    parser.add_argument(
        "--socket", type=_path, default=default, metavar="PATH",
        help="the camguard service's socket: status, watch, history, kill, block and "
        "unblock go through it (default: /run/camguard/camguard.sock when a service runs)")
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0,
        help="log more (repeat for debug output)")


def settings_path(args: argparse.Namespace) -> Path:
    from camguard.store import paths

    config: Path | None = getattr(args, "config", None)
    return config or paths.config_dir() / "settings.json"


def policy_reader(args: argparse.Namespace) -> PolicyReader:
    """``--policy-file`` where a command has it, else ``CAMGUARD_POLICY_FILE``, else the
    system's policy (/etc/camguard/policy.toml, or the registry on Windows)."""
    from camguard.platform import current
    from camguard.store import paths

    given: Path | None = getattr(args, "policy_file", None)
    if given is None:
        given = paths.policy_file_override()
    return current().policy_source(given)


def load_policy(args: argparse.Namespace) -> PolicyStatus:
    from camguard.app.settings import managed_policy

    return managed_policy(policy_reader(args), report=False).load()  # printed by the caller


def detection_settings(args: argparse.Namespace, policy: PolicyStatus | None = None
                       ) -> DetectionSettings:
    """The settings file, then the managed policy, then the command line (unless the policy
    locks the setting); problems go to stderr."""
    from dataclasses import replace

    from camguard.core.text import literal
    from camguard.store.policy import effective_settings, load_user_settings
    from camguard.store.settings import load_detection_settings

    config = settings_path(args)
    settings, problems = load_detection_settings(config)
    status = policy if policy is not None else load_policy(args)
    if status.error:
        print(f"camguard: error: {literal(status.error, 500)}", file=sys.stderr)
    user, _more = load_user_settings(config)  # its problems are the ones just printed
    eff = effective_settings(user, status.policy)
    changes: dict[str, Any] = {
        name: eff.value(name) for name in MANAGED_DETECTION if eff.items[name].source == "policy"}
    for problem in dict.fromkeys([*problems, *eff.problems]):
        print(f"camguard: warning: {literal(problem, 500)}", file=sys.stderr)
    for name, option, given in (("camera_globs", "--camera-glob", args.camera_glob),
                                ("mic_globs", "--mic-glob", args.mic_glob)):
        if not given:
            continue
        if eff.locked(name):
            print(f"camguard: warning: {option} ignored: {eff.refusal(name)}",
                  file=sys.stderr)
        else:
            changes[name] = tuple(given)
    return replace(settings, **changes) if changes else settings
