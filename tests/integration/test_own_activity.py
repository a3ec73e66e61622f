"""camguard's own uses are neither alerted nor recorded; nobody else's are hidden (issue 17).

The self-test's opens, its probe and the helper (children of the tray) became "Camera
turned on: camguard" alerts and history sessions. The tray's sinks now sit behind
app/own_activity.OwnActivityFilter, as cli/tray.py wires it; these tests drive a real
Monitor on a stand-in node with real processes: a child of this process (camguard's own),
a process that is no child but calls itself "camguard" (must be reported), and such a
process while it holds a claim, as ``camguard selftest`` writes one (hidden).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from camguard.app.own_activity import OwnActivity, OwnActivityFilter
from camguard.monitor import Monitor
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber, lineage
from tests.conftest import Holder, make_standin
from tests.watching import Recorder, started, stopped

ROOT = Path(__file__).resolve().parents[2]

# Not our child (setsid -f: its parent exits at once), and named "camguard" (comm and argv).
ORPHAN = """
import contextlib, os, sys
from pathlib import Path
from camguard.app.own_activity import claim_own_activity
mode, node, folder = sys.argv[1:4]
with open("/proc/self/comm", "w") as f:
    f.write("camguard")
claim = claim_own_activity(Path(folder)) if mode == "claim" else contextlib.nullcontext()
with claim:
    fd = os.open(node, os.O_RDONLY)
    print(os.getpid(), flush=True)
    sys.stdin.readline()
    os.close(fd)
    print("closed", flush=True)
    sys.stdin.readline()
print("done", flush=True)
"""


class Orphan:
    def __init__(self, mode: str, node: Path, folder: Path) -> None:
        self.proc = subprocess.Popen(
            ["setsid", "-f", sys.executable, "-c", ORPHAN, mode, str(node), str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        self.pid = int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "closed\n"

    def finish(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def end(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)


@contextlib.contextmanager
def tray_sinks(devdir: Path, claims: Path, *, honour_claims: bool = True
               ) -> Iterator[tuple[Recorder, Recorder]]:
    """(what the tray's sinks hear, what the monitor saw)."""
    monitor = Monitor([ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())],
                      SystemClock(), settle=0.002)
    tray = OwnActivityFilter(monitor, OwnActivity(claims, claims=honour_claims))
    heard, seen = Recorder(), Recorder()
    tray.add_sink(heard)
    monitor.add_sink(seen)  # after the filter's: when this one has an event, so has the tray
    tray.start()
    try:
        yield heard, seen
    finally:
        tray.stop()


def test_a_child_of_camguard_is_not_alerted_nor_recorded(devdir: Path, tmp_path: Path
                                                         ) -> None:
    cam = make_standin(devdir / "video0")
    with tray_sinks(devdir, tmp_path / "claims") as (heard, seen):
        child = Holder([cam])  # what the self-test's probe or the helper is: our child
        try:
            seen.wait_for(started(child.pid, str(cam)))
            child.close()
            seen.wait_for(stopped(child.pid, str(cam)))
        finally:
            child.end()
        assert heard.usage_events() == []


def test_a_stranger_calling_itself_camguard_is_reported(devdir: Path, tmp_path: Path) -> None:
    cam = make_standin(devdir / "video0")
    with tray_sinks(devdir, tmp_path / "claims") as (heard, seen):
        spy = Orphan("plain", cam, tmp_path / "claims")
        try:
            assert os.getpid() not in {pid for pid, _ in lineage(spy.pid)}
            ev = heard.wait_for(started(spy.pid, str(cam)))
            assert ev.usage.process is not None and ev.usage.process.name == "camguard"
            spy.close()
            heard.wait_for(stopped(spy.pid, str(cam)))
        finally:
            spy.end()
        assert len(seen.usage_events()) == len(heard.usage_events()) == 2


def test_a_selftest_in_a_terminal_claims_its_activity_while_it_runs(devdir: Path,
                                                                     tmp_path: Path) -> None:
    cam = make_standin(devdir / "video0")
    claims = tmp_path / "claims"
    with tray_sinks(devdir, claims) as (heard, seen):
        selftest = Orphan("claim", cam, claims)
        try:
            seen.wait_for(started(selftest.pid, str(cam)))
            selftest.close()
            seen.wait_for(stopped(selftest.pid, str(cam)))
            selftest.finish()
        finally:
            selftest.end()
        assert heard.usage_events() == []
        assert list(claims.iterdir()) == []  # the claim went with it
        # A claim outlives nothing: a later process that reuses nothing is reported.
        after = Orphan("plain", cam, claims)
        try:
            heard.wait_for(started(after.pid, str(cam)))
        finally:
            after.end()


def test_the_service_honours_no_claim(devdir: Path, tmp_path: Path) -> None:
    # The root service filters only its own process tree: an account's claim hides nothing
    # from it (app/service.py builds OwnActivity(claims=False)).
    cam = make_standin(devdir / "video0")
    claims = tmp_path / "claims"
    with tray_sinks(devdir, claims, honour_claims=False) as (heard, _seen):
        claimed = Orphan("claim", cam, claims)
        try:
            assert list(claims.iterdir())  # the claim is there
            heard.wait_for(started(claimed.pid, str(cam)))
        finally:
            claimed.end()


def test_camguards_own_probes_and_their_storm_are_never_heard(devdir: Path, tmp_path: Path
                                                              ) -> None:
    """The self-test opens each camera briefly, again and again: its probes, and the probe
    storm they make (core/probes.py), reach none of the tray's sinks."""
    from camguard.core.models import EventType, UsageEvent
    from camguard.core.probes import ProbeSettings
    from tests.integration.test_probes import Prober

    cam = make_standin(devdir / "video0")
    monitor = Monitor([ProcfsSource([f"{devdir}/video*"], [], describer=ProcessDescriber())],
                      SystemClock(), probes=ProbeSettings(threshold=1.5, storm=1))
    tray = OwnActivityFilter(monitor, OwnActivity(tmp_path / "claims"))
    heard, seen = Recorder(), Recorder()
    tray.add_sink(heard)
    monitor.add_sink(seen)
    tray.start()
    prober = Prober(cam)  # our child, as the self-test's opens are
    try:
        for _ in range(4):
            prober.do("probe")
        seen.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is EventType.PROBE_STORM,
                      20)
        seen.wait_for(lambda e: isinstance(e, UsageEvent) and e.type is EventType.STARTED
                      and e.storm, 20)  # an open during the storm, announced
    finally:
        prober.end()
        tray.stop()
    assert heard.usage_events() == []
