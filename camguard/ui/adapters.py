"""The controller's ports over camguard's real parts: the Killer, BlockManager, history, allow list.

Everything here runs on the controller's worker threads (never the GUI thread) and turns
failures into :class:`~camguard.core.blocks.ActionResult` values instead of raising.
"""

from __future__ import annotations

import logging
import os
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
from camguard.core.decision import OriginOf
from camguard.core.models import DeviceKind, MonitorEvent, ProcessRef, Usage, UsageEvent
from camguard.core.rules import AppMatch, MatchBy, RuleError, Verdict, make_rule
from camguard.core.state import UsageKey
from camguard.core.text import literal
from camguard.store.allowlist import AllowList, AllowStatus
from camguard.store.hashing import ExeHasher, Hasher, ScriptHasher
from camguard.store.history import HistoryStore
from camguard.store.rules import RuleFile
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

    def block_device(self, kind: DeviceKind, duration: float | None = None) -> ActionResult:
        if self._blocks is None:
            return ActionResult(Outcome.FAILED, UNAVAILABLE)
        with self._lock:
            return self._blocks.block(BlockTarget(kind.value), duration).result

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

    def __init__(self, allowlist: AllowList, clock: Clock, hasher: Hasher | None = None, *,
                 origin_of: OriginOf | None = None) -> None:
        self._list = allowlist
        self._clock = clock
        self._hash = hasher or ExeHasher()
        # Where an executable comes from: an entry for a package's file trusts the package.
        self._origin_of = origin_of

    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck:
        if not process.exe.startswith("/"):
            return AllowAnswer(False, "the executable is unknown")
        # Ask without a hash first: most apps are not listed, and hashing a 200 MB browser
        # for nothing would delay its alert by most of a second.
        verdict = self._list.is_allowed(process.exe, None, kind)
        if verdict.status is AllowStatus.NOT_LISTED:
            return verdict
        entry = verdict.entry
        origin = None
        if entry is not None and entry.origin is not None and self._origin_of is not None:
            origin = self._origin_of(process)
            if origin is not None:
                return self._list.is_allowed(process.exe, None, kind, origin)
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
        origin = None if self._origin_of is None else self._origin_of(process)
        try:
            entry = self._list.add(process.exe, digest, kind, self._clock.now(),
                                   note="allowed from the tray", origin=origin)
        except ValueError as exc:
            return ActionResult(Outcome.FAILED, str(exc))
        if entry.origin is not None and origin is not None:
            return ActionResult(Outcome.DONE, f"{shown} may use the {kind.value} from now on, "
                                f"as part of the {origin.describe()} (also after its verified "
                                "updates)")
        return ActionResult(Outcome.DONE, f"{shown} may use the {kind.value} from now on "
                            "(while its binary stays the same)")


class RuleAllower:
    """"Always allow" as a rule: one model of trust. The rules file gets an allow rule for
    this binary (its path and SHA-256) and device, so the Rules page, ``camguard rules
    list`` and ``rules explain`` say what the tray does; entries an older camguard put in
    the allow list still allow (``check`` asks it)."""

    def __init__(self, legacy: Allower | NullAllow, rules: RuleFile, clock: Clock,
                 hasher: Hasher | None = None) -> None:
        self._legacy = legacy
        self._rules = rules
        self._clock = clock
        self._hash = hasher or ExeHasher()
        self._script_hash = ScriptHasher()

    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck:
        return self._legacy.check(process, kind)

    def allow(self, process: ProcessRef, kind: DeviceKind) -> ActionResult:
        shown = literal(process.exe, 200)
        if not process.exe.startswith("/"):
            return ActionResult(Outcome.FAILED, "the executable is unknown, so it cannot be "
                                "allowed")
        # An interpreter running a script: the script is the app (not every Python program).
        by, what = (MatchBy.SCRIPT, "script") if process.script.startswith("/") \
            else (MatchBy.EXE, "binary")
        if by is MatchBy.SCRIPT:
            shown = literal(process.script, 200)
        digest = (self._script_hash if by is MatchBy.SCRIPT else self._hash)(process)
        if digest is None:
            return ActionResult(Outcome.FAILED, f"cannot read {shown}, so camguard cannot "
                                f"tell this {what} from another one at the same path")
        name = os.path.basename(process.script) if by is MatchBy.SCRIPT \
            else process.name or os.path.basename(process.exe)
        target = process.script if by is MatchBy.SCRIPT else process.exe
        try:
            rule = make_rule(Verdict.ALLOW, app=AppMatch(by, target, digest),
                             kind=kind, created_at=self._clock.now(),
                             label=f"always allow {name}"[:200])
            with self._rules.locked():
                contents = self._rules.load()
                if all(r.id != rule.id for r in contents.rules):
                    self._rules.save([*contents.rules, rule], contents.mode,
                                     self._clock.now())
        except (RuleError, OSError, ValueError) as exc:
            return ActionResult(Outcome.FAILED, f"the rule could not be saved: {exc}")
        return ActionResult(Outcome.DONE, f"rule '{rule.name}': {shown} may use the "
                            f"{kind.value} (while its {what} stays the same)")


class NullAllow:
    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck:
        return AllowAnswer(False, "no allow list")

    def allow(self, process: ProcessRef, kind: DeviceKind) -> ActionResult:
        return ActionResult(Outcome.FAILED, "the allow list is not available")
