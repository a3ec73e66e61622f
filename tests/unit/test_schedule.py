"""Schedules (core/schedule.py): parsing, the hours they allow, the rules that enforce them,
and the one decision engine applying them at a frozen time."""

from __future__ import annotations

import datetime as dt

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.decision import UsageFacts, decide, decided_by
from camguard.core.models import DeviceKind
from camguard.core.rules import AppMatch, MatchBy, Mode, Origin, RuleError, Verdict, make_rule
from camguard.core.schedule import Schedule, schedule_rules

# 2026-12-07 is a Monday.
MONDAY = dt.datetime(2026, 12, 7, tzinfo=dt.UTC).timestamp()


def at(day: int, hh: int, mm: int = 0) -> FrozenClock:
    return FrozenClock(MONDAY + day * 86400 + hh * 3600 + mm * 60)


def test_parse_and_print_round_trip() -> None:
    s = Schedule.parse("Camera mon-fri 16:00-19:00; sat,sun 10:00-20:00")
    assert s.device == "camera" and s.kinds == (DeviceKind.CAMERA,)
    assert str(s) == "camera mon-fri 16:00-19:00; sat,sun 10:00-20:00"
    assert Schedule.parse(str(s)) == s
    assert Schedule.parse("all daily 08:00-20:00").kinds == (DeviceKind.CAMERA,
                                                             DeviceKind.MICROPHONE)


@pytest.mark.parametrize("text", ["", "camera", "screen mon 10:00-11:00", "camera mon 25:00-26:00",
                                  "camera funday", "camera " + "; mon" * 15, "x" * 2000,
                                  "camera mon 10:00-10:00", "camera\x00 mon"])
def test_bad_schedules_say_why(text: str) -> None:
    with pytest.raises(RuleError):
        Schedule.parse(text)


def test_allows_the_windows_only_overnight_included() -> None:
    s = Schedule.parse("camera mon-fri 16:00-19:00; fri 22:00-02:00")
    assert s.allows(0, 16 * 60) and s.allows(4, 18 * 60 + 59)
    assert not s.allows(0, 19 * 60) and not s.allows(5, 16 * 60)
    assert s.allows(4, 23 * 60) and s.allows(5, 60)  # Friday night into Saturday
    assert not s.allows(5, 2 * 60)


def test_blocked_windows_are_exactly_the_rest_of_the_week() -> None:
    for text in ("camera mon-fri 16:00-19:00; sat,sun 10:00-20:00",
                 "microphone fri 22:00-02:00", "all daily", "camera sun 00:00-24:00"):
        s = Schedule.parse(text)
        blocked = s.blocked_windows()
        for day in range(7):
            for minute in range(0, 1440, 7):
                inside = any(w.contains(day, minute) for w in blocked)
                assert inside != s.allows(day, minute), (text, day, minute)
    # The same hours on several days are one window.
    assert [str(w) for w in Schedule.parse("camera mon-fri 16:00-19:00").blocked_windows()] \
        == ["mon-fri 00:00-16:00", "mon-fri 19:00-24:00", "sat,sun"]
    assert Schedule.parse("camera daily").blocked_windows() == []


def test_the_decision_engine_blocks_outside_the_hours_only() -> None:
    rules, problems = schedule_rules(["camera mon-fri 16:00-19:00", "nonsense"])
    assert len(problems) == 1 and "nonsense" in problems[0]
    assert all(r.origin is Origin.POLICY and r.verdict is Verdict.BLOCK_DEVICE for r in rules)
    cam = UsageFacts(DeviceKind.CAMERA, "/usr/bin/zoom", "a" * 64, "zoom")
    mic = UsageFacts(DeviceKind.MICROPHONE, "/usr/bin/zoom", "a" * 64, "zoom")
    utc = dt.UTC
    inside = decide(rules, cam, Mode.ASK, at(0, 17), utc)
    assert inside.verdict is Verdict.ASK and inside.rule is None  # the mode asks, as always
    outside = decide(rules, cam, Mode.ASK, at(0, 20), utc)
    assert outside.verdict is Verdict.BLOCK_DEVICE
    assert decided_by(outside).startswith("rule:schedule: camera outside mon-fri 16:00-19:00")
    assert decide(rules, cam, Mode.ASK, at(5, 17), utc).verdict is Verdict.BLOCK_DEVICE
    assert decide(rules, mic, Mode.ASK, at(5, 17), utc).verdict is Verdict.ASK  # camera only
    # The account's own "Always allow" does not lift it; the parent's own allow for one app
    # (more specific) does.
    mine = make_rule("allow", app=AppMatch(MatchBy.EXE, "/usr/bin/zoom", "a" * 64),
                     kind="camera", label="always allow zoom")
    assert decide([*rules, mine], cam, Mode.ASK, at(0, 20), utc).verdict \
        is Verdict.BLOCK_DEVICE
    parents = make_rule("allow", app=AppMatch(MatchBy.EXE, "/usr/bin/zoom", "a" * 64),
                        kind="camera", label="school", origin=Origin.POLICY)
    assert decide([*rules, parents], cam, Mode.ASK, at(0, 20), utc).verdict is Verdict.ALLOW


def test_local_time_decides() -> None:
    rules, _ = schedule_rules(["camera mon-fri 16:00-19:00"])
    cam = UsageFacts(DeviceKind.CAMERA)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    # 15:00 UTC is 17:00 at UTC+2: inside the hours there.
    assert decide(rules, cam, Mode.ASK, at(0, 15), plus2).verdict is Verdict.ASK
    assert decide(rules, cam, Mode.ASK, at(0, 15), dt.UTC).verdict is Verdict.BLOCK_DEVICE
