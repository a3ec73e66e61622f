"""What the device-node and sound-server sources say they can see (``status --json``'s
"coverage"), from their real state objects; root decides fanotify (these tests run as root in
CI; the unprivileged wording is checked by tests/integration/test_status_unseen.py)."""

from __future__ import annotations

import os

from camguard.core.coverage import CoverageState
from camguard.core.models import Degraded, DeviceKind, SourceSnapshot
from camguard.platform.linux.coverage import procfs_coverage, pulse_coverage

GLOBS = {DeviceKind.CAMERA: ("/dev/video*",), DeviceKind.MICROPHONE: ("/dev/snd/pcmC*D*c",)}


def states(items: list) -> list[tuple[str, CoverageState, str]]:  # type: ignore[type-arg]
    return [(c.sensor, c.state, c.reason) for c in items]


def test_an_empty_glob_list_is_blind_and_a_degraded_look_partial() -> None:
    degraded = SourceSnapshot("procfs", degraded=Degraded("procfs", "/proc is not readable"))
    got = states(procfs_coverage("procfs", {DeviceKind.CAMERA: ()}, degraded,
                                 fanotify_active=True))
    assert got == [
        ("camera", CoverageState.BLIND, "no device nodes configured (empty glob list)"),
        ("microphone", CoverageState.BLIND, "no device nodes configured (empty glob list)")]
    got = states(procfs_coverage("procfs", GLOBS, degraded, fanotify_active=True))
    assert {(s, st) for s, st, _r in got} == {("camera", CoverageState.PARTIAL),
                                             ("microphone", CoverageState.PARTIAL)}
    assert {r for _s, _st, r in got} == {"/proc is not readable"}


def test_fanotify_decides_between_watching_and_partial() -> None:
    ok = SourceSnapshot("procfs")
    if os.geteuid() != 0:  # without root it is partial whatever the watcher says
        got = procfs_coverage("procfs", GLOBS, ok, fanotify_active=True)
        assert {c.state for c in got} == {CoverageState.PARTIAL}
        assert all("not root" in c.reason for c in got)
        return
    watching = procfs_coverage("procfs", GLOBS, ok, fanotify_active=True)
    assert {c.state for c in watching} == {CoverageState.WATCHING}
    without = procfs_coverage("procfs", GLOBS, ok, fanotify_active=False)
    assert {c.state for c in without} == {CoverageState.PARTIAL}
    assert all(c.reason.startswith("fanotify unavailable (") for c in without)
    one_shot = procfs_coverage("procfs", GLOBS, None, fanotify_active=None)
    assert {c.state for c in one_shot} == {CoverageState.WATCHING}  # root: fanotify decides


def test_the_sound_server_source_is_blind_while_unreachable() -> None:
    down = SourceSnapshot("pulse", degraded=Degraded("pulse", "sound server unreachable: x"))
    assert states(pulse_coverage("pulse", down)) == [
        ("microphone", CoverageState.BLIND, "sound server unreachable: x")]
    assert [c.state for c in pulse_coverage("pulse", SourceSnapshot("pulse"))] == [
        CoverageState.WATCHING]
    assert [c.state for c in pulse_coverage("pulse", None)] == [CoverageState.WATCHING]
