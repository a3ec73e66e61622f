"""A Flatpak-style sandbox built for real (its own mount and pid namespaces, a root holding
``/.flatpak-info``, an init ``sh`` standing in for bwrap, the app and a helper under it):

- ending the app ends the whole sandbox (its helper and the sandbox's init too), and
  nothing outside it (a sibling process of the same user survives);
- the app's pid inside its pid namespace (what libpulse puts in a stream) is mapped to its
  host pid through NSpid, and such a stream is attributed to it, marked unverified.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import Outcome
from camguard.platform.linux.kill import Killer
from camguard.platform.linux.pidns import host_pids_for, nspids
from camguard.platform.linux.pulse_props import APP_BINARY, APP_PID, attribute
from camguard.platform.linux.sandbox_tree import sandbox_of
from camguard.platform.process import ProcessDescriber
from tests.conftest import IS_ROOT, need, need_tools
from tests.integration.test_origin import packaged_python
from tests.realenv import wait_until

pytestmark = pytest.mark.real

APP = "import os, time; print(os.getpid(), flush=True); time.sleep(600)  # APP-MARK"
HELPER = "import time; time.sleep(600)  # HELPER-MARK"


@dataclass
class Box:
    outer: subprocess.Popen[str]  # unshare, outside the sandbox
    python: str
    inner_pid: int  # the app's pid inside its pid namespace

    def marked(self, mark: str) -> psutil.Process:
        for child in psutil.Process(self.outer.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                argv = child.cmdline()
                if argv[:2] == [self.python, "-c"] and mark in argv[2]:
                    return child
        raise AssertionError(f"no {mark} process in the sandbox")


@contextlib.contextmanager
def sandbox(tmp_path: Path) -> Iterator[Box]:
    need(IS_ROOT, "mount and pid namespaces with a bind-mounted /usr need root")
    need_tools(["unshare", "chroot"])
    python, _package = packaged_python()
    root = tmp_path / "sandbox"
    for sub in ("usr", "tmp", "dev"):
        (root / sub).mkdir(parents=True)
    for link in ("lib", "lib64", "bin"):
        if os.path.islink(f"/{link}"):
            (root / link).symlink_to(os.readlink(f"/{link}").lstrip("/"))
    (root / ".flatpak-info").write_text(
        "[Application]\nname=org.example.Camera\n\n[Instance]\nbranch=stable\n")
    inner = f"{python} -c '{HELPER}' & exec_app() {{ {python} -c \"$0\"; }}; " \
        "exec_app & wait"
    outer = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "sh", "-c",
         'mount --bind /usr "$1/usr" && mount --bind /dev "$1/dev" && '
         'exec chroot "$1" /bin/sh -c "$2" "$3"', "sh",
         str(root), inner, APP], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert outer.stdout is not None
        line = outer.stdout.readline()
        assert line.strip().isdigit(), f"the sandboxed app did not start: {line!r}"
        box = Box(outer, python, int(line))
        wait_until(lambda: _has(box, "HELPER-MARK"), 10, "the sandbox's helper")
        yield box
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(outer.pid, 9)
        outer.wait(10)


def _has(box: Box, mark: str) -> bool:
    try:
        box.marked(mark)
    except AssertionError:
        return False
    return True


def test_ending_a_sandboxed_app_ends_its_sandbox_and_nothing_else(tmp_path: Path) -> None:
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        with sandbox(tmp_path) as box:
            app, helper = box.marked("APP-MARK"), box.marked("HELPER-MARK")
            found = sandbox_of(app.pid)
            assert found is not None and found.app == "org.example.Camera"
            init = psutil.Process(found.root[0])
            assert len({app.pid, helper.pid, init.pid}) == 3
            assert init.pid != box.outer.pid  # unshare, outside the sandbox, is not in it
            assert nspids(init.pid)[-1] == 1  # the sandbox's init (bwrap's place)
            pids = {p for p, _c in found.members}
            assert {app.pid, helper.pid, init.pid} <= pids
            assert sibling.pid not in pids and os.getpid() not in pids

            result = Killer(grace=1.0).kill(app.pid, app.create_time())
            assert result.outcome is Outcome.DONE, result.message
            assert "Flatpak sandbox (org.example.Camera)" in result.message
            for proc in (app, helper, init):
                wait_until(lambda p=proc: not _alive(p), 15, f"pid {proc.pid} to end")
            assert sibling.poll() is None  # the same user's process outside: untouched
    finally:
        sibling.kill()
        sibling.wait(10)


def test_a_sandbox_member_camguard_must_not_end_is_named_not_signalled(tmp_path: Path
                                                                      ) -> None:
    with sandbox(tmp_path) as box:
        app, helper = box.marked("APP-MARK"), box.marked("HELPER-MARK")
        label = f"{helper.name()} (pid {helper.pid})"
        # camguard runs inside the helper, say: it is refused, the rest of the tree still ends
        # (and the helper with the sandbox's init, by the kernel: not by camguard).
        result = Killer(grace=1.0, protected=[helper.pid]).kill(app.pid, app.create_time())
        assert result.outcome is Outcome.DONE, result.message
        assert result.message.endswith(f"; still running in it: {label}"), result.message
        wait_until(lambda: not _alive(app), 15, f"pid {app.pid} to end")


def test_a_pid_inside_the_sandbox_maps_to_the_host_pid(tmp_path: Path) -> None:
    with sandbox(tmp_path) as box:
        app = box.marked("APP-MARK")
        assert box.inner_pid != app.pid
        assert nspids(app.pid) == (app.pid, box.inner_pid)
        assert host_pids_for(box.inner_pid) == [app.pid]
        # A PulseAudio stream from inside the sandbox claims its inner pid (libpulse).
        describe = ProcessDescriber().describe
        stream = {APP_PID: str(box.inner_pid),
                  APP_BINARY: os.path.basename(box.python)}
        attribution, ref = attribute(stream, {}, is_pipewire=False, bridge=lambda p: False,
                                     describe=describe)
        assert ref is not None and ref.pid == app.pid
        assert (attribution.pid, attribution.trusted) == (app.pid, False)
        assert f"host pid {app.pid}" in attribution.note and "unverified" in attribution.note
        # A claim that fits no sandboxed process is not mapped to one.
        other = {APP_PID: str(box.inner_pid), APP_BINARY: "firefox-esr"}
        attribution, ref = attribute(other, {}, is_pipewire=False, bridge=lambda p: False,
                                     describe=describe)
        assert ref is None or ref.pid != app.pid


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_a_real_bwrap_sandbox_is_ended_whole_and_bwrap_named_alone_ends_the_app(
        tmp_path: Path) -> None:
    """The real bubblewrap, as flatpak runs it (--unshare-pid, a /.flatpak-info bound into
    its root): ending the app ends both bwraps too; asking to end the outer bwrap ends the
    app inside, not bwrap alone (SIGTERM to the outer bwrap alone leaves the inner bwrap and
    the app running: checked by hand with bubblewrap 0.8.0)."""
    need_tools(["bwrap"])
    python, _package = packaged_python()
    info = tmp_path / "flatpak-info"
    info.write_text("[Application]\nname=org.example.Real\n\n[Instance]\nbranch=stable\n")

    def start() -> tuple[subprocess.Popen[str], psutil.Process]:
        links = [a for link in ("lib", "lib64", "bin") if os.path.islink(f"/{link}")
                 for a in ("--symlink", os.readlink(f"/{link}").lstrip("/"), f"/{link}")]
        outer = subprocess.Popen(
            ["bwrap", "--ro-bind", "/usr", "/usr", *links, "--dev", "/dev", "--proc",
             "/proc", "--ro-bind", str(info), "/.flatpak-info", "--unshare-pid", "--",
             python, "-c", APP], stdout=subprocess.PIPE, text=True)
        assert outer.stdout is not None and outer.stdout.readline().strip().isdigit()
        apps = [c for c in psutil.Process(outer.pid).children(recursive=True)
                if c.cmdline()[:1] == [python] and "APP-MARK" in " ".join(c.cmdline())]
        assert len(apps) == 1
        return outer, apps[0]

    for target in ("app", "bwrap"):
        outer, app = start()
        try:
            found = sandbox_of(app.pid)
            assert found is not None and found.app == "org.example.Real"
            assert found.root[0] == outer.pid  # the outer bwrap: the sandbox starts there
            pid = app.pid if target == "app" else outer.pid
            ctime = psutil.Process(pid).create_time()
            result = Killer(grace=1.0).kill(pid, ctime)
            assert result.outcome is Outcome.DONE, result.message
            wait_until(lambda a=app: not _alive(a), 15, "the sandboxed app to end")
            outer.wait(15)  # the bwrap around it ended too
        finally:
            if outer.poll() is None:
                outer.kill()
                outer.wait(10)
