"""The root service's view of every logged-in account's own PipeWire (issue 11).

The service has no PipeWire of its own: each account's daemon listens at
``/run/user/UID/pipewire-0``, and there the apps using a camera or recording the screen
are its clients. For each such account the service runs one ``pw-dump -m`` *as that
account* (setpriv: its uid, gid and groups; a clean environment), through the same
:class:`~camguard.platform.linux.pipewire.PipeWireSource` a user's camguard runs.

Why as the account and not as root: the daemon is the account's program and only admits
its own user (the socket is in the account's 0700 runtime folder); root connecting would
also let the account's daemon talk to a root client. What pw-dump prints is parsed by
root as hostile input (pw_graph ignores what is malformed).

Trust: the account's daemon (its program) says which pid each client has. A pid it names
that belongs to another account is not believed: that client is "a process camguard
cannot see", so a user's PipeWire can never make the service blame, or the kill switch
end, someone else's process.

Sessions come and go: inotify on the runtime root (folders created and removed at login
and logout) and on each account's folder (the socket created and removed) starts and
stops the per-account watchers; at most :data:`MAX_SESSIONS` are watched at once, and
the coverage says when more were left unwatched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import select
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import Device, ProcessRef, SourceSnapshot, Usage
from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.core.text import literal
from camguard.platform.base import Wake
from camguard.platform.linux.pipewire import Account, PipeWireSource
from camguard.platform.process import ProcessDescriber
from camguard.store import paths

log = logging.getLogger(__name__)

SOCKET = "pipewire-0"
# Each watched session costs one pw-dump (~6 MB resident, measured 0.3.65) and a thread.
MAX_SESSIONS = 32
# inotify says when a session starts or ends; this catches anything it could not (a
# folder that was not watchable yet).
RESCAN_INTERVAL = 30.0
STOP_TIMEOUT = 2.0


def accounts_with_pipewire(root: Path) -> Iterator[tuple[int, Path]]:
    """``(uid, socket)`` of each account whose runtime folder (owned by that uid, not
    writable by others) holds a PipeWire socket."""
    try:
        names = sorted(os.listdir(root), key=lambda n: (len(n), n))
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        uid = int(name)
        folder = root / name
        sock = folder / SOCKET
        try:
            st = os.stat(folder, follow_symlinks=False)
            sst = os.stat(sock, follow_symlinks=False)
        except OSError:
            continue
        if (uid == 0 or st.st_uid != uid or not stat.S_ISDIR(st.st_mode)
                or st.st_mode & stat.S_IWOTH or not stat.S_ISSOCK(sst.st_mode)
                or sst.st_uid != uid):
            continue
        yield uid, sock


def owner_of(pid: int) -> int | None:
    """The effective uid of ``pid`` (/proc/PID is owned by it, proc(5))."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


class OwnDescriber(ProcessDescriber):
    """Describes only the processes of one account (module note, Trust)."""

    def __init__(self, inner: ProcessDescriber, uid: int) -> None:
        super().__init__(max_cache=1)  # the inner describer's cache is the one used
        self._inner = inner
        self._uid = uid

    def describe(self, pid: int) -> ProcessRef | None:
        if owner_of(pid) != self._uid:
            return None
        return self._inner.describe(pid)

    def alive(self, ref: ProcessRef) -> bool:
        return self._inner.alive(ref)


class Watcher(Protocol):
    """One account's watcher (a PipeWireSource here, user_pulse.AccountPulse there)."""

    def snapshot(self) -> SourceSnapshot: ...
    def start(self, wake: Wake) -> None: ...
    def stop(self) -> None: ...
    def coverage(self) -> list[Coverage]: ...


