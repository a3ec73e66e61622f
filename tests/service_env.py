"""Test helpers for the system service: real accounts, a real root service subprocess, and
clients and device holders run as those accounts (setpriv), all in a walkable tmp folder.

The venv's python lives under /root, which other accounts cannot read, so their processes
run the system python with the repository and the venv's site-packages on PYTHONPATH.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camguard.app.guard_service import service_client
from camguard.service.client import ServiceClient
from tests import realenv
from tests.conftest import HOLDER, coverage_env, make_standin, need_root, need_tools

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
TOOLS = ["setpriv", "useradd", "userdel", "groupadd", "groupdel"]
SITE = site.getsitepackages()[0]


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


class Accounts:
    """Creates unique system accounts and groups; removes every one of them at the end."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.groups: list[str] = []

    def group(self) -> str:
        name = f"cgadm{secrets.token_hex(3)}"
        _account_tool(["groupadd", "-r", name])
        self.groups.append(name)
        return name

    def user(self, groups: Sequence[str] = ()) -> Account:
        name = f"cgu{secrets.token_hex(4)}"
        cmd = ["useradd", "-M", "-r", "-s", "/usr/sbin/nologin"]
        if groups:
            cmd += ["-G", ",".join(groups)]
        _account_tool([*cmd, name])
        self.users.append(name)
        entry = pwd.getpwnam(name)
        return Account(name, entry.pw_uid, entry.pw_gid)

    def remove(self) -> None:
        for name in self.users:
            with contextlib.suppress(AssertionError):
                _account_tool(["userdel", name])
        for name in self.groups:
            with contextlib.suppress(KeyError, AssertionError):
                grp.getgrnam(name)
                _account_tool(["groupdel", name])


def _account_tool(cmd: list[str]) -> None:
    """Run useradd/groupadd; retried while another process holds /etc/passwd's lock (other
    suites on this machine create accounts too)."""
    errors: list[str] = []

    def done() -> bool:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        errors.append(res.stderr.strip())
        return res.returncode == 0

    try:
        realenv.wait_until(done, 30, f"{cmd[0]} to succeed")
    except TimeoutError:
        raise AssertionError(f"{' '.join(cmd)} failed: {errors[-3:]}") from None


@dataclass
class Box:
    """A folder every account can walk: stand-in devices and the socket live here; the
    service's own folders inside it are root-only (0700)."""

    root: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def sock(self) -> Path:
        return self.root / "run" / "camguard.sock"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def policy(self) -> Path:
        return self.root / "policy.toml"

    def node(self, name: str) -> Path:
        path = self.dev / name
        return path if path.exists() else make_standin(path)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CAMGUARD_DATA_DIR": str(self.data),
                "CAMGUARD_STATE_DIR": str(self.state), "CAMGUARD_CONFIG_DIR": str(self.config),
                "PYTHONPATH": str(ROOT)}

    def user_env(self, who: Account) -> dict[str, str]:
        home = self.root / "home" / who.name
        return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
                "PYTHONPATH": f"{ROOT}:{SITE}", "PYTHONDONTWRITEBYTECODE": "1",
                "CAMGUARD_CONFIG_DIR": str(home / "config"),
                "CAMGUARD_DATA_DIR": str(home / "data"),
                "CAMGUARD_STATE_DIR": str(home / "state"), **coverage_env()}


@contextlib.contextmanager
def box() -> Iterator[Box]:
    need_root()
    need_tools(TOOLS)
    root = Path(tempfile.mkdtemp(prefix="camguard-svc-", dir="/tmp"))
    root.chmod(0o755)
    for sub in ("dev", "run", "home"):
        (root / sub).mkdir(mode=0o755)
    (root / "dev" / "snd").mkdir(mode=0o755)
    b = Box(root)
    try:
        yield b
    finally:
        # SIGTERM first: the service then stops as in production (and coverage.py, which
        # measures it, writes its data); SIGKILL only for what is still there after that.
        for p in b.procs:
            if p.poll() is None:
                p.terminate()
        for p in b.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def setpriv(who: Account, groups: Sequence[int] = ()) -> list[str]:
    # --pdeathsig: a process of a test account dies with the test run (realenv.bound_to_tests).
    # Set by a second setpriv, already the account: the kernel clears the parent-death
    # signal when the uid changes (prctl(2)), and one setpriv sets it before it drops the
    # uid (util-linux 2.38: such a process outlived the run).
    cmd = ["setpriv", f"--reuid={who.uid}", f"--regid={who.gid}"]
    cmd += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    return [*cmd, "--", "setpriv", "--pdeathsig", "KILL", "--"]


