"""Which processes are the sound server a session really uses: by executable, owner and the
socket it serves, never by the name a process gives itself.

Any process may call itself ``pipewire`` (``prctl(PR_SET_NAME)``, or writing
``/proc/self/comm``), so a name decides nothing. A process is the sound server when

* its executable (``/proc/PID/exe``, not a deleted file) is one of the configured sound
  server executables (``/usr/bin/pipewire``, ``/usr/bin/pulseaudio``...), and
* it, or a process with the same real owner and one of those executables (WirePlumber
  beside PipeWire), listens on a session sound socket: ``pulse/native`` or ``pipewire-0``
  in a runtime folder that its owner owns and nobody else may write to (the user's
  ``XDG_RUNTIME_DIR``), the socket file itself owned by that owner too.

Read from procfs only: ``/proc/PID/fd`` names socket inodes, ``/proc/PID/net/unix`` says
which of them listen and on which path (``unix(7)``, ``proc(5)``).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Collection, Iterator

log = logging.getLogger(__name__)

# The sockets clients reach the server on, relative to the runtime folder.
SESSION_SOCKETS = ("pulse/native", "pipewire-0", "pipewire-0-manager")
# __SO_ACCEPTCON in include/linux/net.h: the socket listens (the Flags column of
# /proc/net/unix, see net/unix/af_unix.c, unix_seq_show).
SO_ACCEPTCON = 0x10000
MAX_FDS = 65536  # a process with more open files is not inspected further


class SoundServers:
    """Answers "is this pid the session's sound server?" from procfs.

    Threads: any; each call reads a few procfs files (and, for a process that serves no
    socket itself, the status of every process of its owner): a few milliseconds at most.
    """

    def __init__(self, exes: Collection[str], proc_root: str = "/proc") -> None:
        self._exes = frozenset(exes)
        self._proc = proc_root

    def is_sound_server(self, pid: int) -> bool:
        if self._exe(pid) not in self._exes:
            return False
        uid = self._real_uid(pid)
        if uid is None:
            return False
        if self._serves_session(pid, uid):
            return True
        return any(self._serves_session(other, uid) for other in self._same_owner(uid)
                   if other != pid)

    # -- procfs ----------------------------------------------------------------------------
    def _exe(self, pid: int) -> str:
        try:
            exe = os.readlink(f"{self._proc}/{pid}/exe")
        except OSError:
            return ""
        # An executable replaced or removed since the start is not the installed one.
        return "" if exe.endswith(" (deleted)") else exe

    def _real_uid(self, pid: int) -> int | None:
        try:
            with open(f"{self._proc}/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def _same_owner(self, uid: int) -> Iterator[int]:
        try:
            entries = os.listdir(self._proc)
        except OSError:
            return
        for entry in entries:
            if entry.isdigit():
                pid = int(entry)
                if self._real_uid(pid) == uid and self._exe(pid) in self._exes:
                    yield pid

    def _serves_session(self, pid: int, uid: int) -> bool:
        return next(self._sockets(pid, uid), None) is not None

    def _sockets(self, pid: int, uid: int) -> Iterator[str]:
        return (p for p in listening_paths(pid, self._proc) if _session_socket(p, uid))


def listening_paths(pid: int, proc_root: str = "/proc") -> Iterator[str]:
    """The filesystem paths of the unix sockets ``pid`` listens on (holds open)."""
    inodes = _socket_inodes(pid, proc_root)
    if not inodes:
        return
    try:
        with open(f"{proc_root}/{pid}/net/unix", "rb") as f:
            lines = f.read(1 << 24).decode("utf-8", "surrogateescape").splitlines()[1:]
    except OSError:
        return
    for line in lines:
        fields = line.split(maxsplit=7)
        if len(fields) < 8 or not fields[7].startswith("/"):
            continue  # unbound, or an abstract name (@...)
        try:
            flags, inode = int(fields[3], 16), int(fields[6])
        except ValueError:
            continue
        if inode in inodes and flags & SO_ACCEPTCON:
            yield fields[7]


def _socket_inodes(pid: int, proc_root: str) -> set[int]:
    fd_dir = f"{proc_root}/{pid}/fd"
    found: set[int] = set()
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return found
    for fd in fds[:MAX_FDS]:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            try:
                found.add(int(target[8:-1]))
            except ValueError:
                continue
    return found


def _session_socket(path: str, uid: int) -> bool:
    """``path`` is a session sound socket of ``uid``: the right name, in a runtime folder of
    theirs that nobody else may write to, the socket file theirs too."""
    name = next((s for s in SESSION_SOCKETS if path.endswith("/" + s)), None)
    if name is None or not path.startswith("/"):
        return False
    runtime = path[: -len(name) - 1] or "/"
    try:
        sock = os.lstat(path)
        folder = os.lstat(runtime)
    except OSError:
        return False
    return (stat.S_ISSOCK(sock.st_mode) and sock.st_uid == uid
            and stat.S_ISDIR(folder.st_mode) and folder.st_uid == uid
            and not folder.st_mode & 0o022)
