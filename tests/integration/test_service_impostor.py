"""The client talks only to a service run by root (or by the caller itself), whatever
``CAMGUARD_SOCKET`` or ``--socket`` says: an account's own server at that path is refused
with a clear message, never used and never silently skipped."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from camguard.app.guard_service import service_client
from camguard.service.client import ServiceImpostor
from tests.service_env import SYSTEM_PYTHON, Account, Accounts, Box, setpriv

pytestmark = pytest.mark.real

# A server that answers every line like a friendly camguard service (and would collect
# any password sent to it).
IMPOSTOR = """
import json, os, socket, sys
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
srv.listen(8)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    f = conn.makefile("rb")
    for line in f:
        conn.sendall(json.dumps({"ok": True, "service": "camguard", "protocol": 1,
                                 "devices": [], "degraded": [], "caller": {}}).encode()
                     + b"\\n")
    conn.close()
"""


def start_impostor(b: Box, who: Account) -> Path:
    run = b.root / "impostor"
    run.mkdir(mode=0o755)
    os.chown(run, who.uid, who.gid)
    path = run / "camguard.sock"
    proc = subprocess.Popen([*setpriv(who), SYSTEM_PYTHON, "-c", IMPOSTOR, str(path)],
                            stdout=subprocess.PIPE, text=True, cwd=b.root, env=b.user_env(who))
    b.procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return path


def camguard_env(b: Box, who: Account, sock: Path, *args: str
                 ) -> subprocess.CompletedProcess[str]:
    home = b.root / "home" / who.name
    home.mkdir(mode=0o755, exist_ok=True)
    os.chown(home, who.uid, who.gid)
    return subprocess.run([*setpriv(who), SYSTEM_PYTHON, "-m", "camguard", *args],
                          capture_output=True, text=True, timeout=60, cwd=b.root,
                          env={**b.user_env(who), "CAMGUARD_SOCKET": str(sock)}, check=False)


def test_a_user_owned_socket_is_refused_whatever_camguard_socket_says(
        sandbox: Box, accounts: Accounts) -> None:
    mallory, bob = accounts.user(), accounts.user()
    fake = start_impostor(sandbox, mallory)
    for args in (("status", "--json"), ("status", "--socket", str(fake)),
                 ("unblock", "camera", "--password-stdin")):
        res = camguard_env(sandbox, bob, fake, *args)
        assert res.returncode == 1, (args, res)
        assert f"{fake} is not the camguard service: the socket is owned by uid " \
            f"{mallory.uid} ({mallory.name}), not root" in res.stderr, res.stderr
    # Root is not fooled either.
    with pytest.raises(ServiceImpostor, match="not the camguard service"):
        service_client(fake, timeout=10).hello()


def test_a_root_owned_socket_served_by_another_account_is_refused(
        sandbox: Box, accounts: Accounts) -> None:
    """The file belongs to root but the process answering on it does not: the kernel's
    word on the server (SO_PEERCRED) decides."""
    mallory, bob = accounts.user(), accounts.user()
    fake = start_impostor(sandbox, mallory)
    os.chown(fake, 0, 0)
    res = camguard_env(sandbox, bob, fake, "status")
    assert res.returncode == 1, res
    assert f"it is served by uid {mallory.uid} ({mallory.name}), not root" in res.stderr, \
        res.stderr
