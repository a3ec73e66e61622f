"""Options shared by every subcommand, and the error type that means "user mistake"."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from camguard.core.settings import DetectionSettings
from camguard.store import paths
from camguard.store.settings import load_detection_settings


class CliError(Exception):
    """A problem the user can fix; shown as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _device_glob(value: str) -> str:
    if not value.startswith("/") or "\x00" in value:
        raise argparse.ArgumentTypeError(f"must be an absolute path pattern, got {value!r}")
    return value


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
        "--config", type=Path, default=default, metavar="FILE",
        help="settings file (default: settings.json in the user config folder)")
    parser.add_argument(
        "--events-file", type=Path, default=default, metavar="PATH",
        help="JSON-lines event log (default: the events_file setting, else events.jsonl in "
        "the state folder)")
    parser.add_argument(
        "--socket", type=Path, default=default, metavar="PATH",
        help="the camguard service's socket: status, watch, history, kill, block and "
        "unblock go through it (default: /run/camguard/camguard.sock when a service runs)")
    parser.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0,
        help="log more (repeat for debug output)")


def detection_settings(args: argparse.Namespace) -> DetectionSettings:
    """The settings file, overridden by the command line; problems go to stderr."""
    config = args.config or paths.config_dir() / "settings.json"
    settings, problems = load_detection_settings(config)
    for problem in problems:
        print(f"camguard: warning: {problem}", file=sys.stderr)
    changes: dict[str, tuple[str, ...]] = {}
    if args.camera_glob:
        changes["camera_globs"] = tuple(args.camera_glob)
    if args.mic_glob:
        changes["mic_globs"] = tuple(args.mic_glob)
    if not changes:
        return settings
    from dataclasses import replace

    return replace(settings, **changes)  # type: ignore[arg-type]
