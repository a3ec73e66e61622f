"""The parental lock: scrypt hash in a 0600 file, exponential back-off that survives restarts,
fail-closed on a damaged file. Real files, frozen clock."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from camguard.core.clock import FrozenClock
from camguard.store.parental_lock import (
    BACKOFF_CAP,
    SALT_BYTES,
    SCRYPT_N,
    LockGuard,
    LockOutcome,
    require_unlock,
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "lock.json"


def test_no_lock_lets_everything_through_without_asking(path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    assert not guard.is_set()
    assert guard.check(None).ok
    asked: list[int] = []
    assert require_unlock(guard, lambda: asked.append(1) or "x").ok
    assert asked == []
    assert guard.status() == {"set": False, "failures": 0, "retry_after": 0.0,
                              "damaged": None}


def test_password_is_stored_as_a_salted_scrypt_hash_in_a_private_file(
        path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    assert guard.set_password("correct horse").ok
    raw = path.read_bytes()
    assert b"correct horse" not in raw
    doc = json.loads(raw)
    assert doc["kdf"] == "scrypt" and doc["n"] == SCRYPT_N and doc["r"] == 8 and doc["p"] == 1
    assert len(bytes.fromhex(doc["salt"])) == SALT_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first_salt = doc["salt"]
    guard.set_password("correct horse", "correct horse")
    assert json.loads(path.read_bytes())["salt"] != first_salt  # a fresh salt each time
    assert guard.check("correct horse").ok
    assert guard.check("correct horsE").status is LockOutcome.WRONG


def test_wrong_passwords_back_off_exponentially_and_even_the_right_one_waits(
        path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    guard.set_password("secret")
    waits = []
    for _ in range(4):
        answer = guard.check("nope")
        assert answer.status is LockOutcome.WRONG
        waits.append(answer.retry_after)
        locked = guard.check("secret")  # the right one, during the wait: not even tried
        assert locked.status is LockOutcome.LOCKED_OUT
        assert locked.retry_after == pytest.approx(answer.retry_after)
        clock.advance(answer.retry_after)
    assert waits == [1.0, 2.0, 4.0, 8.0]
    assert guard.check("secret").ok
    assert guard.status()["failures"] == 0  # a right password resets the count
    assert guard.check("nope").retry_after == 1.0


def test_the_back_off_is_capped_and_survives_a_new_guard(path: Path,
                                                           clock: FrozenClock) -> None:
    LockGuard(path, clock).set_password("secret")
    for _ in range(12):
        guard = LockGuard(path, clock)  # every attempt a new process, as the CLI is
        answer = guard.check("nope")
        clock.advance(answer.retry_after)
    assert answer.retry_after == BACKOFF_CAP
    fresh = LockGuard(path, clock)
    assert fresh.check("nope").retry_after == BACKOFF_CAP
    status = LockGuard(path, clock).status()
    assert status["failures"] == 13 and status["retry_after"] == BACKOFF_CAP


def test_the_back_off_is_per_account(path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    guard.set_password("secret")
    kid, parent = 1001, 1000
    for _ in range(3):
        clock.advance(guard.status(who=kid)["retry_after"])
        assert guard.check("guess", who=kid).status is LockOutcome.WRONG
    assert guard.check("secret", who=kid).status is LockOutcome.LOCKED_OUT
    assert guard.status(who=kid)["failures"] == 3
    assert guard.status(who=parent) == {"set": True, "failures": 0, "retry_after": 0.0,
                                        "damaged": None}
    assert guard.check("secret", who=parent).ok  # never locked out by the kid
    assert guard.check("typo", who=parent).retry_after == 1.0  # a count of its own
    assert guard.status(who=kid)["failures"] == 3  # nor does the parent reset the kid's
    assert guard.status()["failures"] == 0  # the local account is another one again


def test_a_back_off_written_before_accounts_applies_to_the_local_one(
        path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    guard.set_password("secret")
    doc = json.loads(path.read_bytes())
    del doc["backoff"]  # as a version before accounts wrote it
    doc.update(failures=4, next_allowed=clock.now() + 30)
    path.write_text(json.dumps(doc))
    assert guard.check("secret").status is LockOutcome.LOCKED_OUT
    assert guard.check("secret", who=1000).ok
    doc["backoff"] = {"../../x": {"failures": 1, "next_allowed": 0}}
    path.write_text(json.dumps(doc))
    assert guard.check("secret", who=1000).status is LockOutcome.LOCKED_OUT  # fails closed


def test_a_clock_set_back_never_makes_the_wait_longer_than_the_cap(
        path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock, cap=60.0)
    guard.set_password("secret")
    guard.check("nope")
    clock.advance(-86400)  # someone set the clock back a day
    answer = guard.check("secret")
    assert answer.status is LockOutcome.LOCKED_OUT and answer.retry_after == 60.0


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1, "kdf": "md5"}',
                                     b'{"version":1,"kdf":"scrypt","n":3,"r":8,"p":1,'
                                     b'"salt":"00","hash":"00"}', b"\xff\xfe"])
def test_a_damaged_lock_file_fails_closed(path: Path, clock: FrozenClock,
                                          content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    guard = LockGuard(path, clock)
    assert guard.is_set()
    answer = guard.check("anything")
    assert answer.status is LockOutcome.LOCKED_OUT and "damaged" in answer.message
    assert guard.status()["damaged"]
    assert path.read_bytes() == content  # kept for whoever investigates


def test_clear_and_change_need_the_current_password_unless_forced(
        path: Path, clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    guard.set_password("one")
    assert guard.set_password("two", None).status is LockOutcome.WRONG  # none given
    assert guard.status()["failures"] == 0  # asking is not guessing
    assert guard.clear("wrong").status is LockOutcome.WRONG
    assert guard.clear("one").status is LockOutcome.LOCKED_OUT  # the miss's wait first
    clock.advance(10)
    assert guard.clear("one").ok and not guard.is_set()
    guard.set_password("three")
    assert guard.set_password("four", force=True).ok and guard.check("four").ok
    assert guard.clear(None, force=True).ok and not path.exists()
    with pytest.raises(ValueError, match="password"):
        guard.set_password("")


def test_require_unlock_asks_only_when_a_try_would_count(path: Path,
                                                         clock: FrozenClock) -> None:
    guard = LockGuard(path, clock)
    guard.set_password("secret")
    assert require_unlock(guard, lambda: "secret").ok
    assert require_unlock(guard, lambda: None).status is LockOutcome.WRONG
    assert require_unlock(guard, lambda: "bad").status is LockOutcome.WRONG
    asked: list[int] = []
    out = require_unlock(guard, lambda: asked.append(1) or "secret")
    assert out.status is LockOutcome.LOCKED_OUT and asked == []
