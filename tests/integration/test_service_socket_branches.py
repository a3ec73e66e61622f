"""The service's socket, for real: a second service on the same path, a file that is not a
socket, a socket left by a killed run; and the client's side of a watch, of a full
service, of a broken answer and of a server whose account has no name."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.app.guard_service import service_client
from camguard.service import protocol as P
from camguard.service.client import (
    ServiceImpostor,
    ServiceUnavailable,
    Watch,
    _exchange,
)
from tests import realenv
from tests.conftest import Holder
from tests.service_env import ROOT, SYSTEM_PYTHON, Box, Service

pytestmark = pytest.mark.real

# A uid no passwd entry names (useradd -r hands out far lower ones).
NAMELESS_UID = 61999


def second_service(b: Box, svc: Service) -> subprocess.CompletedProcess[str]:
    """Another service with its own folders but the same socket path."""
    other = b.root / "second"
    env = {**b.env(), "CAMGUARD_DATA_DIR": str(other / "data"),
           "CAMGUARD_STATE_DIR": str(other / "state")}
    return subprocess.run(realenv.bound_to_tests([sys.executable, "-m", "camguard", "service",
                                                  *svc.args]),
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
                          check=False)


def test_a_second_service_on_the_same_socket_refuses_to_start(sandbox: Box) -> None:
    svc = Service(sandbox).start()
    res = second_service(sandbox, svc)
    assert res.returncode != 0
    assert f"a camguard service already answers at {sandbox.sock}" in res.stderr, res.stderr
    assert svc.client.hello()["ok"] is True  # the first one was not disturbed


def test_a_file_that_is_not_a_socket_is_never_replaced(sandbox: Box) -> None:
    sandbox.sock.parent.mkdir(exist_ok=True)
    sandbox.sock.write_text("someone's file")
    res = second_service(sandbox, Service(sandbox))
    assert res.returncode != 0
    assert f"{sandbox.sock} exists and is not a socket; not replacing it" in res.stderr
    assert sandbox.sock.read_text() == "someone's file"


def test_the_sockets_folder_is_made_when_missing(sandbox: Box) -> None:
    sock = sandbox.root / "run" / "not-yet" / "camguard.sock"
    args = Service(sandbox).args
    args[args.index("--socket") + 1] = str(sock)
    proc = subprocess.Popen(realenv.bound_to_tests([sys.executable, "-m", "camguard",
                                                    "service", *args]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=sandbox.env())
    sandbox.procs.append(proc)
    client = service_client(sock, timeout=5)
    realenv.wait_until(lambda: proc.poll() is None and client.available(), 30,
                       "the service to answer in the new folder")
    assert sock.parent.stat().st_mode & 0o777 == 0o755


def test_a_socket_left_by_a_killed_service_is_replaced(sandbox: Box) -> None:
    first = Service(sandbox).start()
    first.kill()  # SIGKILL: the socket file stays, nobody answers on it
    assert sandbox.sock.exists()
    assert Service(sandbox).start().client.hello()["ok"] is True


def test_a_watch_gets_events_and_ends_when_the_service_stops(sandbox: Box) -> None:
    cam = sandbox.node("video0")
    svc = Service(sandbox).start()
    with svc.client.watch() as watch:
        assert watch.hello["watching"] is True and watch.hello["caller"]["uid"] == 0
        holder = Holder([cam])
        try:
            events = iter(watch)
            seen = next(e for e in events
                        if e.get("event") == "started" and e.get("pid") == holder.pid)
            assert seen["device"] == str(cam)
        finally:
            holder.end()
        assert svc.stop() == 0
        rest = list(events)  # ends once the service has closed the connection
        assert all(e.get("ok") is not False for e in rest), rest


def test_a_full_service_refuses_a_watch_with_its_reason(sandbox: Box) -> None:
    svc = Service(sandbox, "--max-clients", "2").start()
    watches: list[Watch] = []

    def second() -> bool:
        # The start-up check's connection gives its slot back on the service's own time.
        with contextlib.suppress(ServiceUnavailable):
            watches.append(svc.client.watch())
        return len(watches) == 2

    try:
        watches.append(svc.client.watch())
        realenv.wait_until(second, 10, "a second slot")
        with pytest.raises(ServiceUnavailable, match="too many clients; try again later"):
            svc.client.watch()
    finally:
        for w in watches:
            w.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, list[bytes]]]:
    """A server run by this account (trusted like root): it answers each connection once
    with whatever is queued in the list, then closes."""
    path = tmp_path / "own.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    answers: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                if answers:
                    conn.sendall(answers.pop(0))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, answers
    srv.shutdown(socket.SHUT_RDWR)
    srv.close()
    t.join(5)


def test_a_broken_answer_or_a_closed_connection_is_unavailable(
        own_server: tuple[Path, list[bytes]]) -> None:
    path, answers = own_server
    answers.append(b"this is not JSON\n")
    with pytest.raises(ServiceUnavailable, match=f"talking to the service at {path} failed"):
        service_client(path, timeout=10).hello()
    with pytest.raises(ServiceUnavailable, match="the service closed the connection"):
        service_client(path, timeout=10).hello()  # nothing queued: closed unanswered
    answers.append(b'{"ok": false, "error": "no"}\n')
    with pytest.raises(ServiceUnavailable, match="no"):
        service_client(path, timeout=10).watch()


SERVER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.recv(100)
"""


