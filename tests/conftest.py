"""Shared fixtures: real sound servers, X sessions, stand-in devices and child holders.

A real component that is missing is a skip on a developer's machine and a FAILURE in CI
(CAMGUARD_REQUIRE_REAL=1), so CI can never go green by quietly testing nothing.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import realenv

REQUIRE_REAL = os.environ.get("CAMGUARD_REQUIRE_REAL") == "1"
# A camguard service installed on the machine that runs the tests (/run/camguard) must not
# answer the CLI and tray the tests start: by default they find no service. Tests of the
# service give their own socket (--socket or this variable).
os.environ["CAMGUARD_SOCKET"] = "/nonexistent/camguard-tests/no-service.sock"
# A run started in the background (`make test &`, nohup) inherits SIGINT ignored, and every
# child would too (an ignored signal survives exec): the tests that stop `camguard watch`
# with Ctrl-C's SIGINT would wait for nothing. Children get the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
IS_ROOT = os.geteuid() == 0


def need(condition: bool, why: str) -> None:
    """Skip (developer machine) or fail (CI) when a real component is unavailable."""
    if condition:
        return
    if REQUIRE_REAL:
        pytest.fail(f"real component missing in CI: {why}")
    pytest.skip(why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    """In CI (CAMGUARD_REQUIRE_REAL=1) no test may skip, whoever called pytest.skip: a skip
    is reported as a failure with its reason, so a green CI run tested everything."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if REQUIRE_REAL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and CAMGUARD_REQUIRE_REAL=1 allows no skip: {reason}"


def need_tools(tools: Sequence[str]) -> None:
    gone = realenv.missing(tools)
    need(not gone, f"not installed: {', '.join(gone)}")


def need_root() -> None:
    need(IS_ROOT, "needs root (mknod, other users, device modes)")


def coverage_env() -> dict[str, str]:
    """Under `make coverage`, what makes another account's system python measured too, for
    an environment built from scratch (the .pth the Makefile installs in the system
    python's site folder reads it); nothing otherwise."""
    cfg = os.environ.get("COVERAGE_PROCESS_CONFIG")
    return {"COVERAGE_PROCESS_CONFIG": cfg} if cfg else {}


def nobody_python(folder: Path) -> tuple[list[str], list[str]]:
    """How to run the system python as ``nobody`` with camguard importable.

    Returns the argv prefix and the paths to pass after the script (it does
    ``sys.path[:0] = <those>``): the venv's python lives under /root, which nobody cannot
    read, so the system python gets the repository and the venv's site-packages instead.
    ``folder`` and its parents are made walkable by others.
    """
    need_root()
    need(Path("/usr/bin/setpriv").exists() and Path("/usr/bin/python3").exists(),
         "setpriv and the system python3 (the venv python lives under /root)")
    for parent in [folder, *folder.parents]:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    site = next(Path(sys.prefix).glob("lib/python3*/site-packages"))
    repo = Path(__file__).resolve().parents[1]
    for p in [site, repo]:
        need(os.access(p, os.R_OK), f"{p} readable")
    return (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3"],
            [str(repo), str(site)])


# -- sound servers -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def pulseaudio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realenv.SoundServer]:
    """A session-wide real PulseAudio 16 with a sine source. Do not kill it: use fresh_*."""
    need_tools(realenv.PA_TOOLS)
    srv = realenv.start_pulseaudio(tmp_path_factory.mktemp("pa"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pipewire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realenv.SoundServer]:
    """A session-wide real PipeWire + pipewire-pulse with a sine source."""
    need_tools(realenv.PW_TOOLS)
    srv = realenv.start_pipewire(tmp_path_factory.mktemp("pw"))
    yield srv
    srv.stop()


@pytest.fixture(params=["pulseaudio", "pipewire"])
def sound_server(request: pytest.FixtureRequest) -> realenv.SoundServer:
    """Each test runs once against PulseAudio and once against PipeWire."""
    srv: realenv.SoundServer = request.getfixturevalue(request.param)
    return srv


@pytest.fixture(params=["pulseaudio", "pipewire"])
def fresh_sound_server(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> Iterator[realenv.SoundServer]:
    """A private server for a test that kills or restarts it."""
    if request.param == "pulseaudio":
        need_tools(realenv.PA_TOOLS)
        srv = realenv.start_pulseaudio(tmp_path)
    else:
        need_tools(realenv.PW_TOOLS)
        srv = realenv.start_pipewire(tmp_path)
    yield srv
    srv.stop()


# -- X session ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def x_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realenv.XSession]:
    """Xvfb with a real tray host (trayer) and a real notification daemon (dunst)."""
    need_tools(realenv.X_TOOLS)
    xs = realenv.start_x(tmp_path_factory.mktemp("x"))
    yield xs
    xs.stop()


# -- stand-in devices and holders ----------------------------------------------------------
def make_standin(path: Path) -> Path:
    """A node that opens like a device: a real character device (1:3, the kernel's null
    driver) when root, otherwise a FIFO-free regular file (inotify and /proc see both)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if IS_ROOT:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        path.chmod(0o666)
    else:
        path.write_bytes(b"")
    return path


@pytest.fixture
def devdir(tmp_path: Path) -> Path:
    """A private folder for stand-in nodes (globs point here, so tests never collide)."""
    d = tmp_path / "dev"
    (d / "snd").mkdir(parents=True)
    return d


HOLDER = textwrap.dedent("""
    import os, sys, time
    fds = [os.open(p, os.O_RDONLY) for p in sys.argv[1:]]
    sys.stdout.write("open\\n"); sys.stdout.flush()
    sys.stdin.readline()          # close when the test writes a line (or closes stdin)
    for fd in fds: os.close(fd)
    sys.stdout.write("closed\\n"); sys.stdout.flush()
    sys.stdin.readline()
""")


def write_holder_script(path: Path, tag: str = "") -> Path:
    """A Python program that holds nodes like :class:`Holder`'s (``tag``: a comment, so
    two of them differ in their bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {tag}\n{HOLDER}", encoding="utf-8")
    return path


class Holder:
    """A real child process that opens device nodes, holds them, and closes on request."""

    def __init__(self, paths: Sequence[Path | str], argv0: str | None = None, *,
                 exe: str | None = None, script: Path | str | None = None,
                 cwd: Path | None = None) -> None:
        # ``exe``: another Python binary to run it (a packaged one, a copy, a tampered one).
        # ``script``: run HOLDER from this file (write it with write_holder_script) rather
        # than with -c, the way a user's Python program runs.
        exe = exe or sys.executable
        code = ["-c", HOLDER] if script is None else [str(script)]
        cmd = [exe, *code, *map(str, paths)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, executable=exe, cwd=cwd,
                                     **({"process_group": 0} if argv0 is None else {}))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "open\n", f"holder failed to open {paths}: {line!r}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "closed\n"

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    """Start holders with ``holders.append(Holder([...]))``; all are ended after the test."""
    started: list[Holder] = []
    yield started
    for h in started:
        h.end()
