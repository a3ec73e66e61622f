"""The procfs source against real child processes holding real file descriptors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.core.models import UNSEEN_PROCESS_NOTE, DeviceKind, SourceSnapshot
from camguard.platform.linux.fdscan import scan_holders
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import IS_ROOT, Holder, make_standin, nobody_python
from tests.realenv import wait_until
from tests.watching import started, stopped, watching


def source(devdir: Path, **kw: object) -> ProcfsSource:
    return ProcfsSource([f"{devdir}/video*"], [f"{devdir}/snd/pcmC*D*c"],
                        describer=ProcessDescriber(), **kw)  # type: ignore[arg-type]


def pids_of(snap_usages: object, device: str) -> set[int | None]:
    return {u.process.pid if u.process else None
            for u in snap_usages if u.device.id == device}  # type: ignore[attr-defined]


def test_status_names_the_holder(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    mic = make_standin(devdir / "snd" / "pcmC0D0c")
    holders.append(Holder([cam]))
    holders.append(Holder([mic]))
    snap = source(devdir).snapshot()
    assert {d.id for d in snap.devices} == {str(cam), str(mic)}
    assert pids_of(snap.usages, str(cam)) == {holders[0].pid}
    assert pids_of(snap.usages, str(mic)) == {holders[1].pid}
    usage = next(u for u in snap.usages if u.device.id == str(cam))
    assert usage.device.kind is DeviceKind.CAMERA
    assert usage.process is not None and usage.process.exe == os.path.realpath(sys.executable)
    assert usage.process.create_time > 0
    assert snap.degraded is None


def test_second_opener_is_a_second_user(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    holders.extend([Holder([cam]), Holder([cam])])
    assert pids_of(source(devdir).snapshot().usages, str(cam)) == {h.pid for h in holders}


def test_scan_skips_what_it_cannot_match(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam, cam]))  # two fds, one process
    found, _hidden = scan_holders([str(cam)])
    assert [pid for pid, _ in found[str(cam)]] == [holders[0].pid] * 2
    assert scan_holders([str(devdir / "video9")])[0] == {}


def test_watch_reports_open_close_and_death(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    with watching([source(devdir)]) as (_monitor, rec):
        h = Holder([cam])
        holders.append(h)
        rec.wait_for(started(h.pid, str(cam)))
        h.close()
        rec.wait_for(stopped(h.pid, str(cam)))
        h2 = Holder([cam])
        holders.append(h2)
        rec.wait_for(started(h2.pid))
        h2.proc.send_signal(signal.SIGKILL)
        rec.wait_for(stopped(h2.pid))
        # Exactly one started and one stopped per holder: nothing duplicated.
        kinds = [(e.type.value, e.usage.process.pid) for e in rec.usage_events()
                 if e.usage.process]
        assert kinds == [("started", h.pid), ("stopped", h.pid),
                         ("started", h2.pid), ("stopped", h2.pid)]


def test_node_created_after_watch_starts(devdir: Path, holders: list[Holder]) -> None:
    with watching([source(devdir)]) as (monitor, rec):
        cam = make_standin(devdir / "video7")
        wait_until(lambda: any(d.id == str(cam) for d in monitor.state.devices), 10,
                   "the hot-plugged node to be listed")
        h = Holder([cam])
        holders.append(h)
        rec.wait_for(started(h.pid, str(cam)))


def test_folder_created_after_watch_starts(tmp_path: Path, holders: list[Holder]) -> None:
    """/dev/snd does not exist on a machine without sound until a USB mic is plugged."""
    src = ProcfsSource([], [f"{tmp_path}/snd/pcmC*D*c"], describer=ProcessDescriber())
    with watching([src]) as (monitor, rec):
        mic = make_standin(tmp_path / "snd" / "pcmC1D0c")
        wait_until(lambda: any(d.id == str(mic) for d in monitor.state.devices), 10,
                   "the node in the new folder")
        h = Holder([mic])
        holders.append(h)
        rec.wait_for(started(h.pid, str(mic)))


def test_node_removed_while_held_stays_in_use(devdir: Path, holders: list[Holder]) -> None:
    """A hot-unplug unlinks the node; the holder keeps a "(deleted)" fd and still uses it
    until it closes (reporting "stopped" at the unplug would hide a live capture)."""
    cam = make_standin(devdir / "video0")
    with watching([source(devdir)]) as (monitor, rec):
        h = Holder([cam])
        holders.append(h)
        rec.wait_for(started(h.pid, str(cam)))
        cam.unlink()  # hot-unplug: the holder keeps a "(deleted)" fd
        # The look that saw the node gone (devices and usages come from the same look): the
        # device is listed only through its usage now, as "(removed)".
        def unplugged() -> bool:
            return str(cam) not in {d.id for d in monitor.state.devices if d.name != "(removed)"}

        wait_until(unplugged, 10, "a look after the unlink")
        state = monitor.state
        assert pids_of(state.usages, str(cam)) == {h.pid}
        assert [d.name for d in state.devices if d.id == str(cam)] == ["(removed)"]
        assert not any(stopped(h.pid)(e) for e in rec.events)
        h.close()
        ev = rec.wait_for(stopped(h.pid, str(cam)))
        assert ev.usage.device.name == "(removed)"  # type: ignore[attr-defined]


def test_deleted_fd_counts_only_for_the_node_that_was_watched(devdir: Path,
                                                              holders: list[Holder]) -> None:
    """The "(deleted)" fd is matched by the inode a look saw at that path, not by its name."""
    cam = make_standin(devdir / "video0")
    src = source(devdir)
    first = Holder([cam])
    holders.append(first)
    assert pids_of(src.snapshot().usages, str(cam)) == {first.pid}
    cam.unlink()
    make_standin(cam)  # another node at the same path, never seen by a look ...
    other = Holder([cam])
    holders.append(other)
    cam.unlink()  # ... and gone too: its fd reads the same "<path> (deleted)"
    assert Path(f"/proc/{other.pid}/fd/3").exists()
    links = {os.readlink(f"/proc/{h.pid}/fd/{fd}") for h in (first, other)
             for fd in os.listdir(f"/proc/{h.pid}/fd")}
    assert f"{cam} (deleted)" in links
    assert pids_of(src.snapshot().usages, str(cam)) == {first.pid}
    first.close()
    assert pids_of(src.snapshot().usages, str(cam)) == set()
    # Nobody holds the watched node now: it is forgotten, and the look stays cheap.
    assert pids_of(src.snapshot().usages, str(cam)) == set()


def test_sound_server_holding_raw_capture_is_not_an_app(devdir: Path, holders: list[Holder]
                                                        ) -> None:
    mic = make_standin(devdir / "snd" / "pcmC0D0c")
    h = Holder([mic])
    holders.append(h)
    exe = os.path.realpath(sys.executable)
    src = ProcfsSource([], [f"{devdir}/snd/pcmC*D*c"], describer=ProcessDescriber(),
                       sound_server_exes=[exe])
    assert pids_of(src.snapshot().usages, str(mic)) == set()


def test_vanishing_processes_never_break_a_scan(devdir: Path, holders: list[Holder]) -> None:
    """Hundreds of short-lived processes exit while we scan; the long holder is still found."""
    cam = make_standin(devdir / "video0")
    holders.append(Holder([cam]))
    churn = subprocess.Popen(["sh", "-c", "while :; do /bin/true & /bin/true & wait; done"],
                             start_new_session=True)
    try:
        src = source(devdir)
        for _ in range(30):
            assert pids_of(src.snapshot().usages, str(cam)) == {holders[0].pid}
    finally:
        os.killpg(churn.pid, signal.SIGKILL)
        churn.wait()


def test_unreadable_proc_entries_are_skipped(tmp_path: Path) -> None:
    """A /proc-like tree with a process whose fd folder cannot be read (and one that is
    not a process at all) is scanned without error; /proc itself missing is degraded."""
    proc = tmp_path / "proc"
    (proc / "100" / "fd").mkdir(parents=True)
    os.symlink("/dev/video0", proc / "100" / "fd" / "3")
    (proc / "200" / "fd").mkdir(parents=True)
    (proc / "200" / "fd").chmod(0)
    (proc / "self").mkdir()
    (proc / "300").mkdir()  # a process that exited: no fd folder
    try:
        found, hidden = scan_holders(["/dev/video0"], str(proc))
        assert found == {"/dev/video0": [(100, 3)]}
        assert hidden == (0 if IS_ROOT else 1)
    finally:
        (proc / "200" / "fd").chmod(0o755)
    src = ProcfsSource(["/nonexistent/video*"], [], describer=ProcessDescriber(),
                       proc_root=str(tmp_path / "no-proc"))
    snap = src.snapshot()
    assert snap.degraded is not None and "cannot list" in snap.degraded.reason


UNPRIVILEGED_WATCH = """
import json, sys
sys.path[:0] = sys.argv[2:]
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.watching import watching
src = ProcfsSource([sys.argv[1]], [], describer=ProcessDescriber())
with watching([src]) as (monitor, rec):
    print("ready", flush=True)
    ev = rec.wait_for(lambda e: getattr(e, "type", None) is not None, timeout=20)
    print(json.dumps({"pid": ev.usage.process and ev.usage.process.pid,
                      "note": ev.usage.note, "via": ev.usage.via}), flush=True)
