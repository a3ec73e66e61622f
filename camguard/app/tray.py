"""The tray's long-lived parts for a user's camguard, built here and nowhere else: the
history store, the rules file and parental lock its settings window edits, the kill switch
with the tray's microphone watcher, and the guard that ends this account's openers of a
blocked camera. cli/tray.py reads the command line and hands these to ui/shell.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.core.blocks import BlockManager, ProcessKiller
from camguard.core.clock import Clock
from camguard.core.settings import DetectionSettings
from camguard.platform import current
from camguard.platform.clock import SystemClock
from camguard.store.db import default_path
from camguard.store.history import HistoryStore
from camguard.store.history_record import SessionRecord
from camguard.store.parental_lock import LockGuard
from camguard.store.parental_lock import default_path as lock_path
from camguard.store.rules import RuleFile

if TYPE_CHECKING:
    from camguard.app.guard_service import ServiceGuard
    from camguard.app.service_feed import ServiceRuleFile
    from camguard.platform.guard import UserGuard

log = logging.getLogger(__name__)


def open_history(clock: Clock, path: Path | None = None) -> HistoryStore | None:
    """The user's history database (``path`` None: the data folder's), orphaned sessions of
    an earlier run closed; None when it cannot be opened (the tray runs without history)."""
    try:
        from camguard.app.detection import warm_origins
        from camguard.platform import origin_of

        store = HistoryStore(path or default_path(), clock, origin_of=origin_of)
        warm_origins()
    except Exception:
        # The store moves a damaged file aside by itself; this is for the unforeseen.
        log.exception("the history database cannot be opened; running without history")
        return None
    if store.warning:
        log.warning("history: %s", store.warning)
    closed = store.close_orphans(clock.now())
    if closed:
        log.info("closed %d session(s) left open by an earlier camguard", closed)
    return store


def own_sessions() -> Callable[[SessionRecord], bool]:
    """Which history sessions are camguard's own checks: those of this very process (the
    self-test run from the settings window opens each device itself), by identity (pid and
    start time), never by name: an app calling itself camguard is not hidden. Sessions of
    an earlier run's self-test carry nothing that tells them apart, so they stay shown."""
    import os

    import psutil

    me = os.getpid()
    try:
        started = psutil.Process(me).create_time()
    except (psutil.Error, OSError):
        return lambda _rec: False

    def own(rec: SessionRecord) -> bool:
        return rec.pid == me and rec.create_time is not None \
            and abs(rec.create_time - started) < 0.01

    return own


def rule_file() -> RuleFile:
    """The user's rules.json (the settings window and ``camguard rules`` edit it)."""
    return RuleFile()


def service_rule_file(guard: ServiceGuard) -> ServiceRuleFile:
    """The user's rules.json in service mode: each save also hands the rules to the
    service, which enforces them on this account's processes (app/service_feed.py)."""
    from camguard.app.service_feed import ServiceRuleFile

    return ServiceRuleFile(guard, rule_file().path)


def parental_lock() -> LockGuard:
    """The user's own parental lock (no service)."""
    return LockGuard(lock_path(), SystemClock())


def mic_control() -> Any:
    """The tray's long-lived MicControl: while the microphone is blocked, its watcher keeps
    muting sources that appear or get unmuted. None where there is no libpulse."""
    return current().mic_control()


def kill_switch(settings: DetectionSettings, mic: Any = None
                ) -> tuple[ProcessKiller | None, BlockManager | None]:
    """The Linux kill switch (the CLI's, with the tray's MicControl), or nothing: the tray
    then says it is unavailable."""
    if not sys.platform.startswith("linux"):
        return None, None
    try:
        from camguard.app.killswitch import build_block_manager, build_killer

        killer = build_killer(settings)
        return killer, build_block_manager(settings, killer=killer, mic=mic)
    except Exception:
        log.exception("the kill switch could not be set up")
        return None, None


def user_guard(blocks: BlockManager, kill: Callable[..., Any], clock: Clock) -> UserGuard:
    """Ends this account's openers of a device blocked without privileges (a monitor sink)."""
    from camguard.platform.guard import UserGuard

    return UserGuard(lambda: blocks.active()[0], kill, clock.now,
                     current().probes().process_owner)
