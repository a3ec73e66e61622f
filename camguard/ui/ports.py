"""What the tray's controller needs from the rest of camguard, as Protocols (no Qt here).

Threads: the controller never calls a port on the GUI thread; every call runs on one of its
worker threads (see :class:`camguard.ui.bridge.Worker`). Each method may therefore block
(a kill waits seconds for the process to end, a privilege prompt waits for the user, hashing
a large executable takes a good part of a second) but must not raise for expected
conditions: a vanished process or a missing privilege is an :class:`ActionResult`.
"""

from __future__ import annotations

import enum
from collections.abc import Set
from dataclasses import dataclass
from typing import Protocol

from camguard.core.blocks import ActionResult
from camguard.core.decision import Choice
from camguard.core.models import DeviceKind, ProcessRef, Usage


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """How alerts behave (the settings window edits these; defaults here)."""

    # Seconds an alert waits for an answer before ``default_decision`` is applied.
    countdown: float = 30.0
    # Allow once by default: killing a video call because nobody looked is worse than
    # letting an app the user just started keep the camera it asked for.
    default_decision: Choice = Choice.ALLOW_ONCE
    # Seconds an alert for an app that already stopped stays up, saying so, before it goes.
    stopped_linger: float = 8.0
    # Send the alert as a desktop notification. One surface at a time: the settings turn
    # this on only with the popup off (store.ui_settings.CHANNELS).
    notifications: bool = False
    # A parental lock is set: Escape on the popup gives ``default_decision`` instead of
    # "Allow once" (the child must not be able to wave an alert away).
    parental: bool = False
    # Show the alert popup. Off ("notification only"): the notification offers the same
    # answers and the countdown still applies the default when nobody answers.
    popup: bool = True
    # Pause (SIGSTOP) an app while its alert waits for an answer (core/freeze.py).
    freeze: bool = False
    # Seconds an open by a probe-storming app must last before it is asked about
    # (core/probes.py; the detection setting ``probe_threshold``).
    storm_wait: float = 1.5


class AllowCheck(Protocol):
    """A verdict from the allow list (camguard.store.allowlist.AllowVerdict fits)."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AllowAnswer:
    """An :class:`AllowCheck` made here (no allow list, or an executable not known)."""

    allowed: bool
    reason: str


class ActionsPort(Protocol):
    """The kill switch. Runs on a worker thread; may block for seconds."""

    def kill(self, process: ProcessRef) -> ActionResult:
        """End ``process``, refusing if its pid now names another process (create time)."""
        ...

    def block_device(self, kind: DeviceKind, duration: float | None = None) -> ActionResult:
        """Switch every ``kind`` device off for ``duration`` seconds (None: until
        :meth:`unblock_device`)."""
        ...

    def unblock_device(self, kind: DeviceKind, password: str | None = None) -> ActionResult:
        """Switch ``kind`` back on. ``password``: the parental lock's, for a service that
        checks it itself (the tray checks its own lock before calling)."""
        ...

    def blocked(self) -> Set[DeviceKind]:
        """Device kinds blocked now (read at start-up, so the tray shows a block in force)."""
        ...


class Gate(enum.StrEnum):
    """What the rules say to do with a new usage before anyone is asked."""

    ASK = "ask"
    FREEZE = "freeze"  # ask, with the app paused until the answer
    ALLOW = "allow"
    KILL = "kill"
    BLOCK = "block"


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """A rules verdict for one usage (camguard.core.decision.Decision, for the controller)."""

    gate: Gate
    explanation: str  # a sentence for people, e.g. "camera blocked by rule 'homework'"
    decided_by: str = ""  # for the history: "rule:<label>" or "mode:<mode>"
    # Notify-only mode: nothing is enforced, but the user is told what would have happened.
    notify: bool = False
    # Already carried out elsewhere (the service acted on its rules): the tray only tells
    # the person, and neither acts again nor records it a second time.
    done: bool = False
    # Rules that nearly matched, and why not ("the file no longer matches its Debian
    # package firefox-esr"): an alert says why it asks again.
    notes: tuple[str, ...] = ()
    # The service paused the app already (as root, until the answer reaches it): the tray
    # shows it paused and does not pause it again; until when at the latest (wall time).
    paused: bool = False
    paused_until: float | None = None


class RulesPort(Protocol):
    """The rules in force. Runs on a worker thread (reads the rules and policy files, and
    hashes the executable when an exe rule needs it: up to a second)."""

    def judge(self, usage: Usage) -> RuleOutcome: ...


class HistoryPort(Protocol):
    """Where decisions are recorded. Runs on a worker thread; about a millisecond a call."""

    def record_decision(self, usage: Usage, decision: str, decided_by: str) -> None: ...


class AllowPort(Protocol):
    """The allow list. Runs on a worker thread (hashing an executable may take a second)."""

    def check(self, process: ProcessRef, kind: DeviceKind) -> AllowCheck: ...

    def allow(self, process: ProcessRef, kind: DeviceKind) -> ActionResult: ...