"""


def test_another_users_process_is_reported_as_unseen(devdir: Path, holders: list[Holder]
                                                     ) -> None:
    """camguard as an unprivileged user cannot read root's /proc/PID/fd, yet inotify saw the
    open: the device is reported in use "by a process camguard cannot see"."""
    run_as_nobody, paths = nobody_python(devdir)
    cam = make_standin(devdir / "video0")
    watcher = subprocess.Popen(
        [*run_as_nobody, "-c", UNPRIVILEGED_WATCH, f"{devdir}/video*", *paths],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    try:
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
        assert line == "ready\n", watcher.stderr.read() if watcher.stderr else line
        holders.append(Holder([cam]))
        out = watcher.stdout.readline()
        assert out, watcher.stderr.read() if watcher.stderr else "no output"
        got = json.loads(out)
        assert got == {"pid": None, "note": UNSEEN_PROCESS_NOTE, "via": "inotify"}
    finally:
        watcher.terminate()  # not SIGKILL: under `make coverage` it writes what it measured
        watcher.wait(10)


UNWATCHABLE = """
import json, sys
sys.path[:0] = sys.argv[2:]
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
src = ProcfsSource([sys.argv[1]], [], describer=ProcessDescriber())
src.start(lambda: None)
try:
    snap = src.snapshot()