class UserPipeWireSource:
    """Every account's PipeWire, as one source (module docstring). Its snapshot is the
    union of the per-account watchers'; its coverage has one camera and one screen entry
    per account (source ``pipewire:<account>``).

    Threads: :meth:`start` runs ``camguard-pipewire-users``, which follows the runtime
    root with inotify and starts or stops a watcher per session; :meth:`snapshot` merges
    the watchers' cached views (microseconds). Never started, :meth:`snapshot` runs one
    pw-dump per session on the caller's thread.
    """

    name = "pipewire-users"
    # The coverage's words: what it watches, and what a session it watches has.
    SENSORS: tuple[str, ...] = ("camera", "screen")
    SESSIONS_HAVE = "run PipeWire"
    SESSION_HAS = "runs PipeWire"
    UNNAMED = "their apps are not named"
    what = "PipeWire"  # for the log
    # Folders inside each account's runtime folder whose entries start or end a session
    # (watched with inotify too; user_pulse.py's socket is in "pulse").
    subfolders: tuple[str, ...] = ()

    def __init__(self, describer: ProcessDescriber, *, root: Path | None = None,
                 broker_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES,
                 limit: int = MAX_SESSIONS, pw_dump: str | None = None) -> None:
        self._describer = describer
        self._root = root
        self._brokers = broker_exes
        self._limit = limit
        self._pw_dump = pw_dump
        self._lock = threading.Lock()
        self._watchers: dict[int, Watcher] = {}
        self._unwatched: list[int] = []  # sessions past the limit
        self._thread: threading.Thread | None = None
        self._wake: Wake | None = None
        self._stop_r = self._stop_w = -1

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else paths.user_runtime_root()

    # -- UsageSource ---------------------------------------------------------------------
    def snapshot(self) -> SourceSnapshot:
        with self._lock:
            started = self._thread is not None
            watchers = list(self._watchers.values())
        if not started:
            watchers = [w for _uid, w in self._sessions()[0]]
        devices: set[Device] = set()
        usages: set[Usage] = set()
        probes: set[Usage] = set()
        degraded = None
        for w in watchers:
            snap = w.snapshot()
            devices |= snap.devices
            usages |= snap.usages
            probes |= snap.probes
            degraded = degraded or snap.degraded
        return SourceSnapshot(self.name, frozenset(devices), frozenset(usages),
                              degraded=degraded, probes=frozenset(probes))

    def start(self, wake: Wake) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"source {self.name} already started")
            self._wake = wake
            self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._thread = threading.Thread(target=self._run, name="camguard-pipewire-users",
                                            daemon=True)
            thread = self._thread
        self._rescan()
        thread.start()

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            with contextlib.suppress(OSError):
                os.write(self._stop_w, b"x")
            thread.join(STOP_TIMEOUT)  # then no rescan starts a watcher any more
            for fd in (self._stop_r, self._stop_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        with self._lock:
            self._thread = None
            self._wake = None
            watchers, self._watchers = list(self._watchers.values()), {}
        for w in watchers:
            w.stop()

    # -- coverage and the broker -----------------------------------------------------------
    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        with self._lock:
            started = self._thread is not None
            watchers = list(self._watchers.values())
            unwatched = list(self._unwatched)
        if not started:
            found, unwatched = self._sessions()
            watchers = [w for _uid, w in found]
        out: list[Coverage] = []
        for w in watchers:
            out += w.coverage()
        if unwatched:
            why = (f"{len(unwatched)} more account sessions {self.SESSIONS_HAVE} but at most "
                   f"{self._limit} are watched: {self.UNNAMED}")
            out += [Coverage(s, self.name, CoverageState.PARTIAL, why) for s in self.SENSORS]
        if not out:
            why = (f"no account's session {self.SESSION_HAS} now (new sessions in "
                   f"{literal(str(self.root), 200)} are watched as they start)")
            out += [Coverage(s, self.name, CoverageState.WATCHING, why) for s in self.SENSORS]
        return out

    def watches(self, pid: int) -> bool:
        """Whether the PipeWire of ``pid``'s account is watched (its camera holds are
        then a broker's, for the apps this source names)."""
        uid = owner_of(pid)
        with self._lock:
            return uid is not None and uid in self._watchers

    # -- sessions --------------------------------------------------------------------------
    def _found(self) -> Iterator[tuple[int, Path]]:
        """``(uid, socket)`` of each session to watch."""
        return accounts_with_pipewire(self.root)

    def _watcher(self, uid: int, sock: Path) -> Watcher | None:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return None  # a runtime folder of no account
        account = Account(uid, entry.pw_gid, entry.pw_name, entry.pw_dir, str(sock.parent))
        extra = {"pw_dump": self._pw_dump} if self._pw_dump else {}
        return PipeWireSource(OwnDescriber(self._describer, uid), remote=str(sock),
                              broker_exes=self._brokers,
                              name=f"pipewire:{literal(entry.pw_name, 64)}",
                              account=account, **extra)

    def _sessions(self) -> tuple[list[tuple[int, Watcher]], list[int]]:
        found: list[tuple[int, Watcher]] = []
        over: list[int] = []
        for uid, sock in self._found():
            if len(found) >= self._limit:
                over.append(uid)
                continue
            w = self._watcher(uid, sock)
            if w is not None:
                found.append((uid, w))
        return found, over

    def _rescan(self) -> None:
        """Start a watcher for each new session, stop those whose session ended."""
        wanted: dict[int, Path] = {}
        over: list[int] = []
        for uid, sock in self._found():
            if len(wanted) >= self._limit:
                over.append(uid)
            else:
                wanted[uid] = sock
        with self._lock:
            gone = [self._watchers.pop(uid) for uid in list(self._watchers)
                    if uid not in wanted]
            new = [uid for uid in wanted if uid not in self._watchers]
            self._unwatched = over
            wake = self._wake
        for w in gone:
            w.stop()
        started = []
        for uid in new:
            made = self._watcher(uid, wanted[uid])
            if made is None:
                continue
            made.start(wake if wake is not None else (lambda: None))
            started.append(made)
            with self._lock:
                self._watchers[uid] = made
        if (gone or started) and wake is not None:
            log.info("%s sessions: %d watched (%d started, %d ended)", self.what,
                     len(wanted), len(started), len(gone))
            wake()

    def _run(self) -> None:
        try:
            from inotify_simple import INotify
            from inotify_simple import flags as f
        except ImportError:  # pragma: no cover - a dependency of camguard
            log.warning("inotify_simple missing: %s sessions rescanned every %.0f s",
                        self.what, RESCAN_INTERVAL)
            while not select.select([self._stop_r], [], [], RESCAN_INTERVAL)[0]:
                self._rescan()
            return
        mask = f.CREATE | f.DELETE | f.MOVED_TO | f.MOVED_FROM
        with INotify() as ino:
            folders: dict[str, int] = {}

            def arm() -> None:
                root = str(self.root)
                wanted = {root}
                with contextlib.suppress(OSError):
                    found = [os.path.join(root, n) for n in os.listdir(root) if n.isdigit()]
                    wanted |= set(found)
                    wanted |= {os.path.join(folder, sub) for folder in found
                               for sub in self.subfolders
                               if os.path.isdir(os.path.join(folder, sub))}
                for path in list(folders):
                    if path not in wanted:
                        with contextlib.suppress(OSError):
                            ino.rm_watch(folders[path])
                        del folders[path]
                for path in wanted - set(folders):
                    with contextlib.suppress(OSError):
                        folders[path] = ino.add_watch(path, mask | f.ONLYDIR)

            arm()
            self._rescan()
            while True:
                ready = select.select([ino.fileno(), self._stop_r], [], [], RESCAN_INTERVAL)[0]
                if self._stop_r in ready:
                    return
                if ino.fileno() in ready:
                    ino.read(timeout=0)
                try:
                    arm()
                    self._rescan()
                except Exception:  # the follower must survive anything
                    log.exception("following %s sessions failed", self.what)
