"""The event log for IT and SIEM: one JSON object per line, optionally syslog and stderr.

Every record has the same header (``schema``, ``ts``, ``id``, ``host``, ``user``, ``type``,
``level``, ``msg``) and the fields of its type; docs/events.md and docs/event.schema.json
describe them. The JSON-lines file rotates (5 MB x 5 by default), is 0600 and is shared
safely by several camguard processes (the tray and a CLI command): each line is one
``write`` on an ``O_APPEND`` descriptor under ``flock``, and rotation happens under it too.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import math
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from camguard.core.clock import Clock
from camguard.core.decision import Decision
from camguard.core.models import EventType, HealthEvent, MonitorEvent, Usage
from camguard.core.origin import ExeOrigin, OriginLookup, origin_dict
from camguard.core.probes import WINDOW
from camguard.core.rules_json import decision_dict
from camguard.core.serialize import rfc3339
from camguard.core.text import json_safe, json_text, literal
from camguard.store import paths
from camguard.store.policy import PolicyStatus
from camguard.store.syslog import (
    FACILITIES,
    SEVERITIES,
    SyslogSender,
    SyslogTarget,
    format_rfc5424,
)

log = logging.getLogger(__name__)

SCHEMA = "camguard.event/1"
FILE_NAME = "events.jsonl"
HEADER = ("schema", "ts", "id", "host", "user", "type", "level", "msg")
# Every event type and its level (syslog severity). A new type is added here, to
# docs/events.md and to docs/event.schema.json together.
LEVELS: dict[str, str] = {
    "camguard.started": "info", "camguard.stopped": "info", "monitoring.gap": "warning",
    "device.started": "notice", "device.stopped": "info", "device.raw-usb": "critical",
    "device.probe": "info", "device.probe-storm": "warning",
    "source.degraded": "warning", "source.recovered": "info",
    "alert.shown": "notice", "alert.decided": "notice", "decision.made": "info",
    "block.on": "warning", "block.off": "notice",
    "rule.added": "notice", "rule.removed": "notice", "rule.expired": "info",
    "policy.loaded": "notice", "policy.error": "error", "hook.failed": "warning",
}
Listener = Callable[[Mapping[str, Any]], None]


class Output(Protocol):
    """Where records go. ``write`` is called under the log's lock, in event order."""

    def write(self, record: Mapping[str, Any], line: str) -> None: ...

    def close(self) -> None: ...


def default_path() -> Path:
    return paths.state_dir() / FILE_NAME


