"""The kill switch of a user's camguard (the commands and the tray): the process killer
and the BlockManager over this OS's enforcer, with blocks kept in the user's state folder.
The system service builds its own in app/service.py (root, no privilege prompt)."""

from __future__ import annotations

from typing import Any

from camguard.core.blocks import BlockManager, ProcessKiller
from camguard.core.settings import DetectionSettings
from camguard.platform import current
from camguard.platform.clock import SystemClock
from camguard.store.blocks import JsonBlockStore


def build_killer(settings: DetectionSettings) -> ProcessKiller:
    return current().killer(settings.sound_server_exes)


def build_block_manager(settings: DetectionSettings, *, killer: ProcessKiller | None = None,
                        mic: Any = None) -> BlockManager:
    """The kill switch over the configured devices. ``mic``: a long-lived microphone
    watcher (the tray's), so microphones that appear during a block are muted too; None for
    one-shot use."""
    enforcer = current().enforcer(settings, killer or build_killer(settings), mic_control=mic)
    return BlockManager(SystemClock(), JsonBlockStore(), enforcer)
