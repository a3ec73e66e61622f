"""Camera and microphone off at device level, for real: stand-in nodes, an unprivileged
opener, real holders, exact restore, timed blocks across restarts, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.blocks import BlockManager, BlockTarget, Outcome, StepKind
from camguard.core.clock import FrozenClock
from camguard.platform.clock import SystemClock
from camguard.platform.linux.block import LinuxBlocker, load_mic_switch
from camguard.platform.linux.fdscan import scan_holders
from camguard.platform.linux.helper_runner import InProcessHelper
from camguard.platform.linux.kill import Killer
from camguard.platform.linux.node_state import node_state
from camguard.store.blocks import JsonBlockStore
from tests import realenv
from tests.conftest import Holder, make_standin, need, need_root, need_tools
from tests.sound_holder import impostor, pipewire_holding

REPO = Path(__file__).resolve().parents[2]
ACL = "system.posix_acl_access"
# The venv's python lives under /root, which nobody cannot read: the system one opens.
OPENER = textwrap.dedent("""
    import os, sys
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY))
        print("opened")
    except PermissionError:
        print("denied")
""")

pytestmark = pytest.mark.real


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A stand-in device folder that nobody can walk into.

    Like ``devdir``, but outside pytest's tmp root: that is 0700, and every pytest run
    (other suites run in parallel here) resets it to 0700, so o+x on it cannot be relied on.
    """
    need_root()
    need_tools(["setpriv", "setfacl"])
    d = Path(tempfile.mkdtemp(prefix="camguard-dev-", dir="/tmp"))
    d.chmod(0o755)  # walkable and listable (globs), but not writable, by others
    (d / "snd").mkdir(mode=0o755)
    yield d
    shutil.rmtree(d)


def as_nobody_open(node: Path) -> str:
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "/usr/bin/python3", "-c", OPENER, str(node)],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def facts(node: Path) -> tuple[int, int, int, bytes | None]:
    st = os.lstat(node)
    try:
        acl: bytes | None = os.getxattr(node, ACL)
    except OSError:
        acl = None
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, acl


def held(node: Path) -> list[tuple[int, int]]:
    found, _ = scan_holders([str(node)])
    return found.get(str(node), [])


def blocker_for(devdir: Path, tmp_path: Path, *, mic: bool = False) -> LinuxBlocker:
    cams, mics = (str(devdir / "video*"),), (str(devdir / "snd" / "pcmC*D*c"),)
    return LinuxBlocker(
        cams, mics, killer=Killer(),
        helper=InProcessHelper((*cams, *mics), str(tmp_path / "helper" / "nodes.json"),
                               rules_dir=str(tmp_path / "rules.d"), run_udevadm=False,
                               sys_root=str(tmp_path / "sys")),
        mic=load_mic_switch() if mic else None, rules_dir=str(tmp_path / "rules.d"))


def test_camera_block_denies_new_openers_ends_holders_and_unblock_restores_exactly(
        reachable: Path, tmp_path: Path, holders: list[Holder]) -> None:
    node = make_standin(reachable / "video0")
    os.chown(node, 0, 44)
    node.chmod(0o660)
    subprocess.run(["setfacl", "-m", "u:nobody:rw", str(node)], check=True)
    before = facts(node)
    assert before[3] is not None
    assert as_nobody_open(node) == "opened"  # the ACL lets nobody in: the test can fail
    h = Holder([node])
    holders.append(h)

    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "state" / "blocks.json"),
                           blocker_for(reachable, tmp_path))
    report = manager.block(BlockTarget.CAMERA, None)
    assert report.result.outcome is Outcome.DONE, report.result.message
    assert h.proc.wait(10) is not None  # the holder was ended...
    assert held(node) == []  # ...and nothing holds the node any more
    assert facts(node) == (0, 0, 0, None)
    assert as_nobody_open(node) == "denied"
    blocks, _ = manager.active()
    [step] = blocks[0].steps
    saved = node_state(step)
    assert step.kind is StepKind.NODE and saved is not None
    assert (saved.mode, saved.uid, saved.gid, saved.acl) == before

    report = manager.unblock(BlockTarget.CAMERA)
    assert report.result.outcome is Outcome.DONE, report.result.message
    assert facts(node) == before  # mode, owner, group and the raw ACL bytes
    assert as_nobody_open(node) == "opened"
    assert manager.active() == ([], [])


def test_microphone_block_leaves_the_sound_server_running(
        devdir: Path, tmp_path: Path) -> None:
    need_root()
    node = make_standin(devdir / "snd" / "pcmC0D0c")
    # A real PipeWire daemon, serving its socket, holds the capture node (as it does for
    # every desktop app).
    with pipewire_holding(node, tmp_path) as server:
        killer = Killer()
        realenv.wait_until(lambda: killer.is_sound_server(server.pid), 15,
                           "pipewire to listen on its socket")
        manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"),
                               blocker_for(devdir, tmp_path))
        report = manager.block(BlockTarget.MICROPHONE, 60)
        # Without a mute (none wired into this blocker) apps still record through the
        # server: the node is closed, the server is not killed, and the block says so.
        assert report.result.outcome is Outcome.FAILED, report.result.message
        assert "the sound server (pid" in report.result.message
        assert "could not be muted" in report.result.message
        assert server.poll() is None and [p for p, _ in held(node)] == [server.pid]
        assert facts(node)[0] == 0
        assert manager.unblock(BlockTarget.MICROPHONE).result.ok
        assert facts(node)[0] == 0o666