finally:
    src.stop()
print(json.dumps([snap.degraded.reason if snap.degraded else None,
                  sorted(d.path for d in snap.devices)]))
"""


def test_a_node_this_account_may_not_read_is_said_to_be_unwatched(devdir: Path) -> None:
    """inotify needs read permission on what it watches (inotify(7)): an unprivileged
    camguard cannot watch a camera only root may open, and says so rather than staying
    silent about it."""
    run_as_nobody, paths = nobody_python(devdir)
    cam = make_standin(devdir / "video0")
    cam.chmod(0o600)
    out = subprocess.run([*run_as_nobody, "-c", UNWATCHABLE, f"{devdir}/video*", *paths],
                         capture_output=True, text=True, timeout=60, cwd="/", check=False)
    assert out.returncode == 0, out.stderr
    reason, devices = json.loads(out.stdout)
    assert devices == [str(cam)]
    assert reason == (f"cannot watch {cam} (Permission denied); changes there are seen "
                      "only by the periodic rescan")


@pytest.mark.parametrize("name", [
    "<b>evil</b>&amp;", "esc\x1b[31mred\x07", "new\nline", "x" * 65536,
])
def test_hostile_process_names_are_kept_verbatim(devdir: Path, name: str) -> None:
    """The scan keeps whatever a process calls itself; rendering is core.text's job."""
    cam = make_standin(devdir / "video0")
    script = ("import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); "
              "print('open', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", script, str(cam), name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        usage = next(u for u in source(devdir).snapshot().usages if u.process)
        assert usage.process is not None and usage.process.cmdline[-1] == name
    finally:
        proc.kill()
        proc.wait()


def test_invalid_utf8_in_cmdline_survives(devdir: Path) -> None:
    cam = make_standin(devdir / "video0")
    script = (b"import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); "
              b"print('open', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([os.fsencode(sys.executable), b"-c", script, os.fsencode(cam),
                             b"bad\xff\xfename"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"open\n"
        usage = next(u for u in source(devdir).snapshot().usages if u.process)
        assert usage.process is not None
        assert os.fsencode(usage.process.cmdline[-1]) == b"bad\xff\xfename"
    finally:
        proc.kill()
        proc.wait()


SWAPPER = """
import os, sys
keep = os.open("/dev/null", os.O_RDONLY)
print("ready", flush=True)
sys.stdin.readline()
# Replace an existing fd with the device: the fd count does not change, so the shortcut that
# looks at processes with a changed fd count first must still fall back to the others.
tmp = os.open(sys.argv[1], os.O_RDONLY); os.dup2(tmp, keep); os.close(tmp)
print("swapped", flush=True)
sys.stdin.readline()
"""


def test_opener_with_unchanged_fd_count_among_newer_processes(
        devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    old = subprocess.Popen([sys.executable, "-c", SWAPPER, str(cam)], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    newer = [subprocess.Popen(["sleep", "60"]) for _ in range(20)]
    try:
        assert old.stdout is not None and old.stdin is not None
        assert old.stdout.readline() == "ready\n"
        with watching([source(devdir)]) as (_monitor, rec):
            old.stdin.write("go\n")
            old.stdin.flush()
            assert old.stdout.readline() == "swapped\n"
            rec.wait_for(started(old.pid, str(cam)))
            old.kill()
            rec.wait_for(stopped(old.pid, str(cam)))
    finally:
        for p in [old, *newer]:
            p.kill()
            p.wait()


def test_one_of_two_holders_closes(devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    with watching([source(devdir)]) as (monitor, rec):
        a, b = Holder([cam]), Holder([cam])
        holders.extend([a, b])
        rec.wait_for(started(a.pid))
        rec.wait_for(started(b.pid))
        a.close()
        rec.wait_for(stopped(a.pid))
        assert {u.process.pid for u in monitor.state.usages if u.process} == {b.pid}
        c = Holder([cam])  # opens after a close: the shortcut must not lose b
        holders.append(c)
        rec.wait_for(started(c.pid))
        assert {u.process.pid for u in monitor.state.usages if u.process} == {b.pid, c.pid}
        assert not [e for e in rec.usage_events() if e.usage.process
                    and e.usage.process.pid == b.pid and e.type.value == "stopped"]


def test_idle_rescans_skip_proc_only_while_nothing_is_held(
        devdir: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch) -> None:
    """The periodic safety rescan reads /proc only when it could find something: a held
    node (a fork-shared fd can close silently) or an unwatched one."""
    from camguard.platform.linux import fdscan

    scans = []  # fd tables read (listing /proc for the hidden holders' fd counts is not one)
    real = fdscan.Scanner.scan

    def counting(self: fdscan.Scanner, pid: int, into: fdscan.Pairs) -> None:
        scans.append(pid)
        real(self, pid, into)

    monkeypatch.setattr(fdscan.Scanner, "scan", counting)
    cam = make_standin(devdir / "video0")
    src = source(devdir)
    looks: list[int] = []
    look = src.snapshot

    def counted() -> SourceSnapshot:
        looks.append(1)
        return look()

    src.snapshot = counted  # type: ignore[method-assign]
    with watching([src], rescan_interval=0.05) as (monitor, rec):
        wait_until(lambda: monitor.state.devices != (), 5, "the first look")
        first, after = len(scans), len(looks)
        # Ten periodic looks (rescans) with nothing held: not one of them scans /proc.
        # (The eleventh has begun, so the ten before it have finished.)
        wait_until(lambda: len(looks) >= after + 11, 10, "ten idle rescans")
        assert len(scans) == first
        h = Holder([cam])
        holders.append(h)
        rec.wait_for(started(h.pid))
        # While it is held the rescans read /proc again: at least the holder's own fd table
        # (a fork-shared fd can close without an event); which other processes they read is
        # test_procfs_rescan.py's business.
        held = scans.count(h.pid)
        wait_until(lambda: scans.count(h.pid) > held + 3, 10,
                   "rescans reading the holder's fd table while the node is held")
