"""A process named with line and bidi controls (U+2028, U+202E, U+0085...) through the real
root service: every way its name leaves camguard (events.jsonl, ``watch --json``,
``history --json``, syslog values) carries the controls escaped, so a reader that splits
lines sees exactly one record per event, and a JSON parser reads the name back exactly."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path
from typing import Any

import pytest

from camguard.store.syslog import format_rfc5424
from tests import realenv
from tests.service_env import (
    SYSTEM_PYTHON,
    Accounts,
    Box,
    Service,
    camguard_as,
    pids_in_status,
    setpriv,
)

pytestmark = pytest.mark.real

# 11 bytes: fits the kernel's 15-byte comm.
HOSTILE = "a\u2028b\u202ec\x85"
UNSAFE = ("\u2028", "\u2029", "\x85", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066",
          "\u2069", "\x1b")
# Names itself through prctl(PR_SET_NAME) (linux/prctl.h: 15), then holds the node open.
NAMED_HOLDER = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[2].encode()), 0, 0, 0)
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
sys.stdin.readline()
"""


def records(text: str) -> list[dict[str, Any]]:
    """What a line-splitting consumer sees: every piece str.splitlines() gives must parse."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Output:
    """A child's stdout read as it comes, without blocking the test."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.data = b""

    def poll(self, timeout: float = 0.2) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            self.data += os.read(self.fd, 1 << 16)
        return self.data


def until_watching(b: Box, who: Any, node: Path, out: Output) -> None:
    """Use ``node`` briefly, again and again, until the watcher prints the use: from then
    on it is subscribed and misses nothing."""
    def probe() -> bool:
        probe_proc = subprocess.Popen(
            [*setpriv(who), SYSTEM_PYTHON, "-c", NAMED_HOLDER, str(node), "probe"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=b.root,
            env=b.user_env(who))
        assert probe_proc.stdout is not None
        probe_proc.stdout.readline()
        seen = b'"probe"' in out.poll(1.0)
        probe_proc.communicate("\n", timeout=20)
        return seen or b'"probe"' in out.poll(0.5)

    realenv.wait_until(probe, 30, "the watcher to report a use")


def test_line_and_bidi_controls_in_a_name_are_escaped_at_every_exit(
        sandbox: Box, accounts: Accounts) -> None:
    alice = accounts.user()
    svc = Service(sandbox).start()
    node = sandbox.node("video0")
    watcher = subprocess.Popen(
        [*setpriv(alice), SYSTEM_PYTHON, "-m", "camguard", "watch", "--json", "--socket",
         str(sandbox.sock)], stdout=subprocess.PIPE, cwd=sandbox.root,
        env=sandbox.user_env(alice))
    sandbox.procs.append(watcher)
    out = Output(watcher)
    until_watching(sandbox, alice, sandbox.node("video1"), out)
    holder = subprocess.Popen([*setpriv(alice), SYSTEM_PYTHON, "-c", NAMED_HOLDER, str(node),
                               HOSTILE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=sandbox.root, env=sandbox.user_env(alice))
    sandbox.procs.append(holder)
    assert holder.stdout is not None and holder.stdout.readline() == "open\n"
    realenv.wait_until(lambda: holder.pid in pids_in_status(svc.client.status()), 20,
                       "the named holder in the service's status")
    holder.communicate("\n", timeout=20)
    realenv.wait_until(lambda: holder.pid not in pids_in_status(svc.client.status()), 20,
                       "the named holder to stop")

    # watch --json, up to the stop event; then split as a consumer would.
    stop = f'"event":"stopped","kind":"camera","device":"{node}"'.encode()
    realenv.wait_until(lambda: out.poll() and stop in out.data and
                       out.data.count(b"\n", out.data.index(stop)) > 0, 20,
                       "the stop in the watch output")
    watcher.terminate()
    watcher.wait(10)
    text = out.data.decode("utf-8")
    assert not any(ch in text for ch in UNSAFE), text
    got = [r for r in records(text)
           if r.get("pid") == holder.pid and r["event"] in ("started", "stopped")]
    assert [r["event"] for r in got] == ["started", "stopped"]
    assert all(r["name"] == HOSTILE for r in got)

    # events.jsonl, the service's event log.
    log_path = sandbox.state / "events.jsonl"
    realenv.wait_until(lambda: b"device.stopped" in log_path.read_bytes(), 20,
                       "the stop in the event log")
    text = log_path.read_text("utf-8")
    assert not any(ch in text for ch in UNSAFE)
    mine = [r for r in records(text) if r.get("pid") == holder.pid]
    assert [r["type"] for r in mine] == ["device.started", "device.stopped"]
    assert mine[0]["name"] == HOSTILE and HOSTILE in mine[0]["cmdline"]

    # syslog: the same record as an RFC 5424 message is one line with no raw control.
    message = format_rfc5424(mine[0]).decode("utf-8")
    assert len(message.splitlines()) == 1 and not any(ch in message for ch in UNSAFE)
    # (RFC 5424 section 6.3.3 doubles each backslash inside a PARAM-VALUE.)
    assert 'name="a\\\\u2028b\\\\u202ec\\\\x85"' in message

    # history --json through the service.
    res = camguard_as(sandbox, alice, "history", "--json")
    assert res.returncode == 0, res.stderr
    assert not any(ch in res.stdout for ch in UNSAFE)
    [entry] = [e for e in json.loads(res.stdout) if e.get("pid") == holder.pid]
    assert entry["name"] == HOSTILE
