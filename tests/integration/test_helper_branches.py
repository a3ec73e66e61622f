"""The privileged helper's less travelled paths, for real: a holder that ignores SIGTERM, a
kernel thread, a process holding a regular file at an allowed path, a damaged state file,
a bind of an interface it never unbound, and the command line (``main``) as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from camguard.platform.linux import helper
from tests.conftest import make_standin, need_root
from tests.service_env import ROOT

pytestmark = pytest.mark.real

# Holds its arguments open and ignores SIGTERM: only SIGKILL ends it.
STUBBORN = textwrap.dedent("""
    import os, signal, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
    print("open", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def ctx(tmp_path: Path, devdir: Path) -> helper.Context:
    need_root()
    return helper.Context(
        caller_uid=1000, state_file=str(tmp_path / "helper" / "nodes.json"),
        allowed_nodes=frozenset({str(devdir / "video0"), str(devdir / "video1")}),
        rules_dir=str(tmp_path / "rules.d"), run_udevadm=False,
        uvc_driver_dir=str(tmp_path / "sys" / "drivers" / "uvcvideo"),
        usb_devices_dir=str(tmp_path / "sys" / "devices"),
        protected_pids=frozenset(helper._ancestors(os.getpid(), "/proc")), grace=0.5)


@pytest.fixture
def stubborn(devdir: Path) -> Iterator[subprocess.Popen[str]]:
    node = make_standin(devdir / "video0")
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN, str(node)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "open\n"
    yield proc
    proc.kill()
    proc.wait(10)


def test_a_holder_that_ignores_sigterm_is_ended_with_sigkill(
        ctx: helper.Context, stubborn: subprocess.Popen[str]) -> None:
    ctime = psutil.Process(stubborn.pid).create_time()
    code, out = helper.run(["kill", str(stubborn.pid), f"{ctime:.6f}"], ctx)
    assert (code, out) == (helper.OK, {"ok": True, "action": "kill", "pid": stubborn.pid,
                                       "signal": "SIGKILL"})
    assert stubborn.wait(10) == -9


def test_a_kernel_thread_is_never_ended(ctx: helper.Context) -> None:
    kthreadd = psutil.Process(2)
    assert kthreadd.name() == "kthreadd"
    code, out = helper.run(["kill", "2", f"{kthreadd.create_time():.6f}"], ctx)
    assert code == helper.REFUSED and out["error"] == "a kernel thread cannot be ended"


def test_a_regular_file_at_an_allowed_path_is_not_a_device(
        ctx: helper.Context, devdir: Path) -> None:
    fake = devdir / "video1"
    fake.write_text("")  # the path is allowed, but it is not a character device
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN, str(fake)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        ctime = psutil.Process(proc.pid).create_time()
        code, out = helper.run(["kill", str(proc.pid), f"{ctime:.6f}"], ctx)
        assert code == helper.REFUSED
        assert str(out["error"]).startswith("it holds no camera or microphone node")
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("damaged", [
    '{"version": 1, "nodes": {}}',  # the wrong shape: no "usb" list
    '{"version": 1, "nodes": {"/dev/video0": {"mode": "0666"}}, "usb": []}',  # a bad entry
    "[1, 2",  # not JSON at all
])
def test_a_damaged_state_file_is_kept_aside_and_the_helper_starts_empty(
        ctx: helper.Context, damaged: str) -> None:
    state = Path(ctx.state_file)
    state.parent.mkdir(mode=0o700)
    state.write_text(damaged)
    code, out = helper.run(["status"], ctx)
    assert code == helper.OK and out["nodes"] == {} and out["usb"] == []
    [kept] = state.parent.glob("nodes.json.corrupt-*")
    assert kept.read_text() == damaged
    assert not state.exists()


def test_binding_an_interface_it_never_unbound_leaves_its_state_alone(
        ctx: helper.Context) -> None:
    uvc = Path(ctx.uvc_driver_dir)
    uvc.mkdir(parents=True)
    (uvc / "bind").touch()
    (Path(ctx.usb_devices_dir) / "1-2:1.0").mkdir(parents=True)
    code, out = helper.run(["bind-usb", "1-2:1.0"], ctx)
    assert code == helper.OK, out
    assert (uvc / "bind").read_text() == "1-2:1.0"
    assert not Path(ctx.state_file).exists()  # nothing to forget: nothing written
    code, out = helper.run(["bind-usb", "3-1:1.0"], ctx)
    assert code == helper.NOT_FOUND and out["error"] == "no such USB interface"


def test_the_command_line_answers_one_json_line_and_audits_the_caller() -> None:
    need_root()
    res = subprocess.run([sys.executable, "-m", "camguard.platform.linux.helper", "status"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                         env={**os.environ, "PKEXEC_UID": "4321", "PYTHONPATH": str(ROOT)})
    assert res.returncode == helper.OK, res.stderr
    [line] = res.stdout.splitlines()
    out = json.loads(line)
    assert out["ok"] is True and out["caller_uid"] == 4321 and out["euid"] == 0
    if not os.path.exists("/dev/log"):  # no syslog here: the audit line goes to stderr
        assert "uid=4321 action=status args= rc=0" in res.stderr
    bad = subprocess.run([sys.executable, "-m", "camguard.platform.linux.helper", "reboot"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == helper.BAD_ARGS
    assert json.loads(bad.stdout) == {"ok": False, "action": "reboot",
                                      "error": "unknown action"}


def test_unbinding_twice_records_the_interface_once(ctx: helper.Context) -> None:
    uvc = Path(ctx.uvc_driver_dir)
    uvc.mkdir(parents=True)
    (uvc / "unbind").touch()
    iface = Path(ctx.usb_devices_dir) / "1-2:1.0"
    iface.mkdir(parents=True)
    (iface / "driver").symlink_to(uvc)
    for _ in range(2):  # e.g. a block re-applied after the interface was bound by hand
        assert helper.run(["unbind-usb", "1-2:1.0"], ctx)[0] == helper.OK
    assert helper.run(["status"], ctx)[1]["usb"] == ["1-2:1.0"]


def test_a_proc_without_a_boot_time_means_no_process_to_end(ctx: helper.Context,
                                                           tmp_path: Path) -> None:
    """Start times are boot time plus ticks; without btime in /proc/stat none can be
    checked, so the process is treated as gone and nothing is signalled."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        proc = tmp_path / "proc"
        (proc / str(child.pid)).mkdir(parents=True)
        (proc / str(child.pid) / "stat").write_bytes(
            Path(f"/proc/{child.pid}/stat").read_bytes())
        (proc / "stat").write_text("cpu  1 2 3 4\nctxt 5\n")
        ctime = psutil.Process(child.pid).create_time()
        code, out = helper.run(["kill", str(child.pid), f"{ctime:.6f}"],
                               replace(ctx, proc_root=str(proc)))
        assert (code, out["error"]) == (helper.NOT_FOUND, "no such process")
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(10)
