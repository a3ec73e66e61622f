"""A person's answers through the service: the words a ``decide`` may use, and ``asking``,
by which a tray says whether it answers now (its alerts paused or not).

Freeze while asking in the service (service/enforcement.py) pauses an app only while a
subscriber that answers (a tray's ``watch`` with ``answers``, service/hub.py) can see its
usage: with no tray of that account (or an admin's) connected, or with its alerts paused,
nobody would answer, and the app would hang until the freezer's limit for nothing. When a
tray pauses its alerts it sends ``asking`` off: the service lets go, at once, each app it
paused that no other answering tray can see, and pauses none until ``asking`` is on again.
"""

from __future__ import annotations

from typing import Any

from camguard.core.decision import Choice, DecidedBy
from camguard.core.freeze import FROZEN_MARK
from camguard.core.models import DeviceKind
from camguard.service import protocol as P
from camguard.service.authorization import Caller
from camguard.service.hub import EventHub

CHOICES = frozenset(c.value for c in Choice)
# Who may be named by a ``decide``: people and the countdown. The service's own rules
# record their decisions themselves; nobody may write "rule:..." into the history. An app
# paused while asked is recorded so (core.freeze.FROZEN_MARK: "user:popup (frozen)").
PEOPLE = frozenset(d.value + mark for d in DecidedBy for mark in ("", FROZEN_MARK))


def decide_problem(kind: str, decision: str, by: str) -> str | None:
    """What is wrong with a ``decide``'s words, or None: each from its vocabulary."""
    if kind not in {k.value for k in DeviceKind}:
        return f"decide.kind must be one of {', '.join(k.value for k in DeviceKind)}"
    if decision not in CHOICES:
        return f"decide.decision must be one of {', '.join(sorted(CHOICES))}"
    if by not in PEOPLE:
        return (f"decide.decided_by must be one of {', '.join(sorted(PEOPLE))} (rules "
                "record their own decisions)")
    return None


def asking(hub: EventHub, caller: Caller, on: bool) -> dict[str, Any]:
    """The caller's tray answers again (``on``) or not (its alerts are paused): its watch
    streams (same uid and pid) are switched; off lets go what only it could answer about."""
    watches = hub.set_answering((caller.uid, caller.pid), on)
    if not watches:
        return P.error(P.NOT_FOUND, "no watch of this process is open: watch with "
                       "answers first")
    return P.ok(asking=on, watches=watches)
