"""``camguard tray`` (and plain ``camguard``): the tray application.

Qt is imported only inside the command (through camguard.ui.shell), so every other
subcommand starts without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from camguard.app import build_detection
from camguard.cli.common import CliError, detection_settings
from camguard.core.settings import DetectionSettings

if TYPE_CHECKING:
    from camguard.core.blocks import BlockManager
    from camguard.platform.linux.kill import Killer

log = logging.getLogger(__name__)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tray", parents=[common],
                       help="the tray icon with alerts and the kill switch (the default)")
    p.set_defaults(func=cmd_tray)


def cmd_tray(args: argparse.Namespace) -> int:
    if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort the process with a fatal error; say it in one line instead.
        raise CliError("no graphical session (DISPLAY and WAYLAND_DISPLAY are unset); "
                       "`camguard watch` works in a terminal")
    try:
        from camguard.ui.shell import run_tray
    except ImportError as exc:
        raise CliError(f"the tray needs PySide6: pip install 'camguard[gui]' ({exc})") from None
    settings = detection_settings(args)
    detection = build_detection(settings)
    killer, blocks = _kill_switch(settings)
    return run_tray(detection.monitor(), detection.clock, killer=killer, blocks=blocks,
                    argv=[sys.argv[0] if sys.argv else "camguard"])


def _kill_switch(settings: DetectionSettings) -> tuple[Killer | None, BlockManager | None]:
    """The Linux kill switch, or nothing (the tray then says it is unavailable)."""
    if not sys.platform.startswith("linux"):
        return None, None
    from camguard.cli.actions import build_block_manager, build_killer

    try:
        return build_killer(settings), build_block_manager(settings)
    except Exception:
        log.exception("the kill switch could not be set up")
        return None, None