def test_a_server_of_an_account_without_a_name_is_refused_by_number(sandbox: Box) -> None:
    run = sandbox.root / "nameless"
    run.mkdir(mode=0o755)
    os.chown(run, NAMELESS_UID, NAMELESS_UID)
    path = run / "camguard.sock"
    proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", f"--reuid={NAMELESS_UID}",
                             f"--regid={NAMELESS_UID}", "--clear-groups", SYSTEM_PYTHON,
                             "-c", SERVER, str(path)],
                            stdout=subprocess.PIPE, text=True, cwd="/")
    sandbox.procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    with pytest.raises(ServiceImpostor,
                       match=f"the socket is owned by uid {NAMELESS_UID}, not root"):
        service_client(path, timeout=10).hello()


def test_a_refusal_sent_before_the_request_was_read_still_reaches_the_caller() -> None:
    """A busy service answers and closes at once, so the client's send can fail with EPIPE
    while the answer waits in its socket (seen under load: 'Broken pipe' instead of 'too
    many clients'); the answer wins."""
    ours, service = socket.socketpair()
    with ours:
        service.sendall(P.encode(P.error(P.BUSY, "too many clients; try again later")))
        service.close()
        answer, _lines = _exchange(ours, P.encode({"op": "watch"}))
    assert answer == {"ok": False, "code": P.BUSY, "error": "too many clients; try again later"}
    ours, service = socket.socketpair()
    with ours:
        service.close()  # nothing waiting: the send error is what the caller gets
        with pytest.raises(BrokenPipeError, match="Broken pipe"):
            _exchange(ours, P.encode({"op": "hello"}))


def test_a_full_listen_queue_makes_the_client_wait_not_fail(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A burst of another account's connections fills the service's listen queue; connect(2)
    on a Unix socket with a timeout then fails at once with EAGAIN. The client waits for room
    (bench/service_abuse.py found `status` failing during a 500-connection burst)."""
    path = tmp_path / "queue.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    queued: list[socket.socket] = []
    while True:  # fill the queue: the next connect is refused with EAGAIN
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(str(path))
        except BlockingIOError:
            s.close()
            break
        queued.append(s)
    answers: list[dict[str, object]] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            answers.append(service_client(path, timeout=30).hello())
        except BaseException as exc:
            errors.append(exc)

    with caplog.at_level("DEBUG", logger="camguard.service.client"):
        client = threading.Thread(target=ask)
        client.start()
        realenv.wait_until(lambda: errors or any("listen queue is full" in r.getMessage()
                                                 for r in caplog.records),
                           20, "the client to meet the full queue")
        assert not errors, errors
        for s in queued:  # room again: the service takes the queued connections
            conn, _ = listener.accept()
            conn.close()
            s.close()
        conn, _ = listener.accept()  # the client's
        with conn:
            assert conn.makefile("rb").readline() == P.encode({"op": "hello"})
            conn.sendall(P.encode({"ok": True, "hello": "camguard"}))
            client.join(30)
    listener.close()
    assert not errors, errors
    assert answers == [{"ok": True, "hello": "camguard"}]
