"""Rules enforced by the service's worker on real processes: a school-day schedule lets the
camera through inside its window and ends the app outside it; decisions land in history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from camguard.app.service_parts import ServiceRules
from camguard.core.blocks import BlockManager
from camguard.core.clock import FrozenClock
from camguard.core.models import Device, DeviceKind, EventType, Usage, UsageEvent
from camguard.core.rules import Verdict, make_rule
from camguard.platform.linux.block import LinuxBlocker
from camguard.platform.linux.kill import Killer
from camguard.platform.process import ProcessDescriber
from camguard.service.enforcement import Enforcement
from camguard.service.hub import EventHub
from camguard.store.blocks import JsonBlockStore
from camguard.store.history import HistoryStore
from camguard.store.policy import ManagedPolicy, TomlPolicyReader
from camguard.store.rules import RuleFile
from tests.conftest import Holder

MONDAY_5PM = 1795453200.0  # 2026-11-23 17:00 UTC, a Monday


def test_a_schedule_allows_inside_its_window_and_ends_the_app_outside(
        tmp_path: Path, devdir: Path, holders: list[Holder]) -> None:
    node = devdir / "video0"
    node.write_bytes(b"")
    first = Holder([node])
    holders.append(first)
    me = ProcessDescriber().describe(first.pid)  # whose processes the rules name
    assert me is not None
    RuleFile(tmp_path / "rules.json").save([
        make_rule("kill", kind="camera", user=me.user, label="no camera"),
        make_rule("allow", kind="camera", user=me.user, window="mon-fri 16:00-19:00",
                  label="homework hours")])
    clock = FrozenClock(MONDAY_5PM)
    history = HistoryStore(tmp_path / "h.sqlite3", clock, hash_exes=False)
    killer = Killer()
    blocks = BlockManager(clock, JsonBlockStore(tmp_path / "blocks.json"),
                          LinuxBlocker((str(node),), (), helper=None, killer=killer))
    hub = EventHub()
    seen = hub.subscribe(lambda item: True)
    enforce = Enforcement(
        ServiceRules(RuleFile(tmp_path / "rules.json"),
                     ManagedPolicy(TomlPolicyReader(tmp_path / "none.toml"))),
        killer, blocks, clock, decisions=history, publish=hub.publish, tz=dt.UTC)
    cam = Device(DeviceKind.CAMERA, str(node))

    inside = Holder([node])
    holders.append(inside)
    usage = Usage(cam, ProcessDescriber().describe(inside.pid))
    history.open_session(usage, clock.now())
    got = enforce.enforce(usage)
    assert got is not None and got[0].verdict is Verdict.ALLOW and got[1] is None
    assert got[0].rule is not None and got[0].rule.label == "homework hours"
    assert inside.proc.poll() is None

    clock.advance(3 * 3600)  # 20:00: outside the window
    outside = Holder([node])
    holders.append(outside)
    usage = Usage(cam, ProcessDescriber().describe(outside.pid))
    history.record_event(UsageEvent(EventType.STARTED, usage, clock.now()))
    got = enforce.enforce(usage)
    assert got is not None and got[0].verdict is Verdict.KILL and got[1] is not None
    assert got[1].ok, got[1].message
    assert outside.proc.wait(15) is not None
    assert inside.proc.poll() is None
    [rec] = [r for r in history.sessions() if r.pid == outside.pid]
    assert got[0].rule is not None and got[0].rule.label == "no camera"
    # The tray's vocabulary and "who decided" format (core.decision): one for both.
    assert (rec.decision, rec.decided_by) == ("killed", "rule:no camera")
    events = [seen.get(1.0), seen.get(1.0)]
    assert [e.payload["verdict"] for e in events if e is not None] == ["allow", "kill"]

    enforce.pause(600)
    paused = Holder([node])
    holders.append(paused)
    assert enforce.enforce(Usage(cam, ProcessDescriber().describe(paused.pid))) is None
    clock.advance(601)  # the pause ran out
    assert enforce.paused() == (False, None)
    history.close()


def test_a_use_that_started_while_paused_is_not_judged_after_the_resume(tmp_path: Path) -> None:
    """The monitor publishes its state before calling its sinks, so a client can see a use
    and resume before the enforcement sink gets the event: it must judge by the event's
    time, not by when the event reaches it."""
    clock = FrozenClock(MONDAY_5PM)
    enforce = Enforcement(
        ServiceRules(RuleFile(tmp_path / "rules.json"),
                     ManagedPolicy(TomlPolicyReader(tmp_path / "none.toml"))),
        Killer(), None, clock, tz=dt.UTC)  # type: ignore[arg-type]
    enforce.pause(None)
    clock.advance(10)
    started_at = clock.now()
    clock.advance(5)
    enforce.resume()
    clock.advance(1)
    assert enforce.paused_at(started_at)           # started during the pause
    assert not enforce.paused_at(clock.now())      # after the resume: judged
    assert not enforce.paused_at(MONDAY_5PM - 1)   # before the pause: judged
    enforce.pause(60)
    clock.advance(61)                              # this pause ran out by itself
    assert enforce.paused() == (False, None)
    assert enforce.paused_at(clock.now() - 30) and not enforce.paused_at(clock.now())
