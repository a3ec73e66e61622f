"""Flatpak apps' location from the real portal permission store (issue 11, item 3).

The real ``xdg-permission-store`` (xdg-desktop-portal) on a private session bus; entries
written with its own ``SetPermission`` as xdg-desktop-portal's location portal writes them
(``[ACCURACY, g_get_monotonic_time() µs]``). The grants are in the coverage with their last
use; a new start is a location use named by the app's Flatpak scope (a real cgroup
``app-flatpak-<app id>-<n>.scope`` holding a real process); the store not running is said.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from camguard.core.coverage import CoverageState
from camguard.core.models import DeviceKind, EventType, UsageEvent
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.portal_location import (
    STORE,
    STORE_PATH,
    PortalLocationSource,
    flatpak_processes,
)
from camguard.platform.process import ProcessDescriber
from tests.conftest import need, need_root, need_tools
from tests.realenv import bound_to_tests, wait_until
from tests.watching import Recorder

pytestmark = pytest.mark.real

PERMISSION_STORE = "/usr/libexec/xdg-permission-store"
UNIFIED = Path("/sys/fs/cgroup/unified")


@dataclass
class Session:
    bus: str
    root: Path
    procs: list[subprocess.Popen[bytes]]

    def start_store(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "DBUS_SESSION_BUS_ADDRESS": self.bus,
               "XDG_DATA_HOME": str(self.root / "data"), "HOME": str(self.root)}
        self.procs.append(subprocess.Popen(bound_to_tests([PERMISSION_STORE]), env=env,
                                           stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        wait_until(self.store_running, 15, "xdg-permission-store on the bus")

    def call(self, member: str, signature: str, body: tuple[Any, ...]) -> Any:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        with contextlib.closing(open_dbus_connection(bus=self.bus)) as conn:
            reply = conn.send_and_get_reply(new_method_call(
                DBusAddress(STORE_PATH, bus_name=STORE, interface=STORE), member, signature,
                body), timeout=10)
        assert reply.header.message_type is not MessageType.error, reply.body
        return reply.body

    def grant(self, app: str, accuracy: str, used_us: int) -> None:
        """What the location portal writes when ``app`` starts location."""
        self.call("SetPermission", "sbssas",
                  ("location", True, "location", app, [accuracy, str(used_us)]))

    def store_running(self) -> bool:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        with contextlib.closing(open_dbus_connection(bus=self.bus)) as conn:
            reply = conn.send_and_get_reply(message_bus.NameHasOwner(STORE), timeout=10)
        return bool(reply.body and reply.body[0])


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    need_tools(["dbus-daemon"])
    need(os.path.exists(PERMISSION_STORE), "apt-get install xdg-desktop-portal")
    bus = f"unix:path={tmp_path}/bus"
    daemon = subprocess.Popen(bound_to_tests(["dbus-daemon", "--session", f"--address={bus}",
                                              "--nofork"]),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    s = Session(bus, tmp_path, [daemon])
    try:
        wait_until((tmp_path / "bus").exists, 10, "the session bus")
        yield s
    finally:
        for p in reversed(s.procs):
            p.kill()
            p.wait(10)


@contextlib.contextmanager
def flatpak_app(app: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real process in a real ``app-flatpak-<app>-<n>.scope`` cgroup (v2), as
    ``flatpak run`` leaves the app."""
    need_root()
    need(UNIFIED.is_dir() and os.access(UNIFIED, os.W_OK), "no writable cgroup v2 here")
    scope = UNIFIED / f"app-flatpak-{app}-{os.getpid()}.scope"
    scope.mkdir()
    proc = subprocess.Popen(bound_to_tests(["sleep", "600"]))
    try:
        (scope / "cgroup.procs").write_text(str(proc.pid))
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        wait_until(lambda: not (scope / "cgroup.procs").read_text().strip(), 10,
                   "the scope empty")
        scope.rmdir()


def mono_us() -> int:
    return int(time.monotonic() * 1e6)


def test_grants_and_last_use_are_in_the_coverage(session: Session) -> None:
    session.start_store()
    source = PortalLocationSource(ProcessDescriber(), bus=session.bus)
    (cov,) = source.coverage()
    assert cov.state is CoverageState.WATCHING and "no Flatpak app has asked" in cov.reason
    used = mono_us() - 5_000_000  # five seconds ago
    session.grant("org.example.Maps", "EXACT", used)
    session.grant("org.example.Denied", "NONE", 0)
    session.grant("org.example.<b>Evil</b>\u202e", "CITY\x1b[31m", 10**30)
    source = PortalLocationSource(ProcessDescriber(), bus=session.bus)
    (cov,) = source.coverage()
    apps = {a.app_id: a for a in cov.apps}
    assert cov.state is CoverageState.WATCHING and "3 apps" in cov.reason, cov
    maps = apps["org.example.Maps"]
    assert maps.access == "EXACT" and maps.last_used is not None
    assert abs(maps.last_used - (time.time() - 5)) < 2
    assert apps["org.example.Denied"].access == "NONE"
    assert apps["org.example.Denied"].as_dict()["allowed"] is False
    hostile = apps["org.example.<b>Evil</b>\u202e"].as_dict()  # shown literally, never read
    assert hostile["last_used"] is None and "CITY" in hostile["access"]
    assert "\x1b" not in json.dumps(cov.as_dict())  # escaped in the JSON status prints


