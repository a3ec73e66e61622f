"""The allow list: a path plus its SHA-256, so a changed binary at an allowed path is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.core.models import DeviceKind, ProcessRef
from camguard.store.allowlist import AllowList, AllowStatus
from camguard.store.db import Database
from camguard.store.hashing import ExeHasher

A = "a" * 64
B = "b" * 64


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(tmp_path / "history.sqlite3", FrozenClock())
    yield d
    d.close()


def test_listed_binary_with_the_same_hash_is_allowed(db: Database) -> None:
    allow = AllowList(db)
    entry = allow.add("/usr/bin/zoom", A.upper(), DeviceKind.CAMERA, 10.0, note="work calls")
    assert entry.sha256 == A  # normalised
    verdict = allow.is_allowed("/usr/bin/zoom", A, "camera")
    assert verdict.allowed and verdict.status is AllowStatus.ALLOWED
    assert verdict.entry == entry


def test_a_changed_binary_at_an_allowed_path_is_refused_with_the_reason(db: Database) -> None:
    allow = AllowList(db)
    allow.add("/usr/bin/zoom", A, DeviceKind.CAMERA, 10.0)
    verdict = allow.is_allowed("/usr/bin/zoom", B, DeviceKind.CAMERA)
    assert not verdict.allowed and verdict.status is AllowStatus.BINARY_CHANGED
    assert verdict.reason == (f"binary changed: /usr/bin/zoom was allowed with sha256 {A} "
                              f"but is now {B}")


def test_unlisted_other_kind_and_unreadable_are_not_allowed(db: Database) -> None:
    allow = AllowList(db)
    allow.add("/usr/bin/zoom", A, DeviceKind.CAMERA, 10.0)
    other = allow.is_allowed("/usr/bin/zoom", A, DeviceKind.MICROPHONE)
    assert other.status is AllowStatus.NOT_LISTED and not other.allowed
    assert "not on the allow list for the microphone" in other.reason
    assert allow.is_allowed("/usr/bin/skype", A, "camera").status is AllowStatus.NOT_LISTED
    unread = allow.is_allowed("/usr/bin/zoom", None, "camera")
    assert unread.status is AllowStatus.UNVERIFIED and not unread.allowed


def test_add_replaces_remove_and_list(db: Database) -> None:
    allow = AllowList(db)
    allow.add("/usr/bin/zoom", A, "camera", 10.0)
    allow.add("/usr/bin/zoom", A, "microphone", 11.0)
    allow.add("/usr/bin/obs", B, "camera", 12.0)
    allow.add("/usr/bin/zoom", B, "camera", 13.0, note="updated")  # the user re-allowed it
    assert [(e.exe, e.kind.value, e.sha256, e.note) for e in allow.entries()] == [
        ("/usr/bin/obs", "camera", B, ""),
        ("/usr/bin/zoom", "camera", B, "updated"),
        ("/usr/bin/zoom", "microphone", A, ""),
    ]
    assert allow.is_allowed("/usr/bin/zoom", B, "camera").allowed
    assert allow.remove("/usr/bin/zoom", "camera") == 1
    assert allow.remove("/usr/bin/zoom") == 1
    assert allow.remove("/usr/bin/zoom") == 0
    assert [e.exe for e in allow.entries()] == ["/usr/bin/obs"]


@pytest.mark.parametrize(("exe", "sha"), [
    ("", A), ("zoom", A), ("/usr/bin/zoom\x00x", A),
    ("/usr/bin/zoom", ""), ("/usr/bin/zoom", "abc"), ("/usr/bin/zoom", "g" * 64),
])
def test_an_entry_that_cannot_name_one_binary_is_refused(db: Database, exe: str, sha: str
                                                         ) -> None:
    with pytest.raises(ValueError, match=r"not a SHA-256|not an absolute executable"):
        AllowList(db).add(exe, sha, "camera", 1.0)
    assert AllowList(db).entries() == []


def test_hostile_path_round_trips_and_the_reason_is_literal(db: Database) -> None:
    exe = "/tmp/\x1b[31mevil\udcff\n<b>"
    allow = AllowList(db)
    allow.add(exe, A, "camera", 1.0, note="\u202enote")
    [entry] = allow.entries()
    assert entry.exe == exe and entry.note == "\u202enote"
    verdict = allow.is_allowed(exe, B, "camera")
    assert verdict.status is AllowStatus.BINARY_CHANGED
    assert "\\x1b[31mevil\\xff\\n<b>" in verdict.reason
    assert "\x1b" not in verdict.reason and "\n" not in verdict.reason


def test_entries_survive_a_restart_and_check_real_files(tmp_path: Path) -> None:
    exe = tmp_path / "app"
    exe.write_bytes(b"good build")
    hasher = ExeHasher()
    digest = hasher(ProcessRef(1, 1.0, exe=str(exe)))
    assert digest == hashlib.sha256(b"good build").hexdigest()
    db = Database(tmp_path / "history.sqlite3", FrozenClock())
    AllowList(db).add(str(exe), digest, "microphone", 1.0)
    db.close()
    exe.write_bytes(b"tampered build")  # same path, same inode, new content

    db = Database(tmp_path / "history.sqlite3", FrozenClock())
    now = hasher(ProcessRef(1, 1.0, exe=str(exe)))
    verdict = AllowList(db).is_allowed(str(exe), now, "microphone")
    assert verdict.status is AllowStatus.BINARY_CHANGED
    assert f"was allowed with sha256 {digest} but is now {now}" in verdict.reason
    db.close()
