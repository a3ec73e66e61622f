"""Ending real processes: TERM then KILL, never a reused pid, never a protected process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import Outcome
from camguard.platform.linux.fdscan import scan_holders
from camguard.platform.linux.kill import Killer
from tests import realenv
from tests.conftest import Holder, coverage_env, make_standin, need, need_root, need_tools
from tests.sound_holder import impostor

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.real

STUBBORN = textwrap.dedent("""
    import os, signal, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fd = os.open(sys.argv[1], os.O_RDONLY)
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
""")


class Stubborn:
    """A child that holds a node and ignores SIGTERM (an app that will not let go)."""

    def __init__(self, node: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", STUBBORN, str(node)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def stubborn(devdir: Path) -> Iterator[Stubborn]:
    s = Stubborn(make_standin(devdir / "video1"))
    yield s
    s.end()


def held(node: Path) -> set[int]:
    found, _ = scan_holders([str(node)])
    return {pid for pid, _ in found.get(str(node), [])}


def test_kill_ends_the_holder_and_closes_the_device(devdir: Path, holders: list[Holder]
                                                    ) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    assert held(node) == {h.pid}
    result = Killer().kill(h.pid, psutil.Process(h.pid).create_time())
    assert result.outcome is Outcome.DONE, result.message
    assert "SIGTERM" in result.message
    assert h.proc.wait(10) == -15
    assert held(node) == set()


def test_mismatched_create_time_is_refused(devdir: Path, holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    result = Killer().kill(h.pid, psutil.Process(h.pid).create_time() - 1.0)
    assert result.outcome is Outcome.REFUSED
    assert "different process" in result.message
    assert h.proc.poll() is None and held(node) == {h.pid}


def test_sigkill_after_the_grace_period(stubborn: Stubborn) -> None:
    result = Killer(grace=0.3).kill(stubborn.proc.pid)
    assert result.outcome is Outcome.DONE, result.message
    assert "SIGKILL after SIGTERM was ignored" in result.message
    assert stubborn.proc.wait(10) == -9


def test_force_kills_at_once(stubborn: Stubborn) -> None:
    result = Killer(grace=600).kill(stubborn.proc.pid, force=True)
    assert result.outcome is Outcome.DONE
    assert stubborn.proc.wait(10) == -9


@pytest.mark.parametrize(("who", "why"), [
    (lambda: 1, "init"),
    (os.getpid, "camguard itself"),
    (os.getppid, "camguard runs inside it"),
])
def test_protected_processes_are_refused(who: object, why: str) -> None:
    pid = who()  # type: ignore[operator]
    before = psutil.Process(pid).create_time()
    result = Killer().kill(pid)
    assert result.outcome is Outcome.REFUSED and why in result.message
    assert psutil.Process(pid).create_time() == before


def test_kernel_threads_are_refused() -> None:
    kthreads = [p for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == 2]
    need(bool(kthreads), "no kernel threads visible (pid namespace)")
    assert Killer().kill(kthreads[0].pid).outcome is Outcome.REFUSED


def test_the_sound_server_is_refused(pulseaudio: realenv.SoundServer) -> None:
    pid = pulseaudio.server_pid()
    result = Killer().kill(pid, psutil.Process(pid).create_time(), force=True)
    assert result.outcome is Outcome.REFUSED
    assert "mute instead: killing the sound server would silence the whole desktop" in \
        result.message
    assert pulseaudio.ready()


def test_a_process_that_calls_itself_pipewire_is_not_protected(devdir: Path) -> None:
    with impostor(make_standin(devdir / "snd" / "pcmC0D0c")) as fake:
        assert psutil.Process(fake.pid).name() == "pipewire"  # the name is no identity
        killer = Killer()
        assert not killer.is_sound_server(fake.pid)
        result = killer.kill(fake.pid, psutil.Process(fake.pid).create_time())
        assert result.outcome is Outcome.DONE, result.message
        assert fake.wait(10) == -15


def test_every_part_of_a_real_pipewire_is_the_sound_server(
        pipewire: realenv.SoundServer) -> None:
    killer = Killer()
    for name in ("pipewire", "wireplumber", "pipewire-pulse"):
        assert killer.is_sound_server(pipewire.procs[name].pid), name
    assert not killer.is_sound_server(pipewire.procs["dbus"].pid)  # the session's, not audio
    pid = pipewire.procs["pipewire"].pid
    result = killer.kill(pid, psutil.Process(pid).create_time(), force=True)
    assert result.outcome is Outcome.REFUSED and "it is the sound server" in result.message
    assert pipewire.ready()


def test_a_vanished_pid_is_not_found() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    result = Killer().kill(proc.pid)
    assert result.outcome is Outcome.NOT_FOUND
    assert Killer().kill(0).outcome is Outcome.NOT_FOUND


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    # The CLI itself, not a camguard service the machine may run (which would answer for
    # an account that is not root, with its own refusals).
    env = {**os.environ, "CAMGUARD_SOCKET": "/nonexistent/camguard.sock"}
    return subprocess.run([sys.executable, "-m", "camguard", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, check=False, env=env)


def test_cli_exit_codes(devdir: Path, holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    ctime = psutil.Process(h.pid).create_time()
    assert _cli("kill", str(h.pid), "--create-time", str(ctime - 2)).returncode == 3
    assert h.proc.poll() is None
    done = _cli("kill", str(h.pid), "--create-time", repr(ctime))
    assert done.returncode == 0, done.stderr
    assert f"(pid {h.pid})" in done.stdout
    h.proc.wait(10)
    assert _cli("kill", str(h.pid)).returncode == 4
    refused = _cli("kill", "1")
    assert refused.returncode == 3 and "init" in refused.stderr
    assert _cli("kill", "abc").returncode == 2
    assert _cli("kill", "-5").returncode == 2
    assert "exit codes:" in _cli("kill", "--help").stdout


# camguard run by an ordinary user: the system python (nobody cannot read the venv's
# interpreter under /root) with the repository and the venv's packages on its path.
AS_USER = ("import sys; sys.path[:0] = [{repo!r}, {site!r}]; "
           "from camguard.cli import main; sys.exit(main())")


def run_as_nobody(*args: str, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    need_root()
    need_tools(["setpriv"])
    # The venv that runs the tests (a worktree has no .venv of its own).
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    code = AS_USER.format(repo=str(REPO), site=str(site))
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/python3", "-c", code, *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd="/",
                          env={**(env or {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}),
                               **coverage_env()})


def test_another_users_process_needs_the_helper(devdir: Path, holders: list[Holder]) -> None:
    node = make_standin(devdir / "video0")
    h = Holder([node])
    holders.append(h)
    # With the helper installed pkexec would ask for a password; that path is
    # tests/integration/test_helper_polkit.py's, in a private polkit scene.
    need(not Path("/usr/libexec/camguard/camguard-helper").exists(),
         "a machine without the helper installed (pkexec would ask for a password)")
    r = run_as_nobody("kill", str(h.pid))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "belongs to root" in r.stderr and "privileged helper" in r.stderr
    assert h.proc.poll() is None and held(node) == {h.pid}
