"""What the main window says per sensor (ui/sensors.py, no Qt): a blind sensor is never
"not in use", live beats blocked-free idle, and the coverage rows keep every sensor."""

from __future__ import annotations

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
from camguard.ui.model import LiveUser, Snapshot, TrayState, tray_state
from camguard.ui.sensors import Live, blind_sensors, coverage_rows, overall, sensor_views

W, P, B = CoverageState.WATCHING, CoverageState.PARTIAL, CoverageState.BLIND


def snap(*users: LiveUser, blocked: frozenset[DeviceKind] = frozenset(),
         ends: tuple[tuple[DeviceKind, float], ...] = ()) -> Snapshot:
    return Snapshot(tray_state(users, blocked, False, False), users, (), blocked, None, ends)


def user(kind: DeviceKind, name: str) -> LiveUser:
    ref = ProcessRef(4242, 1.0, name, f"/usr/bin/{name}", (name,), "ann", ())
    return LiveUser(Usage(Device(kind, f"{kind.value}:1", kind.value), ref), 0.0)


def test_overall_state_of_a_sensor_from_its_sources() -> None:
    def cov(*states: CoverageState) -> list[Coverage]:
        return [Coverage("camera", f"s{i}", s) for i, s in enumerate(states)]

    assert overall(cov()) is B  # no source at all: nothing watches it
    assert overall(cov(B, B)) is B
    assert overall(cov(W, W)) is W
    assert overall(cov(W, B)) is P and overall(cov(P)) is P


def test_blind_is_never_idle_and_live_or_blocked_says_who_and_until() -> None:
    coverage = [Coverage("camera", "procfs", W), Coverage("microphone", "pulse", P, "x"),
                Coverage("screen", "pipewire", B, "PipeWire not reachable: no socket")]
    views = {v.kind: v for v in sensor_views(
        snap(user(DeviceKind.SCREEN, "obs"), blocked=frozenset({DeviceKind.CAMERA})),
        coverage)}
    assert views[DeviceKind.CAMERA].live is Live.BLOCKED
    assert views[DeviceKind.CAMERA].headline == "Blocked until you unblock it"
    assert views[DeviceKind.MICROPHONE].headline == "No use seen (partly watched)"
    # A use seen through a source says who, even where the coverage says blind.
    assert views[DeviceKind.SCREEN].headline == "Being recorded by obs"
    # Location has no source here at all: blind, and said so.
    loc = views[DeviceKind.LOCATION]
    assert loc.live is Live.UNSEEN and loc.headline == "camguard cannot see it"
    assert loc.detail.startswith("Not watched")
    idle = {v.kind: v for v in sensor_views(snap(), coverage)}
    assert idle[DeviceKind.SCREEN].live is Live.UNSEEN
    assert idle[DeviceKind.SCREEN].detail == "Not watched: PipeWire not reachable."
    assert idle[DeviceKind.CAMERA].headline == "Not in use"
    assert blind_sensors(coverage) == {DeviceKind.SCREEN, DeviceKind.LOCATION}
    assert blind_sensors(None) == set()  # not known is not blind (nor watched)
    unknown = sensor_views(snap(), None)
    assert {v.headline for v in unknown} == {"No use reported"}


def test_location_live_and_tray_state() -> None:
    s = snap(user(DeviceKind.LOCATION, "firefox"))
    assert s.state is TrayState.LOCATION
    [loc] = [v for v in sensor_views(s, []) if v.kind is DeviceKind.LOCATION]
    assert loc.headline == "Used by firefox"
    assert snap(user(DeviceKind.SCREEN, "obs"), user(DeviceKind.CAMERA, "zoom")).state \
        is TrayState.CAMERA


def test_coverage_rows_keep_every_sensor_in_order_and_literal() -> None:
    rows = coverage_rows([Coverage("location", "geoclue", P, "<b>bus</b>\x07"),
                          Coverage("camera", "procfs", W, "device nodes")])
    assert [r[0] for r in rows] == ["Camera", "Microphone", "Screen", "Location"]
    assert rows[1][2] == rows[2][2] == "blind"  # no source: said, not left out
    assert rows[3] == ("Location", "GeoClue (location service)", "partly", "<b>bus</b>\\x07")
