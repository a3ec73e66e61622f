"""The root service under abuse, measured (issue 10's goals; docs/benchmarks.md).

Run as root (it makes test accounts and starts the real service):

    sudo .venv/bin/python bench/service_abuse.py [--repeat 60] [--opens 30]

1. Another account's ``status`` (a new connection per request, as the CLI makes) while one
   account opens and holds 500 connections, half of them watches: latency per request,
   against the same account's ``status`` on a quiet service in the same run.
2. Camera open -> event seen by a watching client, on a service whose history holds 13,000
   sessions, quiet and then while 30 clients of an ordinary account ask for ``history``
   in a loop (each answer filtered to that account's sessions).

Goals (issue 10): ``status`` under 100 ms throughout; events under 50 ms in the flood.
Every figure printed is raw (each sample), then p50/p99/max; nothing is chosen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from camguard.core.clock import FrozenClock  # noqa: E402
from camguard.core.models import (  # noqa: E402
    Device,
    DeviceKind,
    EventType,
    ProcessRef,
    Usage,
    UsageEvent,
)
from camguard.store.history import HistoryStore  # noqa: E402
from tests.service_env import SYSTEM_PYTHON, Accounts, Service, box, setpriv  # noqa: E402

# As an account: N status requests, one connection each; prints the latencies in ms.
STATUS_LOOP = """
import json, socket, sys, time
out = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sys.argv[1])
    s.sendall(b'{"op":"status"}\\n')
    line = s.makefile("rb").readline()
    out.append(round((time.perf_counter() - t) * 1000, 2))
    if json.loads(line)["ok"] is not True:
        sys.exit(f"refused: {line!r}")
    s.close()
    time.sleep(0.02)
print(json.dumps(out), flush=True)
"""

# As an account: hold N connections (every other one a watch) until stdin closes.
HOLD = """
import socket, sys
held = []
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    try:
        s.connect(sys.argv[1])
        s.sendall(b'{"op":"watch"}\\n' if i % 2 else b'{"op":"hello"}\\n')
    except OSError:
        pass
    held.append(s)
print("held", flush=True)
sys.stdin.read()
"""

# As an account: ask for history in a loop until stdin closes; prints how many answers.
HISTORY_LOOP = """
import json, socket, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
n = 0
print("started", flush=True)
while not stop.is_set():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    try:
        s.connect(sys.argv[1])
        s.sendall(b'{"op":"history","limit":1000}\\n')
        s.makefile("rb").readline()
        n += 1
    except OSError:
        pass
    s.close()
