"""The root service's event outputs are the tray's: ``--events-file``, and the managed
policy's ``syslog`` and ``hook``, tested with a real service subprocess, a real loopback
syslog receiver and a real hook program, on a real process opening a stand-in camera."""

from __future__ import annotations

import contextlib
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.store.eventlog import last_records
from tests.conftest import Holder
from tests.integration.test_eventlog import parse
from tests.realenv import wait_until
from tests.service_env import Box, Service

pytestmark = pytest.mark.real


def types(path: Path) -> list[str]:
    return [str(r.get("type")) for r in last_records(path, 1 << 20)]


def started_by(path: Path, pid: int) -> bool:
    return any(r.get("type") == "device.started" and r.get("pid") == pid
               for r in last_records(path, 1 << 20))


def hook_program(b: Box) -> tuple[Path, Path]:
    """A hook that writes its arguments (NUL-separated) to a file of its own per call."""
    out = b.root / "hook-calls"
    out.mkdir(mode=0o755)
    program = b.root / "hook.sh"
    program.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {out}/call.$$\n")
    program.chmod(0o755)
    return program, out


def calls(out: Path) -> list[list[str]]:
    return [f.read_text().split("\0")[:-1] for f in sorted(out.glob("call.*"))]


def test_events_file_flag_is_where_the_service_writes(sandbox: Box,
                                                      holders: list[Holder]) -> None:
    events = sandbox.root / "logs" / "service-events.jsonl"
    svc = Service(sandbox, "--events-file", str(events)).start()
    holder = Holder([sandbox.node("video0")])
    holders.append(holder)
    wait_until(lambda: events.exists() and started_by(events, holder.pid), 20,
               f"the camera session in {events}")
    assert svc.stop() == 0
    assert types(events)[0] == "camguard.started" and types(events)[-1] == "camguard.stopped"
    assert stat.S_IMODE(events.stat().st_mode) == 0o600
    assert not (sandbox.state / "events.jsonl").exists()


def test_the_policys_events_file_is_where_the_service_writes(sandbox: Box,
                                                              holders: list[Holder]) -> None:
    events = sandbox.root / "policy-chosen" / "events.jsonl"
    sandbox.policy.write_text(f'[settings]\nevents_file = "{events}"\n')
    sandbox.policy.chmod(0o644)
    svc = Service(sandbox).start()
    holder = Holder([sandbox.node("video0")])
    holders.append(holder)
    wait_until(lambda: events.exists() and started_by(events, holder.pid), 20,
               f"the camera session in {events}")
    assert svc.stop() == 0
    assert not (sandbox.state / "events.jsonl").exists()


@contextlib.contextmanager
def udp_receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        yield rx


def receive_until(rx: socket.socket, pid: int, deadline: float) -> list[bytes]:
    """Datagrams until one says ``device.started`` for ``pid``; AssertionError at the
    deadline (each recv waits at most until it)."""
    got: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no device.started for pid {pid} over syslog; got {got!r}"
        rx.settimeout(left)
        try:
            message = rx.recv(65536)
        except TimeoutError:
            continue
        got.append(message)
        m, params = parse(message)
        if m["msgid"] == "device.started" and params.get("pid") == str(pid):
            return got


def test_the_policys_syslog_reaches_a_loopback_receiver(sandbox: Box,
                                                        holders: list[Holder]) -> None:
    with udp_receiver() as rx:
        port = rx.getsockname()[1]
        sandbox.policy.write_text(
            f'[settings]\nsyslog = "udp://127.0.0.1:{port}"\nsyslog_facility = "local3"\n')
        svc = Service(sandbox).start()
        holder = Holder([sandbox.node("video0")])
        holders.append(holder)
        got = receive_until(rx, holder.pid, time.monotonic() + 20)
        heads = [parse(message)[0] for message in got]
        assert "camguard.started" in [m["msgid"] for m in heads]
        assert {int(m["pri"]) // 8 for m in heads} == {19}  # local3
        assert svc.stop() == 0


def test_the_policys_hook_runs_on_a_service_event(sandbox: Box,
                                                  holders: list[Holder]) -> None:
    program, out = hook_program(sandbox)
    sandbox.policy.write_text(f'[settings]\nhook = "{program}"\n')
    sandbox.policy.chmod(0o644)
    svc = Service(sandbox).start()
    holder = Holder([sandbox.node("video0")])
    holders.append(holder)

    def ran() -> bool:
        return any(c[:3] == ["device.started", str(sandbox.node("video0")), str(holder.pid)]
                   for c in calls(out))

    wait_until(ran, 20, "the hook to run for the camera session")
    assert svc.stop() == 0


def test_a_policy_others_may_rewrite_runs_no_hook_as_root(sandbox: Box,
                                                          holders: list[Holder]) -> None:
    program, out = hook_program(sandbox)
    elsewhere = sandbox.root / "chosen-by-the-policy.jsonl"
    sandbox.policy.write_text(f'[settings]\nhook = "{program}"\nevents_file = "{elsewhere}"\n')
    sandbox.policy.chmod(0o666)
    svc = Service(sandbox).start()
    holder = Holder([sandbox.node("video0")])
    holders.append(holder)
    events = sandbox.state / "events.jsonl"
    wait_until(lambda: events.exists() and started_by(events, holder.pid), 20,
               "the camera session in the service's own event log")
    assert svc.stop() == 0  # a running hook would have been waited for here
    assert calls(out) == [] and not elsewhere.exists()
    assert "the service ignores its events_file and hook" in svc.log.read_text()
