"""GeoClue's clients as seen in monitored bus calls: a pure tracker (plain values in, usages
out), so every malformed or hostile call can be fed in directly. The source that feeds it is
:mod:`camguard.platform.linux.geoclue`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from camguard.core.models import Device, DeviceKind, ProcessRef, Usage

GEOCLUE = "org.freedesktop.GeoClue2"
MANAGER_PATH = "/org/freedesktop/GeoClue2/Manager"
CLIENT_IFACE = "org.freedesktop.GeoClue2.Client"
MANAGER_IFACE = "org.freedesktop.GeoClue2.Manager"
PROPS_IFACE = "org.freedesktop.DBus.Properties"
# GClueAccuracyLevel (geoclue's gclue-enums.h).
ACCURACY = {0: "none", 1: "country", 4: "city", 5: "neighborhood", 6: "street", 8: "exact"}
QUOTE_LIMIT = 64
DEVICE = Device(DeviceKind.LOCATION, "geoclue", name="Location (GeoClue)", path=None,
                source="geoclue")
Describe = Callable[[int], ProcessRef | None]


@dataclass
class Client:
    owner: str  # the unique bus name of the app that asked for it
    pid: int | None = None
    desktop_id: str = ""
    accuracy: int | None = None
    active: bool = False


@dataclass
class Tracker:
    """GeoClue's clients as seen in the monitored calls (pure: fed plain values)."""

    clients: dict[str, Client] = field(default_factory=dict)
    # (caller, serial) -> what the call was: ("get", "") or ("start"|"stop", path)
    pending: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)

    def call(self, sender: str, serial: int, *, path: str, iface: str, member: str,
             body: tuple[Any, ...]) -> bool:
        """A method call to GeoClue; returns whether a use may have changed."""
        if path == MANAGER_PATH and member in ("GetClient", "CreateClient"):
            self.pending[(sender, serial)] = ("get", "")
        elif path == MANAGER_PATH and member == "DeleteClient" and body:
            gone = self.clients.get(str(body[0]))
            if gone is not None and gone.owner == sender:
                del self.clients[str(body[0])]
                return gone.active
        elif member in ("Start", "Stop") and path in self.clients \
                and self.clients[path].owner == sender:
            self.pending[(sender, serial)] = (member.lower(), path)
        elif iface == PROPS_IFACE and member == "Set" and path in self.clients \
                and len(body) == 3 and body[0] == CLIENT_IFACE:
            client = self.clients[path]
            if client.owner != sender:
                return False
            value = body[2][1] if isinstance(body[2], tuple) and len(body[2]) == 2 else None
            if body[1] == "DesktopId" and isinstance(value, str):
                client.desktop_id = value
            elif body[1] == "RequestedAccuracyLevel" and isinstance(value, int):
                client.accuracy = value
            return client.active
        return False

    def reply(self, destination: str, reply_serial: int, body: tuple[Any, ...],
              error: bool, pid_of: Callable[[str], int | None]) -> bool:
        what = self.pending.pop((destination, reply_serial), None)
        if what is None or error:
            return False
        kind, path = what
        if kind == "get":
            if body and isinstance(body[0], str) and body[0] not in self.clients:
                self.clients[body[0]] = Client(destination, pid_of(destination))
            return False
        client = self.clients.get(path)
        if client is None:
            return False
        was, client.active = client.active, kind == "start"
        return was != client.active

    def vanished(self, name: str) -> bool:
        """A bus name left: its clients end (GeoClue drops them too)."""
        gone = [p for p, c in self.clients.items() if c.owner == name]
        for p in gone:
            del self.clients[p]
        self.pending = {k: v for k, v in self.pending.items() if k[0] != name}
        return bool(gone)

    def usages(self, describe: Describe) -> set[Usage]:
        out = set()
        for c in self.clients.values():
            if not c.active:
                continue
            ref = describe(c.pid) if c.pid is not None else None
            notes = []
            if c.desktop_id:
                notes.append(f"desktop id {_quote(c.desktop_id)} (as the app claims)")
            if c.accuracy is not None:
                notes.append(f"accuracy: {ACCURACY.get(c.accuracy, str(c.accuracy))}")
            if ref is None:
                notes.insert(0, f"a GeoClue client camguard cannot see (bus name {c.owner})")
            out.add(Usage(DEVICE, ref, note="; ".join(notes), via="geoclue"))
        return out


def _quote(value: str) -> str:
    if len(value) > QUOTE_LIMIT:
        value = value[:QUOTE_LIMIT] + f"… ({len(value)} characters)"
    return f"'{value}'"


def drain(conn: Any) -> Iterator[Any]:
    """Every message the connection has now (the socket was readable)."""
    while True:
        try:
            yield conn.receive(timeout=0)
        except TimeoutError:
            return


def pump(conn: Any) -> None:
    """Hand every message the connection has now to its filters."""
    while True:
        try:
            conn.recv_messages(timeout=0)
        except TimeoutError:
            return


def monitored(tracker: Tracker, msg: Any, pid_of: Callable[[str], int | None]) -> bool:
    from jeepney import HeaderFields, MessageType

    h, f = msg.header, msg.header.fields
    if h.message_type is MessageType.method_call:
        return tracker.call(str(f.get(HeaderFields.sender, "")), h.serial,
                            path=str(f.get(HeaderFields.path, "")),
                            iface=str(f.get(HeaderFields.interface, "")),
                            member=str(f.get(HeaderFields.member, "")), body=tuple(msg.body))
    if h.message_type in (MessageType.method_return, MessageType.error):
        serial = f.get(HeaderFields.reply_serial, 0)
        return tracker.reply(str(f.get(HeaderFields.destination, "")),
                             serial if isinstance(serial, int) else 0, tuple(msg.body),
                             h.message_type is MessageType.error, pid_of)
    return False


def on_signal(tracker: Tracker, msg: Any) -> tuple[bool, bool]:
    """A NameOwnerChanged or PropertiesChanged signal: (a use may have changed, GeoClue
    itself left, so every client is gone)."""
    from jeepney import HeaderFields

    member = msg.header.fields.get(HeaderFields.member)
    if member == "NameOwnerChanged" and len(msg.body) == 3:
        name, _old, new = msg.body
        if name == GEOCLUE:
            return True, not new
        return (not new) and tracker.vanished(str(name)), False
    return member == "PropertiesChanged", False
