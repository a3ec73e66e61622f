"""Probes are not alarms, on real device nodes (issue 11, item 5; docs/probes.md).

A real process opens and closes a stand-in camera node again and again (a browser or
Discord enumerating cameras); the real device-node source (inotify, fanotify as root) and
the real Monitor, with a real SQLite history and a real JSON-lines event log as sinks. Each
open is alerted as it happens (a one-shot tool grabs a photo in milliseconds) and kept in
history as a probe; the fourth within the minute is one probe storm, surfaced once; after
it the app's opens are still announced at once (the rules see them as they happen), marked
``storm`` so that the tray asks about one only if it lasts (tests/gui/test_storm_alert.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from camguard.core.models import EventType, UsageEvent
from camguard.core.probes import ProbeSettings
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.eventlog import EventLog, JsonLinesFile
from camguard.store.history import PROBE_REASON, PROBE_STORM_REASON, HistorySink, HistoryStore
from tests.conftest import make_standin, need_root
from tests.watching import Recorder

PROBER = textwrap.dedent("""
    import os, sys, time
    node = sys.argv[1]
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "probe":  # open, a quick look, close
            fd = os.open(node, os.O_RDONLY); time.sleep(0.02); os.close(fd)
        elif cmd[0] == "hold":
            held = os.open(node, os.O_RDONLY)
        elif cmd[0] == "release":
            os.close(held)
        sys.stdout.write("done\\n"); sys.stdout.flush()
""")


class Prober:
    def __init__(self, node: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", PROBER, str(node)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def do(self, cmd: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def end(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def of(rec: Recorder, pid: int, kind: EventType) -> list[UsageEvent]:
    return [e for e in rec.usage_events()
            if e.type is kind and e.usage.process is not None and e.usage.process.pid == pid]


def test_probes_are_kept_as_probes_and_a_storm_is_surfaced_once(
        devdir: Path, tmp_path: Path) -> None:
    need_root()  # fanotify names each brief open; without it a 20 ms open can be missed
    node = make_standin(devdir / "video0")
    clock = SystemClock()
    source = ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())
    monitor = Monitor([source], clock, probes=ProbeSettings(threshold=1.5, storm=3))
    rec = Recorder()
    history = HistoryStore(tmp_path / "history.sqlite3", clock, hash_exes=False)
    log_file = tmp_path / "events.jsonl"
    events = EventLog(clock, [JsonLinesFile(log_file)], host="test", user="test")
    for sink in (rec, HistorySink(history), events.monitor_sink):
        monitor.add_sink(sink)
    monitor.start()
    prober = Prober(node)
    try:
        pid = prober.proc.pid

        def stopped_count() -> int:
            return len(of(rec, pid, EventType.STOPPED)) + len(of(rec, pid, EventType.PROBE))

        for n in range(1, 5):  # one at a time: each its own session, seen to end
            prober.do("probe")
            rec.wait_for(lambda _e, n=n: stopped_count() >= n, 20)  # type: ignore[misc]
        storm = rec.wait_for(lambda e: isinstance(e, UsageEvent)
                             and e.type is EventType.PROBE_STORM, 20)
        before = len(of(rec, pid, EventType.STARTED))
        assert before == 4  # each alerted as it opened: a probe cannot be told from a photo
        assert all(e.probe for e in of(rec, pid, EventType.STOPPED))

        for n in range(5, 8):  # the storm lasts: announced at once, marked
            prober.do("probe")
            rec.wait_for(lambda _e, n=n: stopped_count() >= n, 20)  # type: ignore[misc]
        starts = of(rec, pid, EventType.STARTED)
        assert [e.storm for e in starts] == [False] * 4 + [True] * 3
        assert of(rec, pid, EventType.PROBE) == []
        assert len([e for e in rec.usage_events() if e.type is EventType.PROBE_STORM]) == 1

        prober.do("hold")  # a use: announced at once (no hold-back), still marked
        started = rec.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is
                               EventType.STARTED and e.usage.process is not None
                               and e.usage.process.pid == pid, 20, start=len(rec.events))
        assert started.storm and monitor.state.first_seen[started.usage.key] == started.at
        # Held past the threshold: a use, not a probe (the wait is the definition, not a hope).
        time.sleep(max(0.0, started.at + 1.6 - clock.now()))
        prober.do("release")
        rec.wait_for(lambda _e: len(of(rec, pid, EventType.STOPPED)) == 8, 20)
    finally:
        prober.end()
        monitor.stop()

    rows = [r for r in history.sessions() if r.pid == pid]
    reasons = sorted(str(r.end_reason) for r in rows)
    assert reasons == sorted([PROBE_REASON] * 7 + [PROBE_STORM_REASON, "None"]), reasons
    (storm_row,) = [r for r in rows if r.end_reason == PROBE_STORM_REASON]
    assert "4 opens under 1.5 s" in storm_row.note
    history.close()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    types = [r["type"] for r in records if r.get("pid") == pid]
    assert types.count("device.probe-storm") == 1 and types.count("device.probe") == 0
    assert [r.get("storm") for r in records if r["type"] == "device.started"] == [None] * 4 + [
        True] * 4
    (storm_rec,) = [r for r in records if r["type"] == "device.probe-storm"]
    assert storm_rec["level"] == "warning" and storm_rec["count"] == 4, storm_rec
    assert [r.get("probe") for r in records if r["type"] == "device.stopped"] == [True] * 7 + [
        None]
    assert isinstance(storm, UsageEvent) and storm.count == 4
