"""Events to syslog as RFC 5424 over UDP, TCP (RFC 6587 octet counting) or /dev/log.

Sending happens on a small worker thread with a bounded queue, so a slow or unreachable
collector never blocks the monitor thread; what cannot be sent is dropped and logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from camguard.core.text import escape_unsafe, json_text, literal

log = logging.getLogger(__name__)

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "authpriv": 10,
              **{f"local{n}": 16 + n for n in range(8)}}
SEVERITIES = {"critical": 2, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
# 32473 is the private enterprise number RFC 5612 reserves for documentation; a deployment
# with its own number passes it as ``sd_id``.
DEFAULT_SD_ID = "camguard@32473"
# Header fields of an event record: they go into the syslog header, not the SD element.
_HEADER = frozenset({"schema", "ts", "host", "type", "level", "msg"})
_MAX_VALUE = 1024
_SD_ESCAPE = re.compile(r'(["\\\]])')
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[= \]"]')


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    transport: str  # "udp", "tcp" or "unix"
    host: str = ""
    port: int = 514
    path: str = ""

    @classmethod
    def parse(cls, text: str) -> SyslogTarget:
        """``udp://HOST[:PORT]``, ``tcp://HOST[:PORT]`` (IPv6 in brackets), ``local``
        (``/dev/log``) or ``unix:PATH``; raises ValueError."""
        if text == "local":
            return cls("unix", path="/dev/log")
        if text.startswith("unix:") and text[5:].startswith("/"):
            return cls("unix", path=text[5:])
        m = re.fullmatch(r"(udp|tcp)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?",
                         text)
        if m is None or (m.group(3) and not 0 < int(m.group(3)) < 65536):
            raise ValueError(f"not a syslog target: {literal(text, 200)!r} (use "
                             "udp://HOST:PORT, tcp://HOST:PORT, local or unix:/PATH)")
        return cls(m.group(1), m.group(2).strip("[]"), int(m.group(3) or 514))


def _header_text(text: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces (RFC 5424 section 6.2), or '-'."""
    clean = _NOT_PRINTUSASCII.sub("_", text)[:limit]
    return clean or "-"


def sd_value(value: Any) -> str:
    """A PARAM-VALUE: JSON for lists and objects, controls made visible, capped, then the
    three characters RFC 5424 section 6.3.3 requires escaped: '"', '\\' and ']'."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = json_text(value, separators=(",", ":"))
    text = escape_unsafe(text)
    if len(text) > _MAX_VALUE:
        text = text[:_MAX_VALUE] + f"… ({len(text)} characters)"
    return _SD_ESCAPE.sub(r"\\\1", text)


def format_rfc5424(record: dict[str, Any], facility: int = FACILITIES["authpriv"],
                   app: str = "camguard", procid: int | None = None,
                   sd_id: str = DEFAULT_SD_ID) -> bytes:
    """``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`` for one event record."""
    pri = facility * 8 + SEVERITIES.get(str(record.get("level")), 6)
    params = []
    for key, value in record.items():
        if key in _HEADER or value is None:
            continue
        name = _NOT_SD_NAME.sub("_", key)[:32]
        params.append(f'{name}="{sd_value(value)}"')
    sd = f"[{sd_id} {' '.join(params)}]" if params else "-"
    header = " ".join([
        f"<{pri}>1", _header_text(str(record.get("ts") or ""), 64),
        _header_text(str(record.get("host") or ""), 255), _header_text(app, 48),
        _header_text(str(os.getpid() if procid is None else procid), 128),
        _header_text(str(record.get("type") or ""), 32)])
    msg = literal(str(record.get("msg") or ""), 2000)
    return f"{header} {sd} {msg}".encode()


class SyslogSender:
    """Sends formatted messages on its own thread. ``send`` never blocks."""

    def __init__(self, target: SyslogTarget, queue_size: int = 1000,
                 connect_timeout: float = 5.0) -> None:
        self.target = target
        self.dropped = 0
        self.sent = 0
        self._timeout = connect_timeout
        self._q: queue.Queue[bytes | threading.Event | None] = queue.Queue(queue_size)
        self._sock: socket.socket | None = None
        self._last_complaint = -1e9
        self._thread = threading.Thread(target=self._run, name="camguard-syslog", daemon=True)
        self._thread.start()

    def send(self, message: bytes) -> None:
        try:
            self._q.put_nowait(message)
        except queue.Full:
            self.dropped += 1
            self._complain(f"syslog queue full; event dropped ({self.dropped} so far)")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        done = threading.Event()
        try:
            self._q.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                self._disconnect()
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._deliver(item)
                self.sent += 1
            except OSError as exc:
                self.dropped += 1
                self._disconnect()
                self._complain(f"cannot send to syslog {self.target}: {exc}; event dropped "
                               f"({self.dropped} so far)")

    def _deliver(self, message: bytes) -> None:
        t = self.target
        if t.transport == "tcp":
            # RFC 6587 section 3.4.1 octet counting: "LEN SP MSG", so a message may hold
            # any byte, newlines included, without splitting.
            frame = f"{len(message)} ".encode() + message
            for attempt in (1, 2):  # a collector restart closes the connection: retry once
                try:
                    self._connect().sendall(frame)
                    return
                except OSError:
                    self._disconnect()
                    if attempt == 2:
                        raise
            return
        sock = self._connect()
        if t.transport == "udp":
            sock.sendto(message, (t.host, t.port))
        else:
            sock.sendto(message, t.path)

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        t = self.target
        if t.transport == "tcp":
            sock = socket.create_connection((t.host, t.port), timeout=self._timeout)
        elif t.transport == "udp":
            family = socket.AF_INET6 if ":" in t.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            # /dev/log is a datagram socket on systemd and rsyslog systems.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.settimeout(self._timeout)
        self._sock = sock
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _complain(self, message: str) -> None:
        # At most one complaint a minute: a dead collector must not flood the log.
        now = time.monotonic()
        if now - self._last_complaint >= 60:
            self._last_complaint = now
            log.warning("%s", message)
