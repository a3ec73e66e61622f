"""The fd scan's less travelled branches, against real child processes holding real fds:
a node unlinked while held ("(deleted)"), an alias node under /dev with a watched device
number, an fd table that changes between listing and reading, a process without one."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.platform.linux.fdscan import Scanner, scan_holders
from tests.conftest import Holder, make_standin, need, need_root

pytestmark = pytest.mark.real

NULL_RDEV = os.makedev(1, 3)  # the stand-ins' device number (the kernel's null driver)


def fds_of(found: dict[str, list[tuple[int, int]]], key: str, pid: int) -> list[int]:
    return [fd for p, fd in found.get(key, []) if p == pid]


@pytest.fixture
def dev_alias() -> Iterator[Path]:
    """A second node for 1:3 under the real /dev (the scan matches aliases only there),
    with a name no other test uses; removed afterwards."""
    need_root()
    path = Path("/dev") / f"camguard-test-alias-{secrets.token_hex(4)}"
    os.mknod(path, 0o600 | stat.S_IFCHR, NULL_RDEV)
    yield path
    path.unlink(missing_ok=True)


def test_a_node_unlinked_while_held_is_still_reported_under_its_path(
        devdir: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    h = Holder([cam])
    holders.append(h)
    cam.unlink()  # hot-unplug: the holder's link now reads "<path> (deleted)"
    links = [os.readlink(f"/proc/{h.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{h.pid}/fd")]
    assert f"{cam} (deleted)" in links
    found, _hidden = scan_holders([str(cam)])
    assert len(fds_of(found, str(cam), h.pid)) == 1
    assert set(found) == {str(cam)}  # never under the " (deleted)" name


def test_an_alias_node_under_dev_is_matched_by_device_number(
        devdir: Path, dev_alias: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    h = Holder([dev_alias])
    holders.append(h)
    key = f"rdev:{os.major(NULL_RDEV)}:{os.minor(NULL_RDEV)}"
    found, _ = scan_holders([str(cam)], alias_rdevs=[NULL_RDEV])
    assert len(fds_of(found, key, h.pid)) == 1
    # Without the device number to match, the alias is just another file under /dev.
    found, _ = scan_holders([str(cam)])
    assert fds_of(found, key, h.pid) == [] and found.get(str(cam), []) == []


def test_an_alias_with_another_device_number_and_dev_null_are_not_matched(
        devdir: Path, dev_alias: Path, holders: list[Holder]) -> None:
    cam = make_standin(devdir / "video0")
    h = Holder([dev_alias, "/dev/null"])
    holders.append(h)
    found, _ = scan_holders([str(cam)], alias_rdevs=[os.makedev(81, 0)])
    assert all(pid != h.pid for pairs in found.values() for pid, _ in pairs)
    # /dev/null is 1:3 too, but is skipped by name before any stat().
    found, _ = scan_holders([str(cam)], alias_rdevs=[NULL_RDEV])
    key = f"rdev:{os.major(NULL_RDEV)}:{os.minor(NULL_RDEV)}"
    assert len(fds_of(found, key, h.pid)) == 1  # the alias only, not /dev/null


def test_an_entry_that_is_not_a_link_does_not_hide_the_others(tmp_path: Path) -> None:
    """readlink fails for one fd (closed between listing and reading, here: not a link at
    all); the scan reads the others one by one instead of losing the whole process."""
    proc = tmp_path / "proc"
    fd_dir = proc / "100" / "fd"
    fd_dir.mkdir(parents=True)
    os.symlink("/dev/video0", fd_dir / "3")
    (fd_dir / "4").write_text("")
    os.symlink("/dev/video1", fd_dir / "5")
    found, hidden = scan_holders(["/dev/video0", "/dev/video1"], str(proc))
    assert found == {"/dev/video0": [(100, 3)], "/dev/video1": [(100, 5)]}
    assert hidden == 0


def test_fd_count_is_the_kernels_count_and_minus_one_for_a_gone_process(
        devdir: Path, holders: list[Holder], tmp_path: Path) -> None:
    h = Holder([make_standin(devdir / "video0")])
    holders.append(h)
    scanner = Scanner([], "/proc")
    count = scanner.fd_count(h.pid)
    need(count > 0, "st_size of /proc/PID/fd counts fds on Linux >= 6.2")
    assert count == len(os.listdir(f"/proc/{h.pid}/fd"))
    assert Scanner([], str(tmp_path)).fd_count(h.pid) == -1
    into: dict[str, set[tuple[int, int]]] = {}
    Scanner([str(devdir / "video0")], str(tmp_path)).scan(h.pid, into)  # vanished: nothing
    assert into == {}