print(n, flush=True)
"""

# Opens a node, prints the wall-clock time right before open(), holds it, closes it.
OPENER = """
import os, sys, time
t = time.time()
fd = os.open(sys.argv[1], os.O_RDONLY)
print(repr(t), flush=True)
time.sleep(0.1)
os.close(fd)
"""


def summary(name: str, ms: list[float]) -> dict[str, object]:
    s = sorted(ms)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    row = {"what": name, "n": len(s), "p50_ms": round(statistics.median(s), 2),
           "p99_ms": round(p99, 2), "max_ms": round(s[-1], 2), "raw_ms": ms}
    print(f"{name}: n={len(s)} p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
          f"max {row['max_ms']} ms")
    print(f"  raw: {ms}")
    return row


def status_as(b: object, who: object, env: dict[str, str], sock: Path, n: int) -> list[float]:
    out = subprocess.run([*setpriv(who), SYSTEM_PYTHON, "-c", STATUS_LOOP, str(sock), str(n)],
                         capture_output=True, text=True, timeout=600, env=env, check=False,
                         cwd=str(sock.parent.parent))
    if out.returncode:
        raise SystemExit(f"status as {who}: {out.stderr.strip()[-300:]}")
    return [float(x) for x in json.loads(out.stdout)]


def fill_history(path: Path, owners: list[str], n: int) -> None:
    clock = FrozenClock(time.time() - 2 * n)
    store = HistoryStore(path, clock, hash_exes=False)
    cam = Device(DeviceKind.CAMERA, "/dev/video0")
    for i in range(n):
        clock.advance(1)
        u = Usage(cam, ProcessRef(100000 + i, float(i), "app", "/usr/bin/app",
                                  user=owners[i % len(owners)]))
        store.record_event(UsageEvent(EventType.STARTED, u, clock.now()))
        store.record_event(UsageEvent(EventType.STOPPED, u, clock.now() + 0.5))
    store.close()


def event_latencies(svc: Service, node: Path, opens: int) -> list[float]:
    """Open -> 'started' seen by a root watch client, ``opens`` times."""
    got: dict[int, float] = {}
    cond = threading.Condition()
    watch = svc.client.watch()

    def read() -> None:
        for ev in watch:
            if ev.get("event") == "started" and ev.get("pid"):
                with cond:
                    got[int(ev["pid"])] = time.time()
                    cond.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out: list[float] = []
    try:
        for _ in range(opens):
            p = subprocess.Popen([sys.executable, "-c", OPENER, str(node)],
                                 stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None
            t_open = float(p.stdout.readline())
            with cond:
                if not cond.wait_for(lambda p=p: p.pid in got, 30):  # type: ignore[misc]
                    raise SystemExit(f"no event for pid {p.pid} within 30 s")
                out.append(round((got[p.pid] - t_open) * 1000, 2))
            p.wait(30)
            time.sleep(0.15)
    finally:
        watch.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=60, help="status requests per phase")
    ap.add_argument("--opens", type=int, default=30, help="camera opens per phase")
    ap.add_argument("--sessions", type=int, default=13000)
    ap.add_argument("--clients", type=int, default=30, help="history flood clients")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    rows: list[dict[str, object]] = []
    accounts = Accounts()
    try:
        with box() as b:
            bob, mallory, carol = accounts.user(), accounts.user(), accounts.user()
            for who in (bob, mallory, carol):
                home = b.root / "home" / who.name
                home.mkdir(mode=0o755)
            b.data.mkdir(mode=0o700, parents=True)
            fill_history(b.data / "history.sqlite3", [carol.name, "root", bob.name],
                         a.sessions)
            node = b.node("video0")
            svc = Service(b).start()
            rows.append(summary("status as another account, quiet service",
                                status_as(b, bob, b.user_env(bob), b.sock, a.repeat)))
            hold = subprocess.Popen([*setpriv(mallory), SYSTEM_PYTHON, "-c", HOLD, str(b.sock),
                                     "500"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, env=b.user_env(mallory), cwd=b.root)
            b.procs.append(hold)  # type: ignore[arg-type]
            flooded = status_as(b, bob, b.user_env(bob), b.sock, a.repeat)  # while it opens
            assert hold.stdout is not None and hold.stdout.readline() == "held\n"
            flooded += status_as(b, bob, b.user_env(bob), b.sock, a.repeat)  # all 500 held
            rows.append(summary("status as another account, 500 connections held by one",
                                flooded))
            assert hold.stdin is not None
            hold.stdin.close()
            hold.wait(60)

            rows.append(summary(f"camera open -> watch event, {a.sessions} sessions, quiet",
                                event_latencies(svc, node, a.opens)))
            flood = [subprocess.Popen([*setpriv(carol), SYSTEM_PYTHON, "-c", HISTORY_LOOP,
                                       str(b.sock)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True,
                                      env=b.user_env(carol), cwd=b.root)
                     for _ in range(a.clients)]
            b.procs.extend(flood)  # type: ignore[arg-type]
            for p in flood:
                assert p.stdout is not None and p.stdout.readline() == "started\n"
            lat = event_latencies(svc, node, a.opens)
            answers = 0
            for p in flood:
                assert p.stdin is not None and p.stdout is not None
                p.stdin.close()
                answers += int(p.stdout.readline() or 0)
                p.wait(60)
            rows.append(summary(f"camera open -> watch event, {a.clients} clients asking "
                                f"for history ({answers} answers meanwhile)", lat))
            assert svc.alive()
    finally:
        accounts.remove()
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
