"""Freeze while asking in the service (core/freeze.py, as root: anyone's app), for
:class:`~camguard.service.enforcement.Enforcement`: a "freeze" verdict, or "ask" while the
policy's ``freeze_while_asking`` is on, pauses the app until its account's answer reaches
the service (``decide``), the usage ends, the freezer's limit passes or the service stops.

Only while someone can answer (service/answers.py): a subscriber that answers (a tray's
``watch`` with ``answers`` whose alerts are not paused) must see the usage. Otherwise the
app is not paused, and the history's note of that session says why; and when the last such
subscriber leaves or pauses its alerts, each app paused for it is let go at once (noted
too), not left hanging until the freezer's limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from camguard.core.decision import Choice, Decision
from camguard.core.freeze import FreezeWhileAsking
from camguard.core.models import DeviceKind, Usage
from camguard.core.rules import Verdict
from camguard.core.state import UsageKey
from camguard.core.text import literal

log = logging.getLogger("camguard.service.enforcement")

NOBODY = "not paused while asking: no camguard tray that answers for {user} is connected"
LET_GO = "let go while asking: no camguard tray that answers for {user} is connected now"


class Notes(Protocol):
    """Where the history keeps a session's note (HistoryStore)."""

    def add_note(self, session_id: int, text: str) -> bool: ...


class ServiceFreeze:
    """The service's pauses. ``answerable``: whether an answering subscriber sees a usage
    (service/hub.EventHub.answerable; None: assume so). Any thread (a lock)."""

    def __init__(self, freeze: FreezeWhileAsking, freeze_on: Callable[[], bool], *,
                 answerable: Callable[[Usage], bool] | None = None,
                 notes: Notes | None = None) -> None:
        self._freeze = freeze
        self._freeze_on = freeze_on  # the policy's freeze_while_asking, read per usage
        self._answerable = answerable
        self._notes = notes
        self._lock = threading.Lock()
        self._after_block: dict[str, list[UsageKey]] = {}  # kind -> paused until its block
        self._held: dict[UsageKey, tuple[Usage, int | None]] = {}  # and its session

    def hold(self, usage: Usage, decision: Decision, session: int | None) -> bool:
        """Pause the app while its account is asked, if the verdict wants it and someone
        can answer. Whether it is paused now."""
        if not (decision.verdict is Verdict.FREEZE
                or (decision.verdict is Verdict.ASK and self._freeze_on())):
            return False
        if self._answerable is not None and not self._answerable(usage):
            self._note(session, NOBODY, usage)
            return False
        held = self._freeze.hold(usage.key, usage.process)
        log.info("%s: %s", literal(usage.device.id, 200), literal(held.message, 300))
        if held.ok:
            with self._lock:
                self._held[usage.key] = (usage, session)
        return held.ok

    def paused_until(self, key: UsageKey) -> float | None:
        return self._freeze.paused_until(key)

    def answered(self, key: UsageKey, decision: str | None) -> None:
        """A person answered (a Choice value), or the usage ended (None): continue its app
        (end it for "killed"; for "blocked" once the block has run, :meth:`blocked`)."""
        if decision == Choice.BLOCK.value and self._freeze.is_frozen(key):
            with self._lock:
                self._after_block.setdefault(key[0], []).append(key)
            return
        with self._lock:
            self._held.pop(key, None)
        released = self._freeze.release(key, decision)
        if released is not None:
            log.info("continued after the answer: %s", literal(released.message, 300))

    def blocked(self, kinds: Sequence[DeviceKind]) -> None:
        """A block of ``kinds`` ran (done or refused): continue the apps paused until it."""
        with self._lock:
            keys = [k for kind in kinds for k in self._after_block.pop(kind.value, [])]
        for key in keys:
            self.answered(key, None)

    def let_go_unanswered(self) -> list[UsageKey]:
        """Continue each paused app no answering subscriber can see now (its tray left or
        paused its alerts); the keys let go."""
        answerable = self._answerable
        if answerable is None:
            return []
        with self._lock:
            held = list(self._held.values())
        gone = [(u, s) for u, s in held if not answerable(u)]
        for usage, session in gone:
            self.answered(usage.key, None)
            self._note(session, LET_GO, usage)
        return [u.key for u, _s in gone]

    def close(self) -> None:
        self._freeze.close()

    def _note(self, session: int | None, text: str, usage: Usage) -> None:
        user = literal(usage.process.user, 100) if usage.process is not None \
            and usage.process.user else "its account"
        line = text.format(user=user)
        log.info("%s: %s", literal(usage.device.id, 200), line)
        if self._notes is not None and session is not None:
            try:
                self._notes.add_note(session, line)
            except Exception:
                log.exception("could not note why an app was not paused")