def test_a_process_that_only_calls_itself_pipewire_is_ended(devdir: Path,
                                                            tmp_path: Path) -> None:
    need_root()
    node = make_standin(devdir / "snd" / "pcmC0D0c")
    with impostor(node) as fake:
        manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"),
                               blocker_for(devdir, tmp_path))
        report = manager.block(BlockTarget.MICROPHONE, 60)
        assert report.result.outcome is Outcome.DONE, report.result.message
        assert fake.wait(10) == -15 and held(node) == []
        assert manager.unblock(BlockTarget.MICROPHONE).result.ok


def test_timed_blocks_survive_a_restart(devdir: Path, tmp_path: Path) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    mic = make_standin(devdir / "snd" / "pcmC0D0c")
    clock = FrozenClock(time.time())
    store_path = tmp_path / "state" / "blocks.json"
    first = BlockManager(clock, JsonBlockStore(store_path), blocker_for(devdir, tmp_path))
    assert first.block(BlockTarget.CAMERA, 15 * 60).result.ok
    assert first.block(BlockTarget.MICROPHONE, 60 * 60).result.ok
    assert facts(cam)[0] == facts(mic)[0] == 0
    del first
    clock.advance(16 * 60)
    # camguard starts again: a new manager, a new blocker, the same files.
    second = BlockManager(clock, JsonBlockStore(store_path), blocker_for(devdir, tmp_path))
    report = second.expire_due()
    assert report.result.ok, report.result.message
    assert [k.value for k, _ in report.parts] == ["camera"]
    assert facts(cam)[0] == 0o666
    assert facts(mic)[0] == 0
    blocks, _ = second.active()
    assert [b.kind.value for b in blocks] == ["microphone"]
    clock.advance(45 * 60)
    assert second.expire_due().result.ok
    assert facts(mic)[0] == 0o666
    assert second.active() == ([], [])


def test_no_camera_is_not_found(devdir: Path, tmp_path: Path) -> None:
    need_root()
    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"),
                           blocker_for(devdir, tmp_path))
    report = manager.block(BlockTarget.CAMERA, None)
    assert report.result.outcome is Outcome.NOT_FOUND
    assert manager.active() == ([], [])


def test_persistent_block_installs_and_removes_the_udev_rule(devdir: Path, tmp_path: Path
                                                              ) -> None:
    need_root()
    make_standin(devdir / "video0")
    from camguard.core.blocks import BlockOptions

    manager = BlockManager(SystemClock(), JsonBlockStore(tmp_path / "blocks.json"),
                           blocker_for(devdir, tmp_path))
    report = manager.block(BlockTarget.CAMERA, None,
                           BlockOptions(persistent=True, unbind_usb=True))
    assert report.result.ok, report.result.message
    [(_, camera)] = report.parts
    assert "not a USB camera" in camera.message  # a stand-in has no USB parent
    rule = tmp_path / "rules.d" / "72-camguard-block.rules"
    assert rule.exists()
    assert manager.unblock(BlockTarget.CAMERA).result.ok
    assert not rule.exists()


def test_lost_record_still_unblocks(devdir: Path, tmp_path: Path) -> None:
    need_root()
    cam = make_standin(devdir / "video0")
    store_path = tmp_path / "blocks.json"
    manager = BlockManager(SystemClock(), JsonBlockStore(store_path),
                           blocker_for(devdir, tmp_path))
    assert manager.block(BlockTarget.CAMERA, None).result.ok
    store_path.write_text("{garbage")  # the user's record is lost; root's saved state is not
    report = manager.unblock(BlockTarget.CAMERA)
    assert report.result.ok, report.result.message
    assert "kept as blocks.json.corrupt-1" in report.problems[0]
    assert facts(cam)[0] == 0o666


# -- the CLI, as separate processes (each one a camguard start) ------------------------------
def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env=env, check=False)


@pytest.fixture
def cli_env(tmp_path: Path, devdir: Path) -> dict[str, str]:
    need_root()
    return {**os.environ, "CAMGUARD_STATE_DIR": str(tmp_path / "state"),
            "CAMGUARD_CONFIG_DIR": str(tmp_path / "config"),
            "PULSE_SERVER": f"unix:{tmp_path}/no-such-server"}


