"""The controller's ports over camguard's real parts: the Killer, BlockManager, history, allow list.

Everything here runs on the controller's worker threads (never the GUI thread) and turns
failures into :class:`~camguard.core.blocks.ActionResult` values instead of raising.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Set

from camguard.core.blocks import (
    ActionResult,
    BlockManager,
    BlockTarget,
    Outcome,
    ProcessKiller,
)
from camguard.core.clock import Clock
from camguard.core.models import DeviceKind, MonitorEvent, ProcessRef, Usage, UsageEvent
from camguard.core.state import UsageKey
from camguard.core.text import literal
from camguard.store.allowlist import AllowList, AllowStatus
from camguard.store.hashing import ExeHasher, Hasher
from camguard.store.history import HistoryStore
from camguard.ui.ports import AllowAnswer, AllowCheck

log = logging.getLogger(__name__)

_MAX_REMEMBERED = 4096
UNAVAILABLE = "the kill switch is not available on this system yet"


class Actions:
    """:class:`~camguard.ui.ports.ActionsPort` over a killer and a :class:`BlockManager`.

    Either may be None where the platform has none yet: the action then says so.
    Blocks from the tray last until turned back on (timed ones come from the CLI).
    """

    def __init__(self, killer: ProcessKiller | None, blocks: BlockManager | None) -> None:
        self._killer = killer
        self._blocks = blocks
        # BlockManager wants one caller at a time per process (core/blocks.py).
        self._lock = threading.Lock()

    def kill(self, process: ProcessRef) -> ActionResult:
        if self._killer is None:
            return ActionResult(Outcome.FAILED, UNAVAILABLE)
        return self._killer.kill(process.pid, process.create_time)

    def block_device(self, kind: DeviceKind) -> ActionResult:
        if self._blocks is None:
            return ActionResult(Outcome.FAILED, UNAVAILABLE)
        with self._lock:
            return self._blocks.block(BlockTarget(kind.value), None).result

    def unblock_device(self, kind: DeviceKind, password: str | None = None) -> ActionResult:
        # ``password`` is for the service; the tray asked for its own lock already.
        if self._blocks is None:
            return ActionResult(Outcome.FAILED, UNAVAILABLE)
        with self._lock:
            return self._blocks.unblock(BlockTarget(kind.value)).result

    def blocked(self) -> Set[DeviceKind]:
        """Blocks in force, after lifting the ones whose time ran out while we were away."""
        if self._blocks is None:
            return frozenset()
        with self._lock:
            lifted = self._blocks.expire_due()
            for kind, result in lifted.parts:
                log.info("%s block expired: %s", kind.value, result.message)
            blocks, problems = self._blocks.active()
        for problem in problems:
            log.warning("blocks: %s", problem)
        return frozenset(b.kind for b in blocks)


class HistoryRecorder:
    """A Monitor sink that stores sessions, and the :class:`~camguard.ui.ports.HistoryPort`.

    It remembers the session id of every usage it recorded (not only open ones, as
    ``HistoryStore.session_for`` does), so a decision taken after the app already stopped
    still lands on its session. Register it before the UI's sink: sinks run in order, so
    the session exists by the time the controller hears of the usage.
    """

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self._ids: dict[UsageKey, int] = {}
        self._lock = threading.Lock()

    def __call__(self, ev: MonitorEvent) -> None:
        if not isinstance(ev, UsageEvent):
            return
        try:
            session_id = self.store.record_event(ev)
        except Exception:
            log.exception("could not record a %s usage in the history", ev.type.value)
            return
        with self._lock:
            self._ids[ev.usage.key] = session_id
            if len(self._ids) > _MAX_REMEMBERED:
                self._ids.pop(next(iter(self._ids)))

    def record_decision(self, usage: Usage, decision: str, decided_by: str) -> None:
        with self._lock:
            session_id = self._ids.get(usage.key)
        if session_id is None:
            session_id = self.store.session_for(usage.key)
        if session_id is None:
            log.warning("no history session for a %s decision; not recorded", decision)
            return
        self.store.record_decision(session_id, decision, decided_by)


class NullHistory:
    """Records nothing: no history database here, or the service keeps the history."""

    def __init__(self, why: str = "history unavailable") -> None:
        self._why = why

    def record_decision(self, usage: Usage, decision: str, decided_by: str) -> None:
        log.info("%s: %s by %s not recorded here", self._why, decision, decided_by)


class Allower:
    """:class:`~camguard.ui.ports.AllowPort` over the allow list (path plus SHA-256)."""

    def __init__(self, allowlist: AllowList, clock: Clock, hasher: Hasher | None = None) -> None:
        self._list = allowlist
        self._clock = clock
        self._hash = hasher or ExeHasher()

    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck:
        if not process.exe.startswith("/"):
            return AllowAnswer(False, "the executable is unknown")
        # Ask without a hash first: most apps are not listed, and hashing a 200 MB browser
        # for nothing would delay its alert by most of a second.
        verdict = self._list.is_allowed(process.exe, None, kind)
        if verdict.status is AllowStatus.NOT_LISTED:
            return verdict
        return self._list.is_allowed(process.exe, self._hash(process), kind)

    def allow(self, process: ProcessRef, kind: DeviceKind) -> ActionResult:
        shown = literal(process.exe, 200)
        if not process.exe.startswith("/"):
            return ActionResult(Outcome.FAILED, "the executable is unknown, so it cannot be "
                                "allowed")
        digest = self._hash(process)
        if digest is None:
            return ActionResult(Outcome.FAILED, f"cannot read {shown}, so camguard cannot "
                                "tell this binary from another one at the same path")
        try:
            self._list.add(process.exe, digest, kind, self._clock.now(),
                           note="allowed from the tray")
        except ValueError as exc:
            return ActionResult(Outcome.FAILED, str(exc))
        return ActionResult(Outcome.DONE, f"{shown} may use the {kind.value} from now on "
                            "(while its binary stays the same)")


class NullAllow:
    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck:
        return AllowAnswer(False, "no allow list")

    def allow(self, process: ProcessRef, kind: DeviceKind) -> ActionResult:
        return ActionResult(Outcome.FAILED, "the allow list is not available")
