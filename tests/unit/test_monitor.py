"""The monitor's own logic: diffing across sources, health events, sink and source failures."""

from __future__ import annotations

from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    EventType,
    HealthEvent,
    ProcessRef,
    SourceSnapshot,
    Usage,
    UsageEvent,
)
from tests.fakes import FakeSource
from tests.realenv import wait_until
from tests.watching import started, stopped, watching

CAM = Device(DeviceKind.CAMERA, "/dev/video0")
MIC = Device(DeviceKind.MICROPHONE, "pulse:mic")


def usage(dev: Device, pid: int) -> Usage:
    return Usage(dev, ProcessRef(pid, 1.0, name=f"p{pid}"))


def test_initial_usages_are_reported_then_only_changes() -> None:
    cam = FakeSource("cam")
    cam.push(SourceSnapshot("cam", frozenset([CAM]), frozenset([usage(CAM, 1)])))
    with watching([cam]) as (monitor, rec):
        rec.wait_for(started(1))
        cam.push(SourceSnapshot("cam", frozenset([CAM]), frozenset([usage(CAM, 2)])))
        rec.wait_for(started(2))
        assert [(e.type, e.usage.process.pid) for e in rec.usage_events()
                if e.usage.process] == [(EventType.STARTED, 1), (EventType.STOPPED, 1),
                                        (EventType.STARTED, 2)]
        stop_event = next(e for e in rec.usage_events() if e.type is EventType.STOPPED)
        assert stop_event.since is not None and stop_event.at >= stop_event.since
        assert [u.process.pid for u in monitor.state.usages if u.process] == [2]
        assert monitor.state.first_seen[usage(CAM, 2).key] > 0


def test_a_wake_from_one_source_does_not_rescan_the_others() -> None:
    cam, mic = FakeSource("cam"), FakeSource("mic")
    with watching([cam, mic]) as (_monitor, rec):
        looks = cam.looks
        mic.push(SourceSnapshot("mic", frozenset([MIC]), frozenset([usage(MIC, 3)])))
        rec.wait_for(started(3, "pulse:mic"))
        assert cam.looks == looks


def test_degraded_and_recovered_are_events_once() -> None:
    src = FakeSource("pulse")
    with watching([src]) as (_monitor, rec):
        src.push(SourceSnapshot("pulse", degraded=Degraded("pulse", "server down")))
        rec.wait_for(lambda e: isinstance(e, HealthEvent) and e.degraded is not None)
        src.push(SourceSnapshot("pulse", degraded=Degraded("pulse", "still down")))
        src.push(SourceSnapshot("pulse"))
        rec.wait_for(lambda e: isinstance(e, HealthEvent) and e.degraded is None)
        assert [e.degraded is None for e in rec.health_events()] == [False, True]


def test_failing_sink_and_failing_source_do_not_stop_the_monitor() -> None:
    src = FakeSource("cam")
    with watching([src]) as (monitor, rec):
        def bad_sink(_ev: object) -> None:
            raise ValueError("sink bug")

        monitor._sinks.insert(0, bad_sink)
        src.fail_next = True
        monitor.wake("cam")
        rec.wait_for(lambda e: isinstance(e, HealthEvent) and e.degraded is not None
                     and "internal error" in e.degraded.reason)
        src.push(SourceSnapshot("cam", frozenset([CAM]), frozenset([usage(CAM, 9)])))
        rec.wait_for(started(9))
        src.push(SourceSnapshot("cam", frozenset([CAM])))
        rec.wait_for(stopped(9))


def test_recheck_is_honoured_without_a_wake() -> None:
    src = FakeSource("cam")
    src.push(SourceSnapshot("cam", recheck_in=0.01))
    with watching([src]):
        first = src.looks
        wait_until(lambda: src.looks > first, 5, "a recheck look")


def test_events_are_frozen_dataclasses() -> None:
    ev = UsageEvent(EventType.STARTED, usage(CAM, 1), at=1.0)
    try:
        ev.at = 2.0  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("events must be immutable to cross threads safely")
