"""One account cannot lock the others out of the service: per-account connection quotas
(watches included) with slots kept for admins, watches that give their slot back, and
refusals logged at most once a minute per account (docs/security.md)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from camguard.service.quota import Quotas, RefusalLog, Slot
from tests.service_env import SYSTEM_PYTHON, Account, Accounts, Box, Service, raw_as, setpriv

pytestmark = pytest.mark.real

# Opens N connections (every other one a watch), reads each first answer, keeps the open
# ones, prints how it went, and holds them until its stdin closes.
FLOOD = """
import json, socket, sys
held, answers = [], {}
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sys.argv[1])
    try:
        s.sendall(b'{"op":"watch"}\\n' if i % 2 else b'{"op":"hello"}\\n')
        line = s.makefile("rb").readline()
        code = "ok" if json.loads(line).get("ok") else json.loads(line).get("code")
    except (OSError, ValueError):
        code = "closed"
    answers[code] = answers.get(code, 0) + 1
    held.append(s)
print(json.dumps(answers), flush=True)
sys.stdin.read()
"""


# One watch: prints its first answer and whatever comes next (a timeout: nothing came).
WATCH_ONE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b'{"op":"watch"}\\n')
f = s.makefile("rb")
print(f.readline().decode().strip(), flush=True)
try:
    print(f.readline().decode().strip() or '"<closed>"', flush=True)
except OSError:
    print('"<timeout>"', flush=True)
"""


class Flood:
    def __init__(self, b: Box, who: Account, count: int) -> None:
        self.proc = subprocess.Popen([*setpriv(who), SYSTEM_PYTHON, "-c", FLOOD, str(b.sock),
                                      str(count)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=b.root,
                                     env=b.user_env(who))
        b.procs.append(self.proc)
        assert self.proc.stdout is not None
        self.answers: dict[str, int] = json.loads(self.proc.stdout.readline() or "{}")

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture
def flooded(sandbox: Box, accounts: Accounts) -> Iterator[tuple[Service, Account, Flood]]:
    mallory = accounts.user()
    svc = Service(sandbox).start()
    flood = Flood(sandbox, mallory, 500)
    yield svc, mallory, flood
    flood.end()


def test_500_connections_from_one_account_leave_the_others_served(
        sandbox: Box, accounts: Accounts, flooded: tuple[Service, Account, Flood]) -> None:
    svc, _mallory, flood = flooded
    bob = accounts.user()
    [line] = raw_as(sandbox, bob, b'{"op":"status"}\n')
    assert json.loads(line)["ok"] is True, line  # another account is still answered
    [line] = raw_as(sandbox, bob, b'{"op":"watch"}\n')
    assert json.loads(line)["ok"] is True, line
    assert svc.client.status()["ok"] is True  # and root
    assert sum(flood.answers.values()) == 500
    # Served: her 8 slots, plus watches that were closed to make room for newer ones; the
    # rest were told busy (or closed before the client had even sent its request).
    assert flood.answers.get("ok", 0) <= 20, flood.answers


def test_refused_connections_are_logged_once_a_minute_per_account(
        sandbox: Box, flooded: tuple[Service, Account, Flood]) -> None:
    svc, mallory, flood = flooded
    assert svc.client.hello()["ok"] is True  # every refusal above was logged by now
    warnings = [ln for ln in svc.log.read_text().splitlines()
                if "WARNING" in ln and "refus" in ln.lower()]
    assert len(warnings) == 1, warnings[:5]
    assert f"refused a connection from uid {mallory.uid}" in warnings[0]
    assert flood.answers.get("ok", 0) <= 20, flood.answers


def test_an_idle_watch_gives_its_slot_back_to_the_same_account(sandbox: Box,
                                                               accounts: Accounts) -> None:
    alice = accounts.user()
    svc = Service(sandbox).start()
    oldest = subprocess.Popen(
        [*setpriv(alice), SYSTEM_PYTHON, "-c", WATCH_ONE, str(sandbox.sock)],
        stdout=subprocess.PIPE, text=True, cwd=sandbox.root, env=sandbox.user_env(alice))
    sandbox.procs.append(oldest)
    assert oldest.stdout is not None
    assert json.loads(oldest.stdout.readline())["watching"] is True
    # Eight more connections (four of them watches) fill her quota: the oldest watch,
    # which just sits there, is closed to make room instead of refusing a connection.
    more = Flood(sandbox, alice, 8)
    assert more.answers == {"ok": 8}
    closed = json.loads(oldest.stdout.readline() or '"<timeout>"')
    assert isinstance(closed, dict) and "closed to make room" in closed["error"], closed
    [line] = raw_as(sandbox, alice, b'{"op":"status"}\n')  # and then one more
    assert json.loads(line)["ok"] is True
    more.end()
    assert oldest.wait(30) == 0
    assert svc.alive()


def test_quota_arithmetic_and_the_admin_reserve() -> None:
    q = Quotas(10, per_uid=3, admin_reserve=2, watches_per_uid=2)
    alice = [q.acquire(1000, admin=False) for _ in range(4)]
    assert all(isinstance(s, Slot) for s in alice[:3]) and "3 connections" in str(alice[3])
    others = [q.acquire(1000 + n, admin=False) for n in range(1, 6)]
    assert [isinstance(s, Slot) for s in others] == [True] * 5 + []
    assert "too many clients" in str(q.acquire(2000, admin=False))  # 8 of 10 used
    admins = [q.acquire(0, admin=True) for _ in range(3)]  # the kept slots
    assert isinstance(admins[0], Slot) and isinstance(admins[1], Slot)
    assert "too many clients" in str(admins[2])
    first = alice[0]
    assert isinstance(first, Slot)
    q.start_watch(first)
    assert isinstance(q.acquire(1000, admin=False), str)  # no room even without her watch
    assert not first.evicted.is_set()
    for slot in admins[:2]:
        assert isinstance(slot, Slot)
        q.release(slot)
    assert isinstance(q.acquire(1000, admin=False), Slot)  # her sitting watch made room
    assert first.evicted.is_set()
    assert "3 connections" in str(q.acquire(1000, admin=False))  # no watch left to close


def test_refusal_log_counts_what_it_did_not_write(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    rlog = RefusalLog(lambda: now[0], every=60.0)
    with caplog.at_level("WARNING", logger="camguard.service.quota"):
        for _ in range(500):
            rlog.refused(1001, "busy")
        rlog.flush()
        assert len(caplog.records) == 1
        now[0] += 61
        rlog.flush()
    assert len(caplog.records) == 2
    assert "refused 499 more connections from uid 1001" in caplog.records[1].getMessage()
