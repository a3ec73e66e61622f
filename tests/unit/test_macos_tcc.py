"""The TCC.db reader against SQLite files made here with each era's ``access`` columns,
hostile values, a locked file and a corrupt one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.platform.macos.tcc import MAX_CLIENT, TccEntry, TccError, read_tcc

# The access table's columns per era (the first three as write-ups show them).
SCHEMAS = {
    "10.13": "service TEXT, client TEXT, client_type INTEGER, allowed INTEGER, "
             "prompt_count INTEGER, csreq BLOB, policy_id INTEGER",
    "10.15": "service TEXT, client TEXT, client_type INTEGER, allowed INTEGER, "
             "prompt_count INTEGER, csreq BLOB, policy_id INTEGER, "
             "indirect_object_identifier_type INTEGER, indirect_object_identifier TEXT, "
             "indirect_object_code_identity BLOB, flags INTEGER, last_modified INTEGER",
    "11": "service TEXT, client TEXT, client_type INTEGER, auth_value INTEGER, "
          "auth_reason INTEGER, auth_version INTEGER, csreq BLOB, policy_id INTEGER, "
          "indirect_object_identifier_type INTEGER, indirect_object_identifier TEXT, "
          "indirect_object_code_identity BLOB, flags INTEGER, last_modified INTEGER",
    "14": "service TEXT, client TEXT, client_type INTEGER, auth_value INTEGER, "
          "auth_reason INTEGER, auth_version INTEGER, csreq BLOB, policy_id INTEGER, "
          "indirect_object_identifier_type INTEGER, indirect_object_identifier TEXT, "
          "indirect_object_code_identity BLOB, flags INTEGER, last_modified INTEGER, "
          "pid INTEGER, pid_version INTEGER, boot_uuid TEXT, last_reminded INTEGER",
}


INSERTS = {
    ("auth_value", True): "INSERT INTO access (service, client, client_type, auth_value, "
                          "last_modified) VALUES (?, ?, 0, ?, ?)",
    ("allowed", True): "INSERT INTO access (service, client, client_type, allowed, "
                       "last_modified) VALUES (?, ?, 0, ?, ?)",
    ("allowed", False): "INSERT INTO access (service, client, client_type, allowed) "
                        "VALUES (?, ?, 0, ?)",
}


def make(path: Path, era: str, rows: list[tuple[str, object, int, int]]) -> Path:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"CREATE TABLE access ({SCHEMAS[era]})")
        answer = "auth_value" if "auth_value" in SCHEMAS[era] else "allowed"
        sql = INSERTS[(answer, "last_modified" in SCHEMAS[era])]
        for service, client, value, when in rows:
            params = (service, client, value, when) if sql.count("?") == 4 else (
                service, client, value)
            conn.execute(sql, params)
    conn.close()
    return path


@pytest.mark.parametrize("era", ["11", "14"])
def test_auth_value_eras(tmp_path: Path, era: str) -> None:
    db = make(tmp_path / "TCC.db", era, [
        ("kTCCServiceMicrophone", "us.zoom.xos", 2, 1_700_000_100),
        ("kTCCServiceCamera", "us.zoom.xos", 2, 1_700_000_000),
        ("kTCCServiceCamera", "com.evil.app", 0, 1_700_000_200),
        ("kTCCServiceScreenCapture", "/usr/local/bin/obs", 2, 1_700_000_300),
        ("kTCCServiceCamera", "com.example.unknown", 1, 1_700_000_400),
        ("kTCCServiceAddressBook", "com.apple.Mail", 2, 1_700_000_500)])
    got = [e.as_json() for e in read_tcc(db)]
    assert got == [
        {"service": "camera", "client": "us.zoom.xos", "allowed": True,
         "last_modified": 1_700_000_000},
        {"service": "microphone", "client": "us.zoom.xos", "allowed": True,
         "last_modified": 1_700_000_100},
        {"service": "camera", "client": "com.evil.app", "allowed": False,
         "last_modified": 1_700_000_200},
        {"service": "screen", "client": "/usr/local/bin/obs", "allowed": True,
         "last_modified": 1_700_000_300},
        {"service": "camera", "client": "com.example.unknown", "allowed": None,
         "last_modified": 1_700_000_400}]


def test_allowed_eras(tmp_path: Path) -> None:
    old = make(tmp_path / "old.db", "10.13", [("kTCCServiceCamera", "com.skype.skype", 1, 0),
                                               ("kTCCServiceMicrophone", "com.a", 0, 0)])
    assert read_tcc(old) == [
        TccEntry("camera", "com.skype.skype", True, None, str(old)),
        TccEntry("microphone", "com.a", False, None, str(old))]
    mid = make(tmp_path / "mid.db", "10.15", [("kTCCServiceCamera", "com.b", 1, 1_500_000_000)])
    assert [e.as_json() for e in read_tcc(mid)] == [
        {"service": "camera", "client": "com.b", "allowed": True, "last_modified": 1_500_000_000}]


def test_hostile_values_are_kept_literal_and_bounded(tmp_path: Path) -> None:
    db = make(tmp_path / "TCC.db", "14", [
        ("kTCCServiceCamera", "evil\x1b[31m\u202eapp", 2, 1),
        ("kTCCServiceCamera", "x" * 100_000, 2, 2),
        ("kTCCServiceCamera", None, 2, 3),  # NULL client: skipped
        ("kTCCServiceCamera", "text-time", 2, "yesterday"),  # type: ignore[list-item]
        ("kTCCServiceCamera", "'; DROP TABLE access; --", "maybe", 4)])  # type: ignore[list-item]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO access (service, client, auth_value, last_modified) "
                     "VALUES ('kTCCServiceCamera', CAST(X'ff6261' AS TEXT), 2, 5)")
    conn.close()
    got = {e.last_modified: e for e in read_tcc(db)}
    assert got[1].client == "evil\x1b[31m\u202eapp"  # shown escaped by the printer, kept here
    assert len(got[2].client) == MAX_CLIENT
    assert 3 not in got
    assert got[None].client == "text-time" and got[None].allowed is True
    assert got[4].allowed is None  # not an integer answer: neither allowed nor denied
    assert got[5].client == "\udcffba"
    assert read_tcc(db)  # the injection-looking client changed nothing


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    db = make(tmp_path / "TCC.db", "14", [("kTCCServiceCamera", "a", 2, 1)])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield db
    holder.execute("ROLLBACK")
    holder.close()


def test_a_locked_file_is_a_clear_error(locked: Path) -> None:
    with pytest.raises(TccError, match="locked by another program"):
        read_tcc(locked)


@pytest.mark.parametrize(("content", "match"), [
    (b"this is not sqlite at all" * 100, "not a TCC database"),
    (b"", "not a TCC database"),  # an empty file is an empty database: no access table
])
def test_a_corrupt_or_foreign_file_is_a_clear_error(tmp_path: Path, content: bytes,
                                                    match: str) -> None:
    db = tmp_path / "TCC.db"
    db.write_bytes(content)
    with pytest.raises(TccError, match=match):
        read_tcc(db)


def test_missing_file_and_unknown_schema(tmp_path: Path) -> None:
    with pytest.raises(TccError, match="no such file"):
        read_tcc(tmp_path / "absent.db")
    db = tmp_path / "odd.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE access (service TEXT, client TEXT, verdict INTEGER)")
    conn.close()
    with pytest.raises(TccError, match="unknown TCC schema"):
        read_tcc(db)
