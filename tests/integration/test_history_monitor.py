"""The history sink on a real Monitor: a real child opens a real node, the history records it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psutil

from camguard.core.clock import FrozenClock
from camguard.core.models import DeviceKind
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.history import PROBE_REASON, HistorySink, HistoryStore
from tests.conftest import Holder, make_standin
from tests.realenv import wait_until
from tests.watching import Recorder, started, stopped


def test_monitor_sessions_land_in_the_history(tmp_path: Path, devdir: Path,
                                              holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    store = HistoryStore(tmp_path / "history.sqlite3", FrozenClock())
    src = ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                       describer=ProcessDescriber())
    monitor = Monitor([src], SystemClock(), settle=0.002)
    rec = Recorder()
    monitor.add_sink(HistorySink(store))
    monitor.add_sink(rec)
    monitor.start()
    try:
        holder = Holder([cam])
        holders.append(holder)
        rec.wait_for(started(holder.pid, str(cam)))
        wait_until(lambda: len(store.sessions()) == 1, what="a session in the history")
        [live] = store.sessions()
        assert live.is_open and live.pid == holder.pid and live.kind is DeviceKind.CAMERA
        assert live.device_id == str(cam)
        assert live.create_time == psutil.Process(holder.pid).create_time()
        assert store.session_for(monitor.state.usages[0].key) == live.id
        holder.close()
        rec.wait_for(stopped(holder.pid, str(cam)))
        wait_until(lambda: not store.sessions()[0].is_open, what="the session closed")
    finally:
        monitor.stop()
    assert store.wait_for_hashes(30)
    [done] = store.sessions()
    assert done.end is not None and done.duration is not None and done.duration >= 0
    exe = psutil.Process(holder.pid).exe()
    with open(exe, "rb") as f:
        assert done.exe == exe and done.exe_sha256 == hashlib.sha256(f.read()).hexdigest()
    # Held for milliseconds with nothing streamed: a probe (core/probes.py), still recorded.
    assert done.end_reason == PROBE_REASON and done.user
    store.close()
    assert os.stat(tmp_path / "history.sqlite3").st_mode & 0o777 == 0o600
