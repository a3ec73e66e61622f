"""Read /proc/PID/fd tables and keep the entries that point at watched device nodes.

psutil's ``open_files()`` keeps regular files only (``S_ISREG``), so it never lists a
camera; we read the links ourselves, with ``os.readlink(name, dir_fd=...)`` so each costs
one syscall without re-resolving ``/proc/PID/fd``.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Collection, Mapping

# fd targets under /dev that are never cameras or microphones: skip the stat() for them.
_BORING_DEV = ("/dev/null", "/dev/zero", "/dev/pts/", "/dev/tty", "/dev/urandom",
               "/dev/random", "/dev/ptmx", "/dev/full", "/dev/console",
               "/dev/shm/")  # noqa: S108 (a prefix to skip, not a temp file)
_DELETED = " (deleted)"

Pairs = dict[str, set[tuple[int, int]]]
# Opens and closes per node since the last look, and whether anything structural happened.
Pending = tuple[dict[str, int], dict[str, int], bool]
# What makes a node that very node even after it is unlinked: (st_dev, st_ino, st_rdev).
# st_dev and st_rdev alone would not tell two nodes of one device (or two stand-ins) apart.
Identity = tuple[int, int, int]


class Scanner:
    """Reads one process's fd table and keeps the device-matching entries."""

    FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

    def __init__(self, paths: Collection[str], proc_root: str,
                 alias_rdevs: Collection[int] = (),
                 removed: Mapping[str, Collection[Identity]] | None = None) -> None:
        self.targets = frozenset(paths)
        self.deleted = {p + _DELETED: p for p in self.targets}
        # Nodes unlinked since a look saw them (a hot-unplug): an fd a process still holds
        # reads "<path> (deleted)" and is a use of that node if it is that very inode.
        self.removed = {p: frozenset(ids) for p, ids in (removed or {}).items()
                        if p not in self.targets}
        self.gone = {p + _DELETED: p for p in self.removed}
        self.proc_root = proc_root
        self.alias_rdevs = frozenset(alias_rdevs)
        self.hidden = 0
        # Number of open fds per pid, as the kernel reports it in st_size of /proc/PID/fd
        # (fs/proc/fd.c, Linux >= 6.2; 0 before, which only disables the shortcut).
        self.fd_counts: dict[int, int] = {}
        # The same for each process whose fd table could not be read: the kernel gives the
        # count to anyone, which is what tells a hidden holder (platform/linux/hidden.py).
        self.hidden_fds: dict[int, int] = {}

    def pids(self) -> list[int]:
        try:
            entries = os.listdir(self.proc_root)
        except OSError as exc:
            raise ProcUnreadableError(f"cannot list {self.proc_root}: {exc}") from exc
        return [int(e) for e in entries if e.isdigit()]

    def fd_count(self, pid: int) -> int:
        try:
            return os.stat(f"{self.proc_root}/{pid}/fd").st_size
        except OSError:
            return -1

    def probe(self, pid: int) -> int | None:
        """The fd count of ``pid`` if its fd table is unreadable to us; None if readable
        (or gone), -1 if it vanished between the two calls."""
        try:
            os.close(os.open(f"{self.proc_root}/{pid}/fd", self.FLAGS))
        except PermissionError:
            return self.fd_count(pid)
        except OSError:
            return None
        return None

    def _hidden(self, pid: int) -> None:
        self.hidden += 1
        count = self.fd_count(pid)
        if count >= 0:
            self.hidden_fds[pid] = count

    def scan(self, pid: int, into: Pairs) -> None:
        """Add ``pid``'s matching ``(pid, fd)`` pairs to ``into``; vanished = nothing."""
        try:
            dfd = os.open(f"{self.proc_root}/{pid}/fd", self.FLAGS)
        except PermissionError:
            self._hidden(pid)
            return
        except OSError:  # vanished (ENOENT), or gone mid-way (ESRCH)
            return
        try:
            try:
                fds = os.listdir(dfd)
                self.fd_counts[pid] = os.fstat(dfd).st_size
            except PermissionError:
                self._hidden(pid)
                return
            except OSError:
                return
            links = _readlinks(dfd, fds)
            # Set operations run in C: most processes hold nothing of interest, and for them
            # this is the whole cost after the readlinks themselves.
            if (self.targets.isdisjoint(links) and self.deleted.keys().isdisjoint(links)
                    and self.gone.keys().isdisjoint(links) and not self.alias_rdevs):
                return
            for fd, target in zip(fds, links, strict=True):
                if target in self.targets:
                    into.setdefault(target, set()).add((pid, int(fd)))
                elif target in self.deleted:  # held across a hot-unplug: still in use
                    into.setdefault(self.deleted[target], set()).add((pid, int(fd)))
                elif target in self.gone:  # unlinked while held, and no node there now
                    path = self.gone[target]
                    if _identity_of(dfd, fd) in self.removed[path]:
                        into.setdefault(path, set()).add((pid, int(fd)))
                elif (self.alias_rdevs and target.startswith("/dev/")
                      and not target.startswith(_BORING_DEV)):
                    # Only under /dev: a stat() per regular file would double the scan.
                    # An alias made elsewhere needs CAP_MKNOD, i.e. an attacker who is
                    # already root; inotify does not see it either (another inode).
                    alias = _alias_of(dfd, fd, self.alias_rdevs)
                    if alias is not None:
                        into.setdefault(alias, set()).add((pid, int(fd)))
        finally:
            os.close(dfd)


def scan_holders(paths: Collection[str], proc_root: str = "/proc",
                 alias_rdevs: Collection[int] = ()) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """Map each of ``paths`` to the ``(pid, fd)`` pairs that hold it open (a full scan).

    Also returns how many processes could not be inspected (their ``fd`` folder was not
    readable: another user's, without privileges). A process that vanishes mid-scan is
    skipped. ``alias_rdevs``: device numbers to match even under another path.
    """
    scanner = Scanner(paths, proc_root, alias_rdevs)
    found: Pairs = {}
    for pid in scanner.pids():
        scanner.scan(pid, found)
    return {k: sorted(v) for k, v in found.items()}, scanner.hidden


def _readlinks(dfd: int, fds: list[str]) -> list[str]:
    """The targets of ``fds`` (names inside the open ``/proc/PID/fd`` folder ``dfd``)."""
    try:
        return list(map(functools.partial(os.readlink, dir_fd=dfd), fds))
    except OSError:  # one closed between listdir and readlink: go one by one
        links = []
        for fd in fds:
            try:
                links.append(os.readlink(fd, dir_fd=dfd))
            except OSError:
                links.append("")
        return links


def identity(path: str) -> Identity | None:
    """The identity of the node at ``path`` now (None if there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_rdev)


def _identity_of(dfd: int, fd: str) -> Identity | None:
    """The identity of the file behind an fd (stat follows the /proc magic link)."""
    try:
        st = os.stat(fd, dir_fd=dfd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_rdev)


def _alias_of(dfd: int, fd: str, rdevs: Collection[int]) -> str | None:
    try:
        st = os.stat(fd, dir_fd=dfd)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode) and st.st_rdev in rdevs:
        return f"rdev:{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return None


class ProcUnreadableError(OSError):
    """/proc itself cannot be listed (not mounted, or hidepid with no access)."""
