"""store.files' Windows lock (msvcrt.locking) with FakeMsvcrt: blocks.json and the service
lock used flock only, and opened with O_CLOEXEC/O_NOFOLLOW, which Windows' os lacks."""

from __future__ import annotations

import os
from pathlib import Path

from camguard.store import files


class FakeMsvcrt:
    """msvcrt.locking: LK_LOCK gives up (OSError) after its ten tries while ``held``."""

    LK_LOCK, LK_NBLCK = 1, 2

    def __init__(self, held_for: int) -> None:
        self.held_for = held_for  # failed attempts before the lock is free
        self.calls: list[int] = []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1 and fd >= 0
        self.calls.append(mode)
        if self.held_for > 0:
            self.held_for -= 1
            raise OSError(36, "Resource deadlock avoided")


def test_waiting_lock_retries_until_free_and_a_try_does_not(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "x.lock", files._LOCK_FLAGS, 0o600)
    try:
        fake = FakeMsvcrt(held_for=2)
        assert files._win_lock(fd, wait=True, locking=fake) is True
        assert fake.calls == [fake.LK_LOCK] * 3
        busy = FakeMsvcrt(held_for=1)
        assert files._win_lock(fd, wait=False, locking=busy) is False
        assert busy.calls == [busy.LK_NBLCK]
    finally:
        os.close(fd)


def test_lock_flags_exist_on_every_os() -> None:
    assert files._LOCK_FLAGS & os.O_CREAT and files._LOCK_FLAGS & os.O_RDWR