def test_a_new_start_is_a_location_use_named_by_its_flatpak_scope(session: Session) -> None:
    session.start_store()
    app = "org.example.Weather"
    session.grant(app, "CITY", mono_us() - 60_000_000)  # used before camguard started
    with flatpak_app(app) as proc:
        assert flatpak_processes(app) == [proc.pid]
        source = PortalLocationSource(ProcessDescriber(), bus=session.bus)
        monitor = Monitor([source], SystemClock())
        rec = Recorder()
        monitor.add_sink(rec)
        monitor.start()
        try:
            assert not rec.usage_events()  # an old grant is not a use now
            session.grant(app, "CITY", mono_us())
            ev = rec.wait_for(lambda e: isinstance(e, UsageEvent)
                              and e.type is EventType.STARTED, 15)
            assert isinstance(ev, UsageEvent)
            u = ev.usage
            assert u.device.kind is DeviceKind.LOCATION and u.via == "portal"
            assert u.process is not None and u.process.pid == proc.pid
            assert "Flatpak app 'org.example.Weather'" in u.note and "CITY" in u.note
            rec.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is EventType.STOPPED,
                         15)
            # Refused: no use.
            session.grant(app, "NONE", 0)
            wait_until(lambda: any(a.access == "NONE" for a in source.coverage()[0].apps),
                       10, "the refusal read")
            assert len([e for e in rec.usage_events() if e.type is EventType.STARTED]) == 1
        finally:
            monitor.stop()


def test_the_store_not_running_is_said_and_read_once_it_starts(session: Session) -> None:
    # A grant from an earlier session, on disk: the store reads it when it starts again.
    session.start_store()
    session.grant("org.example.Maps", "EXACT", mono_us())
    store = session.procs.pop()
    wait_until((session.root / "data" / "flatpak" / "db" / "location").exists, 15,
               "the grant saved")
    store.kill()
    store.wait(10)
    wait_until(lambda: not session.store_running(), 10, "the store gone")

    source = PortalLocationSource(ProcessDescriber(), bus=session.bus)
    source.start(lambda: None)
    try:
        (cov,) = source.coverage()
        assert cov.state is CoverageState.BLIND and "not running" in cov.reason, cov
        assert not session.store_running()  # never started by camguard
        session.start_store()
        wait_until(lambda: [a.app_id for a in source.coverage()[0].apps]
                   == ["org.example.Maps"], 15, "the store read once it runs")
        assert source.coverage()[0].state is CoverageState.WATCHING
        assert not source.snapshot().usages  # a store seen for the first time: a baseline
    finally:
        source.stop()


def test_without_a_session_bus_it_is_blind(tmp_path: Path) -> None:
    source = PortalLocationSource(ProcessDescriber(), bus=f"unix:path={tmp_path}/none")
    (cov,) = source.coverage()
    assert cov.state is CoverageState.BLIND and "no session bus" in cov.reason


def test_status_json_lists_the_grants(session: Session, tmp_path: Path) -> None:
    """``camguard status --json`` (the real command): the location / portal coverage entry
    carries each app's grant and last use."""
    session.start_store()
    session.grant("org.example.Maps", "STREET", mono_us() - 2_000_000)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": session.bus, "PYTHONPATH": str(root),
           "CAMGUARD_CONFIG_DIR": str(tmp_path / "c"), "CAMGUARD_DATA_DIR": str(tmp_path / "d"),
           "CAMGUARD_STATE_DIR": str(tmp_path / "s"),
           "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock"),
           "PULSE_SERVER": f"unix:{tmp_path}/none", "PIPEWIRE_REMOTE": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-m", "camguard", "status", "--json",
                          "--camera-glob", f"{tmp_path}/video*", "--mic-glob",
                          f"{tmp_path}/pcm*c"], capture_output=True, text=True, timeout=60,
                         env=env, cwd=root, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (portal,) = [c for c in doc["coverage"] if c["source"] == "portal"]
    assert portal["sensor"] == "location" and portal["state"] == "watching", portal
    (maps,) = portal["apps"]
    assert maps["app_id"] == "org.example.Maps" and maps["access"] == "STREET"
    assert maps["allowed"] is True and maps["last_used"].endswith("Z")
