"""``camguard keep-blocks``: a block keeps its word when no other camguard runs.

A timed block (``block camera --for 5s``) used to stay on until some later camguard command
noticed it had expired, and a block without privileges (platform/guard.py) was enforced only
while the tray ran (issue 17). ``block`` and ``panic`` now start this keeper in the
background: it lifts each timed block when its time is up and, for a block that guards
this account, ends the account's processes that open the device. One keeper per account
(a lock file); it exits when nothing is left for it to do. The tray and the service keep
their own timers; a keeper beside them only finds the work already done.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.cli.common import detection_settings

if TYPE_CHECKING:  # the rest is imported when the keeper runs (issue 16)
    from camguard.core.blocks import ActiveBlock
    from camguard.core.settings import DetectionSettings

log = logging.getLogger(__name__)

# Look again at least this often: another command may have lifted or replaced a block.
RECHECK_S = 60.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "keep-blocks", parents=[common],
        help="end timed blocks on time and guard blocked devices (block and panic start it; "
        "it exits when no block needs it)")
    p.set_defaults(func=cmd_keep_blocks)


def lock_path() -> Path:
    from camguard.store import paths

    return paths.private_dir(paths.state_dir()) / "keeper.lock"


def next_wait(blocks: Sequence[ActiveBlock], now: float) -> float:
    """Seconds until the next block ends, at most :data:`RECHECK_S`."""
    ends = [b.until - now for b in blocks if b.until is not None]
    return max(0.0, min([RECHECK_S, *ends]))


def cmd_keep_blocks(args: argparse.Namespace) -> int:
    from camguard.store.files import held_by_us

    settings = detection_settings(args)
    with held_by_us(lock_path()) as sole:
        if not sole:
            log.info("another keeper runs for this account")
            return 0
        return keep(settings)


def keep(settings: DetectionSettings, stop: threading.Event | None = None) -> int:
    """Run until no block needs a keeper (or ``stop`` is set, or SIGTERM/SIGINT)."""
    from camguard.app.guard_local import needs_keeper
    from camguard.app.killswitch import build_block_manager, build_killer
    from camguard.platform.clock import SystemClock
    from camguard.store import paths

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    clock = SystemClock()
    killer = build_killer(settings)
    manager = build_block_manager(settings, killer=killer)
    uid = os.geteuid()
    guard = monitor = None
    changed = _Changes(paths.state_dir(), stop)
    try:
        while not stop.is_set():
            report = manager.expire_due()
            if report.parts:
                log.info("timed block ended: %s", report.result.message)
            blocks, _problems = manager.active()
            if not needs_keeper(blocks, uid):
                break
            if monitor is None and any(uid in b.guarded_uids() for b in blocks):
                from camguard.app import build_detection
                from camguard.platform import current
                from camguard.platform.guard import UserGuard

                guard = UserGuard(lambda: manager.active()[0], killer.kill, clock.now,
                                  current().probes().process_owner)
                monitor = build_detection(settings).monitor()
                monitor.add_sink(guard)
                monitor.start()
            changed.wait(next_wait(blocks, clock.now()))
    finally:
        if monitor is not None:
            monitor.stop()
        if guard is not None:
            guard.close()
        changed.close()
    return 0


class _Changes:
    """Wakes the keeper when the blocks file changes (another command lifted or replaced a
    block), when ``stop`` is set, or when the wait times out. Falls back to the timeout
    alone where inotify is not available."""

    def __init__(self, folder: Path, stop: threading.Event) -> None:
        self._stop = stop
        self._inotify: Any = None
        try:
            from inotify_simple import INotify
            from inotify_simple import flags as f

            self._inotify = INotify()
            self._inotify.add_watch(str(folder), f.CLOSE_WRITE | f.MOVED_TO | f.DELETE)
        except (ImportError, OSError) as exc:
            log.debug("no inotify on %s (%s): looking again every %.0f s", folder, exc,
                      RECHECK_S)
            self._inotify = None

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._inotify is None:
                self._stop.wait(min(left, 1.0))
                continue
            # Short slices so SIGTERM (stop) is noticed within a second.
            events = self._inotify.read(timeout=int(min(left, 1.0) * 1000))
            # Only the blocks file itself: reading it takes a lock file in the same folder,
            # whose close would otherwise wake the keeper again at once, for ever.
            if any(ev.name == _blocks_file() for ev in events):
                return

    def close(self) -> None:
        if self._inotify is not None:
            self._inotify.close()


def _blocks_file() -> str:
    from camguard.store.blocks import FILE_NAME

    return FILE_NAME


def start_keeper(args: argparse.Namespace) -> None:
    """Start ``camguard keep-blocks`` in the background with this command's device and
    settings options (it exits at once if one already runs, or if nothing needs it)."""
    argv = [sys.executable, "-m", "camguard", "keep-blocks"]
    for glob in getattr(args, "camera_glob", None) or ():
        argv += ["--camera-glob", glob]
    for glob in getattr(args, "mic_glob", None) or ():
        argv += ["--mic-glob", glob]
    if getattr(args, "config", None) is not None:
        argv += ["--config", str(args.config)]
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except OSError as exc:
        print(f"camguard: warning: timed blocks end only when camguard next runs: {exc}",
              file=sys.stderr)