def _clean(value: Any, depth: int = 0) -> Any:
    """JSON-ready: text through json_safe (valid UTF-8 whatever a process chose)."""
    if isinstance(value, str):
        return json_safe(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or Infinity
    if isinstance(value, Mapping) and depth < 8:
        return {json_safe(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset) and depth < 8:
        return [_clean(v, depth + 1) for v in value]
    return json_safe(str(value))


class JsonLinesFile:
    """A rotating JSON-lines file, mode 0600, safe to share between processes."""

    def __init__(self, path: Path, max_bytes: int = 5 << 20, backups: int = 5) -> None:
        if backups < 1 or max_bytes < 1:
            raise ValueError("a rotating log needs max_bytes >= 1 and backups >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self.failures = 0

    def write(self, record: Mapping[str, Any], line: str) -> None:
        data = (line + "\n").encode("utf-8")
        try:
            # Rotate under the lock of the current file, then write only while holding the
            # lock of the file the path names: writing to a fresh, unlocked file let another
            # process's size check race ours (files grew past max_bytes, 1 run in 3).
            for _attempt in range(8):
                with self._locked() as fd:
                    size = os.fstat(fd).st_size
                    if size and size + len(data) > self.max_bytes:
                        self._rotate()
                        continue
                    os.write(fd, data)
                    return
            raise OSError("the log kept rotating under us; event not written")
        except OSError as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("cannot write the event log %s: %s (%d events lost)",
                            self.path, exc, self.failures)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The fd of the file the path names now, exclusively locked."""
        while True:
            fd = self._open()
            _flock(fd, True)
            # Another process may have rotated the file while we waited: follow the path,
            # as often as it takes.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            _flock(fd, False)
            self.close()
        try:
            yield fd
        finally:
            if self._fd is not None:
                _flock(self._fd, False)

    def _open(self) -> int:
        if self._fd is None:
            paths.private_dir(self.path.parent)
            # O_NOFOLLOW: a symlink planted at the log path must not redirect our writes.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # O_CREAT's mode is masked by the umask; be exact
            self._fd = fd
        return self._fd

    def _rotate(self) -> None:
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        fd, self._fd = self._fd, None
        if fd is not None:
            _flock(fd, False)
            os.close(fd)


def _flock(fd: int, on: bool) -> None:
    if sys.platform != "win32":
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX if on else fcntl.LOCK_UN)


def last_records(path: Path, tail_bytes: int = 65536) -> list[dict[str, Any]]:
    """The records in the last ``tail_bytes`` of ``path`` (unparsable lines skipped)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail_bytes))
            chunk = f.read()
    except OSError:
        return []
    out = []
    for raw in chunk.split(b"\n")[1:] if len(chunk) == tail_bytes else chunk.split(b"\n"):
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("schema") == SCHEMA:
            out.append(rec)
    return out


class SyslogOutput:
    def __init__(self, target: SyslogTarget, facility: str = "authpriv") -> None:
        self.facility = FACILITIES[facility]
        self.sender = SyslogSender(target)

    def write(self, record: Mapping[str, Any], line: str) -> None:
        self.sender.send(format_rfc5424(dict(record), self.facility))

    def close(self) -> None:
        self.sender.close()


class StderrOutput:
    """Plain lines with an sd-daemon priority prefix (``<4>...``): journald under a systemd
    unit reads the prefix as the priority (SyslogLevelPrefix=, on by default)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def write(self, record: Mapping[str, Any], line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        level = SEVERITIES.get(str(record.get("level")), 6)
        stream.write(f"<{level}>camguard: {record['type']}: {record['msg']}\n")
        stream.flush()

    def close(self) -> None:
        pass


class EventLog:
    """Emits event records to its outputs and listeners (the hook runner). Thread-safe:
    any thread may call :meth:`emit`; records are written in the order they were made."""

    def __init__(self, clock: Clock, outputs: list[Output], host: str | None = None,
                 user: str | None = None, origins: OriginLookup | None = None) -> None:
        self.clock = clock
        self.outputs = outputs
        # Where executables come from: device.* events (the monitor's thread) carry it when
        # it is known without reading a file; decision and alert events look it up.
        self.origins = origins
        self.host = host if host is not None else socket.gethostname()
        self.user = user if user is not None else _current_user()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def add_listener(self, listener: Listener) -> None:
        """Called with each record after it was written (must not block; hooks queue)."""
        self._listeners.append(listener)

    def emit(self, type: str, msg: str | None = None, at: float | None = None,
             **fields: Any) -> dict[str, Any]:
        """Record one event; returns the record. Never raises for output failures."""
        level = LEVELS.get(type)
        if level is None:
            raise ValueError(f"unknown event type {type!r}")
        clash = set(fields) & set(HEADER)
        if clash:
            raise ValueError(f"fields {sorted(clash)} are header fields")
        record: dict[str, Any] = {
            "schema": SCHEMA, "ts": rfc3339(self.clock.now() if at is None else at),
            "id": uuid.uuid4().hex, "host": json_safe(self.host), "user": json_safe(self.user),
            "type": type, "level": level,
            "msg": literal(msg, 2000) if msg is not None else _summary(type, fields),
        }
        record.update(_clean(fields))
        line = json_text(record, separators=(",", ":"))
        with self._lock:
            for out in self.outputs:
                try:
                    out.write(record, line)
                except Exception:  # one broken output must not silence the others
                    log.exception("event output %r failed", out)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                log.exception("event listener failed")
        return record

    def monitor_sink(self, ev: MonitorEvent) -> None:
        """A Monitor sink: device sessions and source health as events."""
        if isinstance(ev, HealthEvent):
            if ev.degraded is not None:
                self.emit("source.degraded", at=ev.at, source=ev.source,
                          reason=ev.degraded.reason)
            else:
                self.emit("source.recovered", at=ev.at, source=ev.source)
            return
        u, p = ev.usage, ev.usage.process
        fields = self.fields_of(u, wait=False)
        who = "a process camguard cannot see" if p is None else \
            f"{literal(p.name, 64) or '?'} (pid {p.pid})"
        what = f"{u.device.kind.value} {literal(u.device.id, 200)}"
        if ev.type is EventType.STARTED and u.via == "usb":  # platform/linux/rawusb.py
            self.emit("device.raw-usb", f"raw USB access to a camera ({literal(u.device.id, 200)}) "
                      f"by {who}", at=ev.at, **fields)
        elif ev.type is EventType.STARTED:
            storm = {"storm": True} if ev.storm else {}  # its app probe-storms (probes.py)
            self.emit("device.started", f"{what} in use by {who}", at=ev.at, **storm, **fields)
        elif ev.type is EventType.PROBE_STORM:  # core/probes.py
            self.emit("device.probe-storm", f"probe storm: {who} probed {what} {ev.count} "
                      f"times within a minute", at=ev.at,
                      since=rfc3339(ev.since), count=ev.count, window_s=WINDOW, **fields)
        else:
            duration = None if ev.since is None else round(max(0.0, ev.at - ev.since), 3)
            if ev.type is EventType.PROBE:
                self.emit("device.probe", f"{what} probed by {who} (no data, not alerted)",
                          at=ev.at, since=rfc3339(ev.since), duration_s=duration, **fields)
                return
            extra = {"probe": True} if ev.probe else {}
            self.emit("device.stopped", f"{what} released by {who}", at=ev.at,
                      since=rfc3339(ev.since), duration_s=duration, **extra, **fields)

    def decided(self, decision: Decision, usage: Usage) -> dict[str, Any]:
        """A ``decision.made`` event: what the rules said about a usage, and why."""
        return self.emit("decision.made", decision.explanation, **self.fields_of(usage),
                         **decision_dict(decision))

    def origin_of(self, usage: Usage, *, wait: bool = True) -> ExeOrigin | None:
        """Where the usage's executable comes from; with ``wait=False`` only what is known
        without reading the file (the monitor's thread must not hash a browser)."""
        p = usage.process
        if p is None or self.origins is None or not p.exe:
            return None
        return (self.origins.origin if wait else self.origins.cached)(p.pid, p.exe)

    def fields_of(self, usage: Usage, *, wait: bool = True) -> dict[str, Any]:
        """:func:`usage_fields` with the executable's origin."""
        return usage_fields(usage, self.origin_of(usage, wait=wait))

    def policy_status(self, status: PolicyStatus) -> dict[str, Any]:
        """``policy.error`` (loud) or ``policy.loaded`` for the result of a policy load."""
        source = status.policy.source
        if status.error is not None:
            return self.emit("policy.error", status.error, source=source, error=status.error)
        return self.emit("policy.loaded", f"managed policy: {source or 'none'}",
                         source=source, locked=sorted(status.policy.locked),
                         problems=list(status.policy.problems),
                         rules=len(status.policy.rules))

    def started(self, version: str) -> None:
        """Say camguard started; first a ``monitoring.gap`` if the last run never said it
        stopped (a crash, a kill, a power cut): nothing was watched in between."""
        previous = self._previous_run()
        if previous is not None:
            since, last_start = previous
            self.emit("monitoring.gap", f"camguard was not watching since {since}: the "
                      "previous run ended without stopping cleanly", since=since,
                      until=rfc3339(self.clock.now()), previous_start=last_start,
                      reason="unclean-stop")
        self.emit("camguard.started", f"camguard {version} started", version=version,
                  camguard_pid=os.getpid())

    def stopped(self, reason: str = "requested") -> None:
        self.emit("camguard.stopped", f"camguard stopped ({literal(reason, 200)})",
                  reason=reason, camguard_pid=os.getpid())

    def close(self) -> None:
        for out in self.outputs:
            try:
                out.close()
            except Exception:
                log.exception("closing event output %r failed", out)

    def _previous_run(self) -> tuple[str, str] | None:
        files = [o for o in self.outputs if isinstance(o, JsonLinesFile)]
        if not files:
            return None
        records = last_records(files[0].path)
        runs = [r for r in records if r.get("type") in ("camguard.started", "camguard.stopped")]
        if not runs or runs[-1]["type"] != "camguard.started":
            return None
        # The gap starts at the last thing that run wrote (CLI events may follow; harmless).
        return str(records[-1].get("ts")), str(runs[-1].get("ts"))


def usage_fields(u: Usage, origin: ExeOrigin | None = None) -> dict[str, Any]:
    """The device and process fields of device, alert and decision events."""
    p = u.process
    return {
        "kind": u.device.kind.value, "device": u.device.id,
        "device_name": u.device.name, "device_path": u.device.path,
        "source": u.device.source, "via": u.via, "note": u.note or None,
        "pid": None if p is None else p.pid,
        "create_time": None if p is None else p.create_time,
        "name": None if p is None else p.name, "exe": None if p is None else p.exe,
        "cmdline": None if p is None else list(p.cmdline),
        "process_user": None if p is None else p.user,
        "parents": None if p is None else list(p.parents),
        # The script an interpreter runs (ProcessRef.script); null for none.
        "script": None if p is None else p.script or None,
        "origin": origin_dict(origin),
    }


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (a container's arbitrary uid)
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def _summary(type: str, fields: Mapping[str, Any]) -> str:
    parts = [type]
    for key, value in fields.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(f"{key}={literal(str(value), 120)}")
        if len(parts) > 6:
            break
    return " ".join(parts)
