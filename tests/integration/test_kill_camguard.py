"""``camguard kill`` never ends another camguard of the user (the tray, a ``watch``), found by
its executable and command line, never by its name; and
being "camguard" never shields a process that holds a camera or microphone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from camguard.core.blocks import Outcome
from camguard.platform.linux.instances import _runs_camguard, camguard_instance
from camguard.platform.linux.kill import Killer
from tests import realenv
from tests.conftest import make_standin, need

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.real


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock")}
    for what in ("config", "data", "state"):
        env[f"CAMGUARD_{what.upper()}_DIR"] = str(tmp_path / what)
    return env


def kill_cli(env: dict[str, str], pid: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "camguard", "kill", str(pid)],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
                          check=False)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(30)


def _script() -> Path:
    script = Path(sys.prefix) / "bin" / "camguard"
    need(script.exists(), f"the camguard console script at {script}")
    return script


@pytest.mark.parametrize("how", ["module", "script"])
def test_kill_refuses_another_camguard_command(tmp_path: Path, devdir: Path, how: str,
                                               started: list[subprocess.Popen[str]]) -> None:
    env = cli_env(tmp_path)
    launcher = [sys.executable, "-m", "camguard"] if how == "module" else [str(_script())]
    watch = subprocess.Popen([*launcher, "watch", "--camera-glob", str(devdir / "video*")],
                             env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True)
    started.append(watch)
    realenv.wait_until(lambda: camguard_instance(watch.pid) == "camguard", 10,
                       "the child to exec camguard")
    res = kill_cli(env, watch.pid)
    assert res.returncode == 3, res.stdout + res.stderr  # README: 3 = refused
    assert f"(pid {watch.pid}): it is camguard; quit it from its menu" in res.stderr
    assert watch.poll() is None


def test_kill_refuses_the_tray(x_session: realenv.XSession, tmp_path: Path, devdir: Path,
                               started: list[subprocess.Popen[str]]) -> None:
    from tests.gui.test_tray_launch import tray_cmd, tray_env

    env = {**tray_env(tmp_path, x_session.env), "PYTHONPATH": str(REPO)}
    log = tmp_path / "tray.log"
    with log.open("w") as out:
        tray = subprocess.Popen(tray_cmd(devdir), env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO, text=True)
    started.append(tray)
    realenv.wait_until(lambda: "tray ready" in log.read_text(errors="replace"), 60,
                       "the tray icon")
    assert camguard_instance(tray.pid) == "camguard"
    res = kill_cli(env, tray.pid)
    assert res.returncode == 3, res.stdout + res.stderr
    assert f"(pid {tray.pid}): it is camguard" in res.stderr
    assert tray.poll() is None


def test_being_camguard_never_shields_a_device_user(tmp_path: Path, devdir: Path,
                                                    started: list[subprocess.Popen[str]]
                                                    ) -> None:
    # Anyone can run "python3 -m camguard" from a folder with a camguard package of theirs.
    fake = tmp_path / "fake" / "camguard"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "print('ready', flush=True)\nsys.stdin.readline()\n")
    node = make_standin(devdir / "video0")
    proc = subprocess.Popen([sys.executable, "-m", "camguard", str(node)], cwd=fake.parent,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    started.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert camguard_instance(proc.pid) == "camguard"
    ctime = psutil.Process(proc.pid).create_time()
    # Not using a camera this Killer knows of: refused, as a camguard.
    assert Killer().kill(proc.pid, ctime).outcome is Outcome.REFUSED
    result = Killer(device_globs=[str(devdir / "video*")]).kill(proc.pid, ctime)
    assert result.outcome is Outcome.DONE, result.message
    assert proc.wait(10) == -15


@pytest.mark.parametrize(("args", "expected"), [
    (["-m", "camguard"], True),
    (["-m", "camguard", "tray"], True),
    (["-I", "-m", "camguard.__main__"], True),
    (["-Im", "camguard"], True),
    (["-mcamguard"], True),
    (["-X", "dev", "-m", "camguard"], True),
    (["/usr/bin/camguard", "watch"], True),
    (["/home/u/.venv/bin/camguard"], True),
    (["-m", "camguardx"], False),
    (["-m", "pytest", "camguard"], False),
    (["-c", "import camguard"], False),
    (["/tmp/camguard.py"], False),
    (["-X", "camguard"], False),
    ([], False),
])
def test_the_command_line_that_runs_camguard(args: list[str], expected: bool) -> None:
    assert _runs_camguard(args) is expected