def camguard_as(b: Box, who: Account, *args: str, stdin: str = "",
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``camguard ARGS --socket <the box's socket>`` run as ``who``."""
    home = b.root / "home" / who.name
    home.mkdir(mode=0o755, exist_ok=True)
    os.chown(home, who.uid, who.gid)
    return subprocess.run(
        [*setpriv(who), SYSTEM_PYTHON, "-m", "camguard", *args, "--socket", str(b.sock)],
        input=stdin, capture_output=True, text=True, timeout=timeout, cwd=b.root,
        env=b.user_env(who), check=False)


class UserHolder:
    """A process of ``who`` that holds ``nodes`` open until told to close them."""

    def __init__(self, b: Box, who: Account, nodes: Sequence[Path]) -> None:
        self.proc = subprocess.Popen(
            [*setpriv(who), SYSTEM_PYTHON, "-c", HOLDER, *map(str, nodes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=b.root,
            env=b.user_env(who))
        b.procs.append(self.proc)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "open\n", f"holder of {who.name} could not open {nodes}: {line!r}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


RAW = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(30)
try:
    s.sendall(sys.stdin.buffer.read())
except OSError:
    pass  # the service closed the connection on a line that was too long
f = s.makefile("rb")
for _ in range(int(sys.argv[2])):
    try:
        line = f.readline()
    except OSError:  # ECONNRESET: it closed with our unread bytes still queued
        line = b""
    if not line:
        sys.stdout.write("<closed>\\n")
        break
    sys.stdout.write(line.decode())
"""


def raw_as(b: Box, who: Account, data: bytes, answers: int = 1) -> list[str]:
    """Send raw bytes as ``who`` on one connection; the answer lines (``<closed>`` at EOF)."""
    out = subprocess.run([*setpriv(who), SYSTEM_PYTHON, "-c", RAW, str(b.sock), str(answers)],
                         input=data, capture_output=True, timeout=60, cwd=b.root,
                         env=b.user_env(who), check=True)
    return out.stdout.decode().splitlines()


class Service:
    """``python -m camguard service`` as root, in ``b``; started, stopped or SIGKILLed."""

    def __init__(self, b: Box, *extra: str, admin_group: str = "nogroup-camguard",
                 heartbeat: float = 0.2, lock_backoff: float = 120.0) -> None:
        self.box = b
        self.args = ["--socket", str(b.sock), "--camera-glob", str(b.dev / "video*"),
                     "--mic-glob", str(b.dev / "snd" / "pcmC*D*c"),
                     "--admin-group", admin_group, "--heartbeat", str(heartbeat),
                     "--lock-backoff", str(lock_backoff), "--policy-file", str(b.policy),
                     *extra]
        self.proc: subprocess.Popen[str] | None = None
        self.log = b.root / "service.log"

    def start(self) -> Service:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                realenv.bound_to_tests([sys.executable, "-m", "camguard", "service", "-v",
                                        *self.args]),
                stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=self.box.env())
        self.box.procs.append(self.proc)
        client = service_client(self.box.sock, timeout=5.0)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()}")
            return client.available()

        realenv.wait_until(up, 30, "the service to answer")
        return self

    @property
    def client(self) -> ServiceClient:
        return service_client(self.box.sock, timeout=30.0)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def pids_in_status(answer: dict[str, Any]) -> set[int | None]:
    return {u["pid"] for d in answer.get("devices", []) for u in d.get("users", [])}


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(path))
    return s
