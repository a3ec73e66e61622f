"""cli/tray_status.py: ``camguard status --json`` asks this account's running tray, and
trusts only a real answer from this account (real Unix sockets, real peer credentials)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from camguard.cli import tray_status
from camguard.cli.tray_status import tray_status as ask
from tests.conftest import nobody_python

DOC = {"devices": [{"id": "/dev/video0", "users": []}], "degraded": [], "coverage": []}


@contextmanager
def tray(path: Path, answer: Callable[[socket.socket], None]) -> Iterator[list[bytes]]:
    """A server at ``path`` that reads the request and answers with ``answer``."""
    heard: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            heard.append(conn.recv(100))
            answer(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield heard
    finally:
        server.close()
        t.join(10)


def test_no_tray_is_none_without_connecting(tmp_path: Path) -> None:
    assert ask(str(tmp_path / "none.sock")) is None


def test_the_trays_document_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "t.sock"
    with tray(path, lambda c: c.sendall(json.dumps(DOC).encode() + b"\n")) as heard:
        assert ask(str(path)) == DOC
    assert heard == [b"status\n"]


@pytest.mark.parametrize("answer", [
    b"",  # the tray could not build it
    b"not json",
    b"[1, 2]",
    json.dumps({"devices": []}).encode(),  # not a status document
    b"\xff\xfe" + b"x" * 10,  # invalid UTF-8
])
def test_anything_but_a_document_is_none(tmp_path: Path, answer: bytes) -> None:
    path = tmp_path / "t.sock"
    with tray(path, lambda c: c.sendall(answer)):
        assert ask(str(path)) is None


def test_an_endless_answer_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tray_status, "MAX_ANSWER", 64 * 1024)
    path = tmp_path / "t.sock"

    def flood(c: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the client stopped reading
            c.sendall(b"[" * (1024 * 1024))

    with tray(path, flood):
        assert ask(str(path)) is None


def test_a_silent_tray_is_given_up_on(tmp_path: Path) -> None:
    path = tmp_path / "t.sock"
    done = threading.Event()
    with tray(path, lambda _c: done.wait(30)):
        assert ask(str(path), timeout=0.3) is None
        done.set()


def test_a_stale_socket_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "t.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens (a tray that crashed)
    assert ask(str(path)) is None


SQUATTER = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.recv(100)
c.sendall(sys.argv[2].encode())
c.close()
"""


def test_another_accounts_socket_is_not_believed(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """In the shared temp folder another account could create the tray's socket name
    first and answer "nothing in use": the kernel's peer credentials say whose it is."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o1777)
    prefix, _paths = nobody_python(folder)  # as nobody, in a folder it can reach
    path = folder / "camguard-tray-0.sock"
    fake = json.dumps({"devices": [], "degraded": [], "coverage": []})
    squatter = subprocess.Popen([*prefix, "-c", SQUATTER, str(path), fake],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert squatter.stdout is not None and squatter.stdout.readline() == "ready\n"
        with caplog.at_level(logging.WARNING, logger="camguard.cli.tray_status"):
            assert ask(str(path)) is None
        assert "belongs to another account (uid 65534)" in caplog.text
    finally:
        squatter.kill()
        squatter.wait(10)


def test_a_plain_name_is_in_qts_temp_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    assert tray_status.socket_path("camguard-tray-5.sock") == "/var/tmp/camguard-tray-5.sock"
    assert tray_status.socket_path("/run/user/5/x.sock") == "/run/user/5/x.sock"


@pytest.mark.parametrize("doc", [
    {"devices": [{"id": "/dev/video0", "users": []}], "degraded": [], "coverage": []},  # kind?
    {"devices": [{"kind": "webcam", "id": "x"}], "degraded": [], "coverage": []},
    {"devices": ["not a device"], "degraded": [], "coverage": []},
    {"devices": [], "degraded": [{"source": "procfs"}], "coverage": []},
    {"devices": [{"kind": "camera", "id": "/dev/video0", "users": ["zoom"]}],
     "degraded": [], "coverage": []},
])
def test_a_document_that_does_not_read_as_a_state_is_none(doc: dict[str, object]) -> None:
    """The text ``status`` reads the tray's document as the service's; what does not read
    is None (the command then looks itself), never a traceback."""
    assert tray_status.tray_answer(doc) is None


def test_the_trays_document_reads_as_the_state_the_text_prints() -> None:
    doc = {"devices": [{"kind": "camera", "id": "/dev/video0", "name": "Cam\x1b[2J",
                        "users": [{"pid": 42, "create_time": 1.5, "name": "<b>zoom</b>",
                                   "since": "2026-12-02T21:24:25.690Z"}]}],
           "degraded": [{"source": "pulse", "reason": "down"}], "coverage": []}
    answer = tray_status.tray_answer(doc)
    assert answer is not None and answer.doc is doc
    [usage] = answer.state.usages
    assert usage.process is not None and usage.process.name == "<b>zoom</b>"
    assert answer.state.devices[0].name == "Cam\x1b[2J"
    assert answer.state.degraded[0].reason == "down"
