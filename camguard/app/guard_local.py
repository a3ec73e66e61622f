"""The Guard answered by this program, with no service: its own look at the devices, the
user's history database, the user's killer and BlockManager (app/killswitch.py) and the
local parental lock. Answers in the same objects as the service's Guard (app/guard.py)."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.app.guard import (
    AskPassword,
    Blocks,
    GuardError,
    History,
    LockState,
    Part,
    Reply,
    Status,
    Watching,
    WatchItem,
    block_line,
    lifted_parts,
    report_reply,
    result_reply,
)
from camguard.core.blocks import (
    ActionResult,
    ActiveBlock,
    BlockManager,
    BlockOptions,
    BlockTarget,
    Outcome,
)
from camguard.core.coverage import coverage_list
from camguard.core.models import MonitorEvent, ProcessRef, Usage, UsageEvent
from camguard.core.origin import ExeOrigin
from camguard.core.serialize import event_dict, rfc3339, state_dict
from camguard.core.settings import DetectionSettings
from camguard.core.text import json_safe, literal
from camguard.platform.clock import SystemClock
from camguard.store import paths

if TYPE_CHECKING:  # imported where used: a command loads only what it runs (issue 16)
    from camguard.core.coverage import Coverage
    from camguard.core.state import GuardState
    from camguard.monitor import Monitor
    from camguard.store.db import Database
    from camguard.store.parental_lock import LockCheck, LockGuard


def needs_keeper(blocks: Sequence[ActiveBlock], uid: int) -> bool:
    """A timed block to end, or a block that guards ``uid``'s openers: with no tray, only
    a keeper process (cli/keeper.py) keeps its word."""
    return any(b.until is not None or uid in b.guarded_uids() for b in blocks)


def local_lock() -> LockGuard:
    """The parental lock of a user's camguard (no service), for a command: it prints a
    refusal itself, so the lock does not log it too."""
    from camguard.store.parental_lock import FILE_NAME, LockGuard

    return LockGuard(paths.config_dir() / FILE_NAME, SystemClock(), report=False)


def block_doc(b: ActiveBlock, now: float) -> dict[str, Any]:
    """One block in ``blocks --json``, with what each step saved (it is the user's own)."""
    left = b.left(now)
    return {
        "kind": b.kind.value,
        "since": rfc3339(b.since),
        "until": rfc3339(b.until),
        "seconds_left": None if left is None else round(left, 3),
        "how": [{"kind": s.kind.value, "target": json_safe(s.target),
                 "saved": _saved_doc(s.saved)} for s in b.steps],
    }


def _saved_doc(saved: str | None) -> dict[str, Any] | None:
    """What a step saved, as the platform wrote it (permission bits shown in octal)."""
    if saved is None:
        return None
    doc = json.loads(saved)
    mode = doc.get("mode")
    if isinstance(mode, int) and not isinstance(mode, bool):
        doc["mode"] = f"{mode:04o}"
    return {k: json_safe(v) if isinstance(v, str) else v for k, v in doc.items()}


class _LocalWatch:
    """The monitor's events until closed (Ctrl-C or SIGTERM)."""

    def __init__(self, monitor: Monitor) -> None:
        self._monitor = monitor
        self._events: queue.Queue[MonitorEvent | None] = queue.Queue()
        self._stop = threading.Event()
        self._closed = False
        monitor.add_sink(self._events.put)
        if threading.current_thread() is threading.main_thread():
            # The handler only ends the iteration: it runs on the main thread between two
            # bytecodes, possibly inside monitor.start(), where stopping the monitor would
            # race its own start. Whoever iterates calls close() afterwards.
            signal.signal(signal.SIGTERM, lambda _s, _f: self._end_iteration())
        monitor.start()
        state = monitor.state
        cams = sum(1 for d in state.devices if d.kind.value == "camera")
        self.banner = (f"watching {cams} camera(s) and {len(state.devices) - cams} "
                       "microphone(s); Ctrl-C to stop")

    def __iter__(self) -> Iterator[WatchItem]:
        while not self._stop.is_set():
            try:
                ev = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            if ev is None:
                return
            # Looked up here, on the reader's thread, never on the monitor's.
            p = ev.usage.process if isinstance(ev, UsageEvent) else None
            yield WatchItem(ev, event_dict(ev, None if p is None else _origin_of(p)))

    def _end_iteration(self) -> None:
        self._stop.set()
        self._events.put(None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._end_iteration()
            self._monitor.stop()


def _origin_of(process: ProcessRef) -> ExeOrigin | None:
    from camguard.platform import origin_of  # lazily: only status and watch need it

    return origin_of(process)


def _usage_origin(usage: Usage) -> ExeOrigin | None:
    return None if usage.process is None else _origin_of(usage.process)


def status_document(state: GuardState, coverage: Sequence[Coverage]) -> dict[str, Any]:
    """``camguard status --json``'s document from a state whose start times are filled in
    (live_status.with_since): one look's here, or a running tray's (it answers ``status``
    with its monitor's, cli/tray_status.py), so both are the one document."""
    doc = state_dict(state, _usage_origin)
    doc["coverage"] = coverage_list(coverage)
    return doc


def _checked(answer: LockCheck) -> Reply:
    if not answer.ok:
        raise GuardError(answer.message, outcome=Outcome.REFUSED.value)
    return Reply(Outcome.DONE, answer.message)


class LocalGuard:
    """camguard answered by this program. ``settings`` is called at most once, when a
    command first needs the devices (reading them prints their problems)."""

    where = "this program (no camguard service answers)"

    def __init__(self, settings: Callable[[], DetectionSettings], *,
                 db: Path | None = None) -> None:
        self._settings_of = settings
        self._db = db
        self._clock = SystemClock()

    @cached_property
    def _settings(self) -> DetectionSettings:
        return self._settings_of()

    def _manager(self) -> BlockManager:
        from camguard.app.killswitch import build_block_manager

        return build_block_manager(self._settings)

    def status(self) -> Status:
        from camguard.app.detection import build_detection
        from camguard.app.live_status import with_live_history, with_since

        detection = build_detection(self._settings)
        state = with_since(with_live_history(detection.look_once()))
        return Status(state, status_document(state, detection.coverage()))

    def status_doc(self) -> Mapping[str, Any]:
        return self.status().doc

    def watch(self) -> Watching:
        from camguard.app.detection import build_detection

        return _LocalWatch(build_detection(self._settings).monitor())

    def history(self, filters: Mapping[str, Any], limit: int | None) -> History:
        from camguard.store.db import default_path
        from camguard.store.history import HistoryStore
        from camguard.store.tamper import history_records

        path = self._db if self._db is not None else default_path()
        if not path.exists():
            return History([], [], None, [], missing=path)
        store = HistoryStore(None, self._clock, hash_exes=False,
                             db=self._open_read_only(path, own=self._db is None))
        try:
            warnings = [store.warning] if store.warning else []
            records, audits = history_records(store, filters, None, limit)
            return History(records, [a.to_dict() for a in audits], None, warnings)
        finally:
            store.close()

    def _open_read_only(self, path: Path, *, own: bool) -> Database:
        """The database at ``path``, opened read-only: a file the user named is never moved,
        rewritten or created. camguard's own default file, if damaged, is recovered as every
        camguard start recovers it (kept aside, a fresh one started)."""
        from camguard.store.db import Database, DatabaseUnreadable

        try:
            return Database(path, self._clock, read_only=True)
        except DatabaseUnreadable as exc:
            if not own:
                raise GuardError(f"{literal(str(path), 300)}: {exc}; the file was left "
                                 "untouched") from exc
        return Database(path, self._clock)

    def kill(self, pid: int, create_time: float | None, *, force: bool) -> Reply:
        from camguard.app.killswitch import build_killer

        result: ActionResult = build_killer(self._settings).kill(pid, create_time,
                                                                  force=force)
        return result_reply(result)

    def block(self, target: BlockTarget, seconds: float | None, options: BlockOptions
              ) -> Reply:
        manager = self._manager()
        report = manager.block(target, seconds, options)
        # Expired blocks are lifted after, not before: lifting an expired camera block
        # first and then blocking the camera again would open it for a moment.
        lifted = manager.expire_due()
        blocks, _ = manager.active()
        now = self._clock.now()
        off = tuple(block_line(b, now) for b in blocks if b.kind in target.kinds) \
            if any(r.ok for _, r in report.parts) else ()
        return report_reply(report, lifted=lifted_parts(lifted), now_off=off,
                            keeper=needs_keeper(blocks, os.geteuid()),
                            problems=(*report.problems, *lifted.problems))

    def unblock(self, target: BlockTarget, ask: AskPassword) -> Reply:
        from camguard.store.parental_lock import require_unlock

        answer = require_unlock(local_lock(), ask)
        if not answer.ok:
            raise GuardError(f"unblocking the {target.value}: "
                             f"{answer.message or 'the parental lock needs its password'}",
                             outcome=Outcome.REFUSED.value)
        manager = self._manager()
        lifted = manager.expire_due()
        report = manager.unblock(target)
        return report_reply(report, lifted=lifted_parts(lifted),
                            problems=(*lifted.problems, *report.problems))

    def panic(self) -> Reply:
        manager = self._manager()
        report = manager.panic()
        lifted = manager.expire_due()  # nothing of camera or microphone is due now
        return report_reply(report, lifted=lifted_parts(lifted),
                            keeper=needs_keeper(manager.active()[0], os.geteuid()),
                            problems=(*report.problems, *lifted.problems))

    def blocks(self) -> Blocks:
        manager = self._manager()
        lifted = manager.expire_due()
        blocks, problems = manager.active()
        now = self._clock.now()
        every = (*lifted.problems, *problems)
        doc = {"blocks": [block_doc(b, now) for b in blocks],
               "lifted": [k.value for k, r in lifted.parts if r.ok],
               "problems": [json_safe(p) for p in every]}
        return Blocks(tuple(block_line(b, now) for b in blocks), lifted_parts(lifted),
                      tuple(every), doc,
                      lifted.result.outcome if lifted.parts else Outcome.DONE)

    def pause(self, seconds: float | None, ask: AskPassword) -> Reply:
        raise GuardError("pausing the rules needs the camguard service (the tray has its "
                         "own Pause)")

    def resume(self) -> Reply:
        raise GuardError("resuming the rules needs the camguard service (the tray has its "
                         "own Pause)")

    def lock_status(self) -> LockState:
        guard = local_lock()
        return LockState(str(guard.path), guard.status())

    def lock_set(self, new: Callable[[], str], ask: AskPassword) -> Reply:
        """Raises ValueError for a password the lock does not take."""
        guard = local_lock()
        current = ask() if guard.is_set() else None
        return _checked(guard.set_password(new(), current))

    def lock_clear(self, ask: AskPassword) -> Reply:
        guard = local_lock()
        if not guard.is_set():
            return Reply(Outcome.DONE, "no parental lock is set")
        return _checked(guard.clear(ask()))

    def rules(self) -> None:
        """This program decides by the user's rules under the policy, which ``camguard rules
        list`` reads itself."""
        return None


__all__ = ["LocalGuard", "Part", "local_lock", "needs_keeper"]
