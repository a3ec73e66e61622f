"""Location through the real GeoClue 2.6 on a private system-style bus (tests/geoclue_env.py):
a real app starting a client is named under "location" (as root, by bus monitoring); as an
ordinary user only "in use" is known and the coverage says "partial"; GeoClue gone is said."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.coverage import CoverageState
from camguard.core.models import UNSEEN_PROCESS_NOTE, DeviceKind, EventType, UsageEvent
from camguard.platform.linux.geoclue import NOT_ROOT, GeoClueSource
from camguard.platform.process import ProcessDescriber
from tests import geoclue_env
from tests.conftest import need, need_root, nobody_python
from tests.realenv import wait_until
from tests.watching import watching


@pytest.fixture
def geoclue() -> Iterator[geoclue_env.GeoClueBus]:
    need(not geoclue_env.available(), f"missing: {geoclue_env.available()} "
                                      "(apt-get install geoclue-2.0 dbus)")
    # Not under pytest's tmp_path (0700): an ordinary account must reach the bus socket.
    root = Path(tempfile.mkdtemp(prefix="camguard-geoclue-"))
    root.chmod(0o755)
    bus = geoclue_env.start_geoclue(root)
    try:
        yield bus
    finally:
        bus.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def apps() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def pids(source: GeoClueSource) -> set[int | None]:
    return {u.process.pid if u.process else None for u in source.snapshot().usages
            if u.device.kind is DeviceKind.LOCATION}


def test_the_app_starting_a_client_is_named_with_its_claims_and_stopping_ends_it(
        geoclue: geoclue_env.GeoClueBus, apps: list[subprocess.Popen[str]]) -> None:
    need_root()
    source = GeoClueSource(ProcessDescriber(), bus=geoclue.address)
    with watching([source]) as (monitor, rec):
        (cov,) = source.coverage()
        assert cov.state is CoverageState.WATCHING, cov.reason
        app = geoclue.client("org.example.<b>Maps</b>", accuracy=8)
        apps.append(app)
        ev = rec.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is EventType.STARTED
                          and e.usage.process is not None and e.usage.process.pid == app.pid)
        assert isinstance(ev, UsageEvent)
        u = ev.usage
        assert u.device.kind is DeviceKind.LOCATION and u.via == "geoclue"
        assert "'org.example.<b>Maps</b>' (as the app claims)" in u.note
        assert "accuracy: exact" in u.note
        assert app.stdin is not None and app.stdout is not None
        app.stdin.write("\n")
        app.stdin.flush()
        assert app.stdout.readline() == "stopped\n"
        rec.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is EventType.STOPPED
                     and e.usage.process is not None and e.usage.process.pid == app.pid)
        # A second app that simply exits while started: its client ends with it.
        other = geoclue.client("org.example.Weather", accuracy=4)
        apps.append(other)
        wait_until(lambda: other.pid in pids(source), 10, "the second app named")
        other.kill()
        wait_until(lambda: other.pid not in pids(source), 10, "its use ending with it")
        assert monitor.state.devices  # GeoClue running: the location sensor is listed
    assert not [t for t in threading.enumerate() if t.name == "camguard-geoclue"]


def test_one_shot_knows_in_use_but_not_by_whom(geoclue: geoclue_env.GeoClueBus,
                                              apps: list[subprocess.Popen[str]]) -> None:
    source = GeoClueSource(ProcessDescriber(), bus=geoclue.address)
    assert pids(source) == set()
    apps.append(geoclue.client())
    wait_until(lambda: pids(source) == {None}, 10, "InUse seen")
    (usage,) = source.snapshot().usages
    assert usage.note == UNSEEN_PROCESS_NOTE


def test_geoclue_gone_and_no_bus_are_said(geoclue: geoclue_env.GeoClueBus,
                                          tmp_path: Path) -> None:
    need_root()
    source = GeoClueSource(ProcessDescriber(), bus=geoclue.address)
    source.start(lambda: None)
    try:
        geoclue.stop_geoclue()
        wait_until(lambda: "not running" in source.coverage()[0].reason, 10,
                   "GeoClue's exit noticed")
        assert not source.snapshot().devices
    finally:
        source.stop()
    nobus = GeoClueSource(ProcessDescriber(), bus=f"unix:path={tmp_path}/no-bus")
    (cov,) = nobus.coverage()
    assert cov.state is CoverageState.BLIND and cov.reason.startswith("no system bus")
    assert nobus.snapshot().degraded is None  # a machine without a system bus is not broken


def test_status_as_an_ordinary_user_is_partial_and_in_use_by_someone_unseen(
        geoclue: geoclue_env.GeoClueBus, apps: list[subprocess.Popen[str]]) -> None:
    apps.append(geoclue.client())
    folder = Path(tempfile.mkdtemp(prefix="camguard-geo-"))
    try:
        folder.chmod(0o777)
        run_as_nobody, paths = nobody_python(folder)
        script = ("import runpy, sys; sys.path[:0] = sys.argv[1:3]; "
                  "sys.argv = ['camguard', *sys.argv[3:]]; "
                  "runpy.run_module('camguard', run_name='__main__')")
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": geoclue.address,
               "CAMGUARD_CONFIG_DIR": str(folder / "c"), "CAMGUARD_DATA_DIR": str(folder / "d"),
               "CAMGUARD_STATE_DIR": str(folder / "s"),
               "CAMGUARD_SOCKET": str(folder / "no-service.sock"),
               "PULSE_SERVER": f"unix:{folder}/none", "PIPEWIRE_REMOTE": str(folder / "none")}
        out = subprocess.run([*run_as_nobody, "-c", script, *paths, "status", "--json",
                              "--camera-glob", f"{folder}/video*", "--mic-glob",
                              f"{folder}/pcm*c"], capture_output=True, text=True, timeout=60,
                             env=env, cwd="/", check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    (loc,) = [c for c in doc["coverage"] if c["sensor"] == "location" and c["source"] == "geoclue"]
    assert loc["state"] == "partial" and loc["reason"].startswith(NOT_ROOT)
    (device,) = [d for d in doc["devices"] if d["kind"] == "location"]
    (user,) = device["users"]
    assert user["pid"] is None and user["note"] == UNSEEN_PROCESS_NOTE
    assert sys.platform.startswith("linux")
