"""Probes are not alarms (core/probes.py): which sessions are probes, and a storm surfaced
once. The filter is pure; the monitor's use of it is in tests/integration/test_probes.py."""

from __future__ import annotations

from camguard.core.models import Device, DeviceKind, EventType, ProcessRef, Usage, UsageEvent
from camguard.core.probes import ProbeFilter, ProbeSettings

CAM = Device(DeviceKind.CAMERA, "/dev/video0")
NODE = Device(DeviceKind.CAMERA, "pipewire:cam")
T0 = 1_800_000_000.0


def use(pid: int, via: str = "fd", exe: str = "/usr/bin/prober", dev: Device = CAM) -> Usage:
    return Usage(dev, ProcessRef(pid, float(pid), "prober", exe, user="alice"), via=via)


def stop(u: Usage, since: float, at: float) -> UsageEvent:
    return UsageEvent(EventType.STOPPED, u, at, since)


def test_a_short_device_node_session_is_a_probe_and_a_long_one_is_not() -> None:
    f = ProbeFilter(ProbeSettings(threshold=1.5, storm=0))
    (short,) = f.stopped(stop(use(1), T0, T0 + 0.02))
    (long,) = f.stopped(stop(use(2), T0, T0 + 1.5))
    assert short.probe and not long.probe


def test_streams_and_links_that_carried_data_are_never_probes() -> None:
    f = ProbeFilter(ProbeSettings(threshold=1.5, storm=1))
    for via in ("stream", "pipewire", "usb"):
        (ev,) = f.stopped(stop(use(3, via=via), T0, T0 + 0.01))
        assert not ev.probe


def test_more_than_n_probes_a_minute_is_one_storm_and_then_opens_are_marked_not_held(
        ) -> None:
    f = ProbeFilter(ProbeSettings(threshold=1.5, storm=3))
    storms = []
    for i in range(8):
        at = T0 + i
        for ev in f.stopped(stop(use(100 + i), at, at + 0.05)):
            if ev.type is EventType.PROBE_STORM:
                storms.append(ev)
    assert len(storms) == 1  # the 4th probe within the minute; never again while it lasts
    (storm,) = storms
    assert storm.count == 4 and storm.since == T0 + 0.05
    assert "4 opens under 1.5 s" in storm.usage.note
    assert "close within 1.5 s are kept in history without a popup" in storm.usage.note

    # While it lasts, the app's next open is announced at once, marked: only its question
    # waits (ui/controller.py), the rules and history see it now.
    opened = f.started(UsageEvent(EventType.STARTED, use(200), T0 + 10))
    assert opened.storm and opened.at == T0 + 10
    # Another app, a use that carries data, or a stop is not marked.
    assert not f.started(UsageEvent(EventType.STARTED, use(300, exe="/usr/bin/zoom"),
                                    T0 + 10)).storm
    assert not f.started(UsageEvent(EventType.STARTED, use(201, via="stream"), T0 + 10)).storm
    (stopped,) = f.stopped(stop(use(200), T0 + 10, T0 + 10.2))
    assert stopped.probe and not stopped.storm
    # Storms turned off: nothing is marked.
    off = ProbeFilter(ProbeSettings(threshold=1.5, storm=0))
    for i in range(20):
        off.stopped(stop(use(400 + i), T0 + i, T0 + i + 0.05))
    assert not off.started(UsageEvent(EventType.STARTED, use(500), T0 + 30)).storm


def test_a_storm_ends_after_a_quiet_window_and_a_new_one_is_surfaced_again() -> None:
    f = ProbeFilter(ProbeSettings(threshold=1.5, storm=2, window=60.0))

    def burst(start: float) -> int:
        return sum(ev.type is EventType.PROBE_STORM
                   for i in range(5)
                   for ev in f.stopped(stop(use(int(start) + i), start + i, start + i + 0.1)))

    assert burst(T0) == 1
    assert burst(T0 + 30) == 0  # the same storm
    assert not f.started(UsageEvent(EventType.STARTED, use(9), T0 + 200)).storm  # over
    assert burst(T0 + 300) == 1


def test_a_linked_client_without_data_is_a_probe_when_it_goes_and_a_use_when_it_flows() -> None:
    f = ProbeFilter(ProbeSettings(storm=0))
    idle = use(7, via="pipewire", dev=NODE)
    assert f.idle_links([], [idle], set(), T0) == []
    events = f.idle_links([], [], set(), T0 + 0.4)
    assert [(e.type, e.since, e.at) for e in events] == [(EventType.PROBE, T0, T0 + 0.4)]
    # Linked, then flowing: a use (the diff announces it), never a probe.
    f.idle_links([], [idle], set(), T0 + 1)
    assert f.idle_links([idle], [], set(), T0 + 1.2) == []
    assert f.idle_links([], [], {idle.key}, T0 + 2) == []


def test_probes_count_toward_a_storm_by_app_not_by_process() -> None:
    f = ProbeFilter(ProbeSettings(storm=2))
    kinds = [ev.type for i in range(3)
             for ev in f.stopped(stop(use(50 + i), T0 + i, T0 + i + 0.1))]
    assert kinds.count(EventType.PROBE_STORM) == 1  # three processes, one executable


def test_probe_events_cross_the_service_protocol_as_they_are() -> None:
    """The service sends its monitor's events to trays as JSON (core/serialize.py) and the
    tray reads them back (app/service_decode.py): a probe, a marked stop, a storm, and an
    open during one."""
    from camguard.app.service_decode import event_from_dict
    from camguard.core.serialize import event_dict

    u = use(5)
    for ev in (UsageEvent(EventType.PROBE, u, T0 + 0.5, T0),
               UsageEvent(EventType.STOPPED, u, T0 + 0.5, T0, probe=True),
               UsageEvent(EventType.PROBE_STORM, u, T0 + 9, T0, count=11),
               UsageEvent(EventType.STARTED, u, T0 + 10, storm=True),
               UsageEvent(EventType.STARTED, u, T0 + 10)):
        back = event_from_dict(event_dict(ev))
        assert isinstance(back, UsageEvent)
        assert (back.type, back.probe, back.count, back.since, back.storm) == (
            ev.type, ev.probe, ev.count, ev.since, ev.storm)
        assert back.usage.key == u.key


def test_a_link_that_flowed_and_then_paused_is_no_probe_when_it_goes() -> None:
    f = ProbeFilter(ProbeSettings(storm=0))
    link = use(8, via="pipewire", dev=NODE)
    assert f.idle_links([link], [], set(), T0) == []  # flowing: announced by the diff
    assert f.idle_links([], [link], {link.key}, T0 + 5) == []  # paused: the use stopped
    assert f.idle_links([], [link], set(), T0 + 6) == []
    assert f.idle_links([], [], set(), T0 + 7) == []  # gone: no probe
    # Linked anew later without frames: a probe again.
    f.idle_links([], [link], set(), T0 + 8)
    assert [e.type for e in f.idle_links([], [], set(), T0 + 9)] == [EventType.PROBE]