def test_cli_timed_block_expires_across_restarts(cli_env: dict[str, str], devdir: Path
                                                 ) -> None:
    cam = make_standin(devdir / "video0")
    glob = ["--camera-glob", str(devdir / "video*")]
    r = cli(cli_env, *glob, "block", "camera", "--for", "1s")
    assert r.returncode == 0, r.stderr
    assert facts(cam)[0] == 0
    doc = json.loads(cli(cli_env, *glob, "blocks", "--json").stdout)
    if doc["blocks"]:  # still within its second: shown with its end time
        assert doc["blocks"][0]["until"] is not None
        until = dt.datetime.fromisoformat(doc["blocks"][0]["until"].replace("Z", "+00:00"))
        realenv.wait_until(lambda: time.time() > until.timestamp(), 5,
                           "the block's end time to pass")
        doc = json.loads(cli(cli_env, *glob, "blocks", "--json").stdout)
    # Lifted by the keeper `block` started (test_keeper.py) or, if it has not got there
    # yet, by this `blocks` command: either way it is gone and the node is open again.
    assert doc["blocks"] == [] and doc["lifted"] in ([], ["camera"])
    realenv.wait_until(lambda: facts(cam)[0] == 0o666, 10, "the node to be reopened")

    r = cli(cli_env, *glob, "block", "camera", "--for", "1h")
    assert r.returncode == 0 and "(1h left)" in r.stdout, r.stdout
    r = cli(cli_env, *glob, "blocks")
    assert r.returncode == 0 and "camera" in r.stdout and "closed (0000 root:root)" in r.stdout
    assert facts(cam)[0] == 0  # a restart keeps a block whose time is not up
    assert cli(cli_env, *glob, "unblock", "camera").returncode == 0
    assert facts(cam)[0] == 0o666
    assert cli(cli_env, *glob, "blocks").stdout.strip() == "nothing is blocked"


def test_cli_arguments_and_exit_codes(cli_env: dict[str, str], devdir: Path) -> None:
    glob = ["--camera-glob", str(devdir / "video*")]
    assert cli(cli_env, *glob, "block", "camera", "--for", "15").returncode == 2
    assert cli(cli_env, *glob, "block", "toaster").returncode == 2
    assert cli(cli_env, *glob, "block", "camera").returncode == 4  # no camera there
    assert "exit codes:" in cli(cli_env, "block", "--help").stdout
    blocks_file = Path(cli_env["CAMGUARD_STATE_DIR"]) / "blocks.json"
    blocks_file.parent.mkdir(parents=True, exist_ok=True)
    blocks_file.write_text("not json")
    r = cli(cli_env, *glob, "blocks")
    assert r.returncode == 0 and "kept as blocks.json.corrupt-1" in r.stderr


def test_cli_panic_mutes_and_closes_everything(cli_env: dict[str, str], devdir: Path,
                                               fresh_sound_server: realenv.SoundServer
                                               ) -> None:
    cam = make_standin(devdir / "video0")
    mic = make_standin(devdir / "snd" / "pcmC0D0c")
    env = {**cli_env, **fresh_sound_server.env}
    globs = ["--camera-glob", str(devdir / "video*"), "--mic-glob", str(devdir / "snd" / "pcm*c")]

    def muted() -> str:
        return fresh_sound_server.pactl("get-source-mute", "sinemic").stdout.strip()

    assert muted() == "Mute: no"
    r = cli(env, *globs, "panic")
    assert r.returncode == 0, r.stdout + r.stderr
    assert facts(cam)[0] == facts(mic)[0] == 0
    assert muted() == "Mute: yes"
    doc = json.loads(cli(env, *globs, "blocks", "--json").stdout)
    assert {(b["kind"], b["until"]) for b in doc["blocks"]} == {("camera", None),
                                                               ("microphone", None)}
    assert "mic-mute" in {h["kind"] for b in doc["blocks"] for h in b["how"]}
    r = cli(env, *globs, "unblock", "all")
    assert r.returncode == 0, r.stdout + r.stderr
    assert facts(cam)[0] == facts(mic)[0] == 0o666
    assert muted() == "Mute: no"


def test_cli_as_an_ordinary_user_without_the_helper(reachable: Path) -> None:
    from tests.integration.test_kill import run_as_nobody

    need(not Path("/usr/libexec/camguard/camguard-helper").exists(),
         "a machine without the helper installed (pkexec would ask for a password)")
    cam = make_standin(reachable / "video0")
    state = Path(tempfile.mkdtemp(prefix="camguard-state-", dir="/tmp"))
    try:
        os.chown(state, 65534, 65534)
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "CAMGUARD_STATE_DIR": str(state),
               "CAMGUARD_CONFIG_DIR": str(state / "config")}
        # Without privileges the node stays as it is (nobody may change it), but the block
        # holds for the caller's own apps (tests/integration/test_user_block.py) and says
        # what it cannot cover.
        r = run_as_nobody("--camera-glob", str(reachable / "video*"), "block", "camera", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "other accounts are not covered" in r.stdout
        assert "needs root or the privileged helper" in r.stdout
        assert facts(cam)[0] == 0o666
        r = run_as_nobody("--camera-glob", str(reachable / "video*"), "blocks", "--json",
                          env=env)
        [block] = json.loads(r.stdout)["blocks"]
        assert block["kind"] == "camera" and [h["kind"] for h in block["how"]] == ["user-guard"]
        r = run_as_nobody("--camera-glob", str(reachable / "video*"), "unblock", "camera",
                          env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        shutil.rmtree(state)
