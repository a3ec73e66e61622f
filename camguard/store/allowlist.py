"""The allow list: executables (path plus SHA-256) the user always allows, per device kind.

An entry allows one binary, not a path: a different file dropped at an allowed path (an
update, or an attacker) is not allowed, and the verdict says what changed. An entry made for
a file with a checked origin (a Debian package's file whose md5sum matches dpkg's, a snap on
its image, a Flatpak app) also trusts that origin: the package's next version, installed by
dpkg and verified, stays allowed; a file that no longer matches its package, or that now
comes from somewhere else, does not (core.origin).
"""

from __future__ import annotations

import enum
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from camguard.core.models import DeviceKind
from camguard.core.origin import ExeOrigin, parse_origin_key
from camguard.core.text import literal
from camguard.store.db import Database
from camguard.store.textcols import from_db, to_db

_SHA256 = re.compile(r"[0-9a-f]{64}")


class AllowStatus(enum.StrEnum):
    ALLOWED = "allowed"
    NOT_LISTED = "not-listed"
    BINARY_CHANGED = "binary-changed"
    # Listed, but the binary could not be read to check it (no hash): not allowed.
    UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class AllowEntry:
    id: int
    exe: str
    sha256: str
    kind: DeviceKind
    added_at: float
    note: str
    origin: str | None = None  # "deb:firefox-esr": the origin this entry trusts too


@dataclass(frozen=True, slots=True)
class AllowVerdict:
    status: AllowStatus
    reason: str
    entry: AllowEntry | None = None

    @property
    def allowed(self) -> bool:
        return self.status is AllowStatus.ALLOWED

    @property
    def asks_again(self) -> str:
        """Why an app the user allowed is asked about again ("" when it is not)."""
        return self.reason if self.status in (AllowStatus.BINARY_CHANGED,
                                              AllowStatus.UNVERIFIED) else ""


_COLUMNS = "id, exe, sha256, device_kind, added_at, note, origin"


def _entry(row: Sequence[Any]) -> AllowEntry | None:
    try:
        kind = DeviceKind(row[3])
    except ValueError:
        return None  # a hand-edited row with a kind this version does not know
    return AllowEntry(int(row[0]), from_db(row[1]) or "", str(row[2]), kind, float(row[4]),
                      from_db(row[5]) or "", row[6] if isinstance(row[6], str) else None)


def _normalise_sha256(sha256: str) -> str:
    value = sha256.strip().lower()
    if not _SHA256.fullmatch(value):
        raise ValueError(f"not a SHA-256 hex digest: {literal(sha256, 80)}")
    return value


class AllowList:
    """Allow-list entries in the camguard database. Thread-safe like :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, exe: str, sha256: str, kind: DeviceKind | str, added_at: float,
            note: str = "", *, origin: ExeOrigin | None = None) -> AllowEntry:
        """Allow ``exe`` with this exact ``sha256`` for ``kind``; replaces an older entry.
        ``origin``: where the file comes from; a trusted one (ExeOrigin.trusted) is trusted
        too, so the entry holds across the package's verified updates.

        Raises ValueError for an empty or relative path or a malformed digest: an entry
        that cannot name one binary would allow anything.
        """
        if not exe or not exe.startswith("/") or "\x00" in exe:
            raise ValueError(f"not an absolute executable path: {literal(exe, 200)}")
        digest = _normalise_sha256(sha256)
        kind_value = DeviceKind(kind).value
        trusts = origin.key if origin is not None and origin.trusted else None

        def op(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO allowlist (exe, sha256, device_kind, added_at, note, origin)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (exe, device_kind) DO UPDATE SET"
                " sha256 = excluded.sha256, added_at = excluded.added_at,"
                " note = excluded.note, origin = excluded.origin",
                (to_db(exe), digest, kind_value, added_at, to_db(note), trusts))
            row = conn.execute("SELECT id FROM allowlist WHERE exe = ? AND device_kind = ?",
                               (to_db(exe), kind_value)).fetchone()
            return int(row[0])

        entry_id = self.db.write(op)
        return AllowEntry(entry_id, exe, digest, DeviceKind(kind_value), added_at, note, trusts)

    def remove(self, exe: str, kind: DeviceKind | str | None = None) -> int:
        """Remove the entries for ``exe`` (for one kind, or all); return how many."""
        if kind is None:
            return self.db.write(lambda c: c.execute(
                "DELETE FROM allowlist WHERE exe = ?", (to_db(exe),)).rowcount)
        kind_value = DeviceKind(kind).value
        return self.db.write(lambda c: c.execute(
            "DELETE FROM allowlist WHERE exe = ? AND device_kind = ?",
            (to_db(exe), kind_value)).rowcount)

    def entries(self) -> list[AllowEntry]:
        rows = self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM allowlist ORDER BY exe, device_kind").fetchall())  # noqa: S608
        return [e for e in map(_entry, rows) if e is not None]

    def _entry(self, exe: str, kind_value: str) -> AllowEntry | None:
        row = self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM allowlist WHERE exe = ? AND device_kind = ?",  # noqa: S608
            (to_db(exe), kind_value)).fetchone())
        return None if row is None else _entry(row)

    def is_allowed(self, exe: str, sha256: str | None, kind: DeviceKind | str,
                   origin: ExeOrigin | None = None) -> AllowVerdict:
        """Whether this binary may use a ``kind`` device without asking.

        ``sha256`` is the hash of the binary the process runs now (None if it could not be
        read): a listed path whose binary cannot be checked is not allowed either.
        ``origin``: where it comes from now; for an entry that trusts an origin, that
        decides (the hash is not needed), when it is known.
        """
        kind_value = DeviceKind(kind).value
        shown = literal(exe, 300)
        entry = self._entry(exe, kind_value)
        if entry is None:
            return AllowVerdict(AllowStatus.NOT_LISTED,
                                f"{shown} is not on the allow list for the {kind_value}")
        if entry.origin is not None and origin is not None:
            return _by_origin(entry, origin, shown, kind_value)
        if sha256 is None:
            return AllowVerdict(AllowStatus.UNVERIFIED,
                                f"cannot check {shown}: its file could not be read, so it "
                                f"is not known to be the binary that was allowed", entry)
        now = sha256.strip().lower()
        if now != entry.sha256:
            return AllowVerdict(AllowStatus.BINARY_CHANGED,
                                f"binary changed: {shown} was allowed with sha256 "
                                f"{entry.sha256} but is now {literal(now, 80)}", entry)
        return AllowVerdict(AllowStatus.ALLOWED,
                            f"{shown} is allowed for the {kind_value} (sha256 {entry.sha256})",
                            entry)


def _by_origin(entry: AllowEntry, origin: ExeOrigin, shown: str, kind: str) -> AllowVerdict:
    trusted = entry.origin or ""
    try:
        named = ExeOrigin(*parse_origin_key(trusted))
    except ValueError:
        return AllowVerdict(AllowStatus.UNVERIFIED, f"the allow-list entry for {shown} names "
                            f"an origin this camguard does not know ({literal(trusted, 80)})",
                            entry)
    if origin.key != trusted:
        return AllowVerdict(AllowStatus.BINARY_CHANGED,
                            f"{shown} was allowed as part of the {named.describe()}; it now "
                            f"comes from the {origin.describe()}", entry)
    problem = origin.problem()
    if problem is not None:  # (the path is on the alert already: the reason is short)
        return AllowVerdict(AllowStatus.BINARY_CHANGED, problem, entry)
    return AllowVerdict(AllowStatus.ALLOWED, f"{shown} is allowed for the {kind} as part of "
                        f"the {origin.describe()} (its verified updates stay allowed)", entry)
