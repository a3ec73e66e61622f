"""The privileged helper's limits: ``kill`` only for a live device holder (never a thread id,
a root process that holds nothing, or the camguard service), and ``unblock-node`` only onto
the device that was blocked. Real processes, real nodes, the real script run as pkexec would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camguard.core.blocks import BlockManager, BlockTarget, Outcome
from camguard.platform.clock import SystemClock
from camguard.platform.linux import helper
from camguard.store.blocks import JsonBlockStore
from tests.conftest import Holder, make_standin, need_root
from tests.integration.test_block import blocker_for
from tests.service_env import Box, Service

REPO = Path(__file__).resolve().parents[2]
HELPER_SCRIPT = REPO / "camguard" / "platform" / "linux" / "helper.py"
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.real

# A process whose second thread also holds the node: /proc/TID answers like a process.
THREADED = textwrap.dedent("""
    import os, sys, threading
    fd = os.open(sys.argv[1], os.O_RDONLY)
    go = threading.Event()
    t = threading.Thread(target=go.wait)
    t.start()
    print(t.native_id, flush=True)
    sys.stdin.readline()
    go.set()
""")
# An ordinary root process that holds no camera or microphone.
IDLE = "import sys; print('up', flush=True); sys.stdin.readline()"


@pytest.fixture
def ctx(tmp_path: Path, devdir: Path) -> helper.Context:
    need_root()
    return helper.Context(
        caller_uid=1000, state_file=str(tmp_path / "helper" / "nodes.json"),
        allowed_nodes=frozenset({str(devdir / "video0")}), rules_dir=str(tmp_path / "rules.d"),
        run_udevadm=False, protected_pids=frozenset(helper._ancestors(os.getpid(), "/proc")),
        grace=1.0)


def run(ctx: helper.Context, *argv: str) -> tuple[int, dict[str, object]]:
    code, out = helper.run(list(argv), ctx)
    json.dumps(out)
    assert out["ok"] is (code == helper.OK)
    assert "internal error" not in str(out.get("error", "")), out
    return code, out


def child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def ctime_of(pid: int) -> str:
    info = helper._proc_stat(pid, "/proc")
    assert info is not None
    return f"{info['create_time']:.6f}"


@pytest.fixture
def threaded(devdir: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = child(THREADED, str(make_standin(devdir / "video0")))
    assert proc.stdout is not None
    tid = int(proc.stdout.readline())
    yield proc, tid
    proc.kill()
    proc.wait(10)


@pytest.fixture
def idle() -> Iterator[subprocess.Popen[str]]:
    proc = child(IDLE)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    yield proc
    proc.kill()
    proc.wait(10)


# -- kill: item 15, a thread id -----------------------------------------------------------------
def test_kill_of_a_thread_id_is_a_clear_answer(
        ctx: helper.Context, threaded: tuple[subprocess.Popen[str], int]) -> None:
    proc, tid = threaded
    assert tid != proc.pid and Path(f"/proc/{tid}/stat").exists()  # live, though unlisted
    code, out = run(ctx, "kill", str(tid), ctime_of(tid))
    assert (code, out["error"]) == (
        helper.NOT_FOUND, f"no such process: {tid} is a thread of process {proc.pid}")
    assert proc.poll() is None


# A fixed seed: the same examples on every run, and only this test's own processes as targets
# (a live pid of the host, or a thread of one, made the old fuzz test fail at random).
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["holder", "thread", "idle", "gone"]),
       ctime=st.sampled_from(["real", "1.0", "later"]) | st.text(max_size=20))
def test_fuzzed_kills_of_our_own_processes_answer_clearly(
        ctx: helper.Context, threaded: tuple[subprocess.Popen[str], int],
        idle: subprocess.Popen[str], target: str, ctime: str) -> None:
    proc, tid = threaded
    # "gone": above PID_MAX_LIMIT (include/linux/threads.h), so never anyone's process.
    pid = {"holder": proc.pid, "thread": tid, "idle": idle.pid, "gone": 4_194_305}[target]
    if ctime in ("real", "later"):
        real = ctime_of(pid) if target != "gone" else "1.0"
        ctime = real if ctime == "real" and target != "holder" else f"{float(real) + 7:.6f}"
    code, out = run(ctx, "kill", str(pid), ctime)
    assert code in (helper.BAD_ARGS, helper.REFUSED, helper.NOT_FOUND), out
    assert proc.poll() is None and idle.poll() is None  # nothing of ours was signalled


# -- kill: item 5, only a process that holds a matched node -------------------------------------
def test_kill_refuses_a_process_that_holds_no_device(ctx: helper.Context,
                                                     idle: subprocess.Popen[str]) -> None:
    code, out = run(ctx, "kill", str(idle.pid), ctime_of(idle.pid))
    assert (code, out["error"]) == (helper.REFUSED, "it holds no camera or microphone node: "
                                    "the helper only ends processes that use one")
    assert idle.poll() is None


def test_kill_ends_a_holder_even_of_a_deleted_node(ctx: helper.Context, devdir: Path,
                                                   holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    node.unlink()  # unplugged while held: the holder still uses the device
    code, out = run(ctx, "kill", str(h.pid), f"{psutil.Process(h.pid).create_time():.6f}")
    assert (code, out["signal"]) == (helper.OK, "SIGTERM")
    assert h.proc.wait(10) == -15


def _as_pkexec(*argv: str) -> tuple[int, dict[str, object]]:
    """The installed script as pkexec runs it for an admin (PKEXEC_UID set, clean env)."""
    proc = subprocess.run([SYSTEM_PYTHON, "-I", str(HELPER_SCRIPT), *argv], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={"PKEXEC_UID": "1000", "PATH": "/usr/bin:/bin"})
    [line] = proc.stdout.splitlines()
    return proc.returncode, json.loads(line)


def test_pkexec_kill_refuses_an_ordinary_root_process(idle: subprocess.Popen[str]) -> None:
    need_root()
    assert psutil.Process(idle.pid).uids().real == 0
    code, out = _as_pkexec("kill", str(idle.pid), ctime_of(idle.pid))
    assert (code, out["ok"]) == (helper.REFUSED, False)
    assert "holds no camera or microphone" in str(out["error"])
    assert idle.poll() is None


def test_pkexec_kill_refuses_the_camguard_service(sandbox: Box) -> None:
    svc = Service(sandbox).start()
    assert svc.proc is not None
    pid = svc.proc.pid
    code, out = _as_pkexec("kill", str(pid), ctime_of(pid))
    assert (code, out["ok"]) == (helper.REFUSED, False), out
    assert svc.alive() and svc.client.available()


# -- unblock-node: item 7, only onto the device that was blocked ---------------------------------
def _replace(node: Path, rdev: int, mode: int) -> None:
    """The node disappears and another one takes its path (replug, a node made by hand)."""
    new = node.with_name(node.name + ".new")  # made while the old one exists: another inode
    os.mknod(new, mode | stat.S_IFCHR, rdev)
    new.chmod(mode)
    os.replace(new, node)


@pytest.mark.parametrize(("rdev", "why"), [
    (os.makedev(1, 5), "the node is now a different device (1:5, was 1:3)"),
    (os.makedev(1, 3), "the node was recreated since it was blocked (another inode)"),
])
def test_unblock_node_never_restores_onto_another_node(ctx: helper.Context, devdir: Path,
                                                       rdev: int, why: str) -> None:
    node = make_standin(devdir / "video0")  # 1:3, 0666
    assert run(ctx, "block-node", str(node))[0] == helper.OK
    _replace(node, rdev, 0)  # at 0000 root:root, as a blocked node looks
    code, out = run(ctx, "unblock-node", str(node))
    assert code == helper.OK and out["applied"] is False, out
    assert why in str(out["note"]) and "not applied" in str(out["note"])
    st_ = os.lstat(node)
    assert (stat.S_IMODE(st_.st_mode), st_.st_rdev) == (0, rdev)  # the old 0666 not given
    assert run(ctx, "status")[1]["nodes"] == {}


def test_block_after_a_device_change_saves_the_new_device(ctx: helper.Context,
                                                          devdir: Path) -> None:
    node = make_standin(devdir / "video0")
    assert run(ctx, "block-node", str(node))[0] == helper.OK
    _replace(node, os.makedev(1, 5), 0o640)
    node.chmod(0)  # blocked again before camguard looked: 0000, a different device
    assert run(ctx, "block-node", str(node))[1]["saved"] == {"mode": 0, "uid": 0, "gid": 0,
                                                             "acl": None}


def test_root_unblock_leaves_a_replaced_camera_alone(devdir: Path, tmp_path: Path) -> None:
    need_root()
    node = make_standin(devdir / "video0")
    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"),
                           blocker_for(devdir, tmp_path))
    assert manager.block(BlockTarget.CAMERA, None).result.ok
    _replace(node, os.makedev(1, 5), 0)
    report = manager.unblock(BlockTarget.CAMERA)
    assert report.result.outcome is Outcome.DONE, report.result.message
    said = " ".join(report.result.details)
    assert "video0 not restored" in said and "now a different device (1:5, was 1:3)" in said
    assert stat.S_IMODE(os.lstat(node).st_mode) == 0
    assert manager.active() == ([], [])
