"""Freeze an app while the user decides: SIGSTOP the moment camguard names the opener of a
camera, SIGCONT (or its end) on the answer, and never anything left frozen (issue 16).

Why not hold the ``open()`` itself: fanotify permission events cannot reach a device node.
A group that reports file descriptors gets no event at all for a character device
(fs/notify/fanotify/fanotify.c: path events "are only relevant for files and dirs"), and a
group that reports file handles, which does get them, may not use the permission classes
(fanotify_init(2): FAN_REPORT_FID with FAN_CLASS_CONTENT is EINVAL). Measured on this
project's machine (Linux 6.18): FAN_OPEN_PERM on a regular file holds the opener until the
answer (FAN_DENY gives it EPERM); on /dev/null and a stand-in node it never fires.
``bench/freeze.py`` repeats that check. So camguard stops the process instead, as soon as
it is named: as root fanotify names it within a few milliseconds of the open, and without
privileges inotify and a /proc search do (for the user's own processes, the ones it may
signal).

Never left frozen, whatever happens to camguard:

- every stop is written to a journal (pid and kernel start time, so a reused pid is never
  touched) *before* the signal is sent, and removed after the SIGCONT;
- a watchdog process (started with the freezer, or at its first freeze) continues every
  recorded process when camguard goes away (its pipe from camguard closes on exit, crash
  or SIGKILL) and any process frozen longer than the limit even while camguard still runs
  (camguard hung);
- :func:`thaw_recorded` at the next start (the freezer runs it when it is made) continues
  whatever a journal still lists (both camguard and its watchdog were killed).

Fail-open, deliberately: a freeze is a pause while a question is open. At the limit, or if
camguard stops answering, the process is continued, never ended: a stuck guard must not
hold a user's video call hostage. Ending it is a decision (the user's, a rule's or the
alert's countdown default), carried out by the killer like any other.

The limit is core.freeze.MAX_FREEZE. The watchdog is camguard's own
executable running the hidden ``freeze-watchdog`` command (camguard.cli), so it starts the
same way from the PyInstaller bundle and from a Python install.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.freeze import MAX_FREEZE
from camguard.core.text import literal

log = logging.getLogger(__name__)

# How often the watchdog looks for a freeze past its limit.
WATCH_EVERY = 0.5
# The hidden command (camguard.cli) that runs :func:`watchdog`.
WATCHDOG_COMMAND = "freeze-watchdog"
# create_time is ticks/CLK_TCK + btime (psutil's reading); half a tick tells two apart.
CTIME_TOLERANCE = 0.005


def _stat_fields(pid: int, proc_root: str) -> list[bytes] | None:
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields start after the last ')'.
    return data[data.rfind(b")") + 2:].split()


def start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat):
    with the pid, the identity a reused pid cannot take. None when it is gone."""
    fields = _stat_fields(pid, proc_root)
    try:
        return int(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def state_of(pid: int, proc_root: str = "/proc") -> str | None:
    """The one-letter state of /proc/PID/stat (``T``: stopped by a signal), or None."""
    fields = _stat_fields(pid, proc_root)
    return fields[0].decode("ascii", "replace") if fields else None


def boot_time(proc_root: str = "/proc") -> float:
    with open(f"{proc_root}/stat", "rb") as fh:
        for line in fh:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


@dataclass(frozen=True, slots=True)
class Frozen:
    pid: int
    ticks: int  # kernel start time: the identity
    until: float  # wall-clock time (the watchdog is another process) it is continued by


def _read(journal: Path) -> list[Frozen]:
    try:
        doc = json.loads(journal.read_text(encoding="utf-8"))
        return [Frozen(int(e["pid"]), int(e["ticks"]), float(e["until"]))
                for e in doc.get("frozen", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []


def _write(journal: Path, entries: list[Frozen]) -> None:
    if not entries:
        journal.unlink(missing_ok=True)
        return
    tmp = journal.with_name(journal.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"frozen": [{"pid": e.pid, "ticks": e.ticks, "until": e.until}
                              for e in entries]}, fh)
    # No fsync: the journal must outlive camguard, not the machine (a reboot ends every
    # frozen process anyway), and an fsync cost 100+ ms on a busy disk, on the alert's path.
    os.replace(tmp, journal)


def _signal(pid: int, ticks: int, *sigs: int) -> bool:
    """``sigs`` to ``pid`` only if it is still the process started at ``ticks`` (pinned by
    a pidfd between the check and the signals)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if start_ticks(pid) != ticks:
            return False
        for sig in sigs:
            signal.pidfd_send_signal(pidfd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def thaw_recorded(journal: Path, *, expired_only: bool = False) -> list[int]:
    """Continue every process the journal lists (each only if it is still the same one)
    and remove the journal; or, with ``expired_only``, only those past their limit and the
    journal left as it is (the watchdog while camguard runs: camguard alone writes it then).
    Returns their pids."""
    entries = _read(journal)
    now = time.time()
    done = [e for e in entries if not expired_only or now >= e.until]
    for e in done:
        _signal(e.pid, e.ticks, signal.SIGCONT)
    if not expired_only:
        try:
            journal.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove the freeze journal %s: %s", journal, exc)
    return [e.pid for e in done]


def watchdog_argv(journal: Path) -> list[str]:
    """How to start the watchdog: camguard's own executable with the hidden command (the
    PyInstaller bundle's executable is the camguard command; else this Python)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, WATCHDOG_COMMAND, str(journal)]
    return [sys.executable, "-m", "camguard", WATCHDOG_COMMAND, str(journal)]


def _watchdog_env() -> dict[str, str]:
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):  # the camguard this process runs, not another
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class JournaledFreezer:
    """core.freeze.Freezer on Linux: SIGSTOP and SIGCONT through a pidfd, each stop
    journaled before it is sent, and a watchdog process. Any thread (one lock). Refuses
    init, camguard itself, its ancestors and its watchdog.

    Made once at start: it first continues whatever the journal of an earlier run still
    lists. ``eager``: start the watchdog now (it takes ~50 ms to start, kept off the first
    freeze's path when freezing is switched on), else at the first freeze."""

    def __init__(self, journal: Path, *, limit: float = MAX_FREEZE, eager: bool = False,
                 argv: list[str] | None = None, proc_root: str = "/proc") -> None:
        self._journal = journal
        self._limit = limit
        self._proc = proc_root
        self._lock = threading.Lock()
        self._frozen: dict[int, Frozen] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._argv = argv if argv is not None else watchdog_argv(journal)
        self._protected = _own_ancestors()
        try:
            self._btime: float | None = boot_time(proc_root)
        except (OSError, ValueError, IndexError):
            self._btime = None
        self.replayed = thaw_recorded(journal)
        if self.replayed:
            log.warning("continued %s, left paused by an earlier camguard", self.replayed)
        if eager:
            with self._lock, contextlib.suppress(OSError):
                self._ensure_watchdog()

    @property
    def limit(self) -> float:
        """Seconds a freeze lasts at most (the watchdog continues it then)."""
        return self._limit

    @property
    def frozen(self) -> set[int]:
        with self._lock:
            return set(self._frozen)

    @property
    def watchdog_pid(self) -> int | None:
        dog = self._watchdog
        return dog.pid if dog is not None and dog.poll() is None else None

    def _identity(self, pid: int, create_time: float) -> int | ActionResult:
        ticks = start_ticks(pid, self._proc)
        if ticks is None:
            return ActionResult(Outcome.NOT_FOUND, f"pid {pid} has exited")
        if self._btime is not None:
            started = ticks / os.sysconf("SC_CLK_TCK") + self._btime
            if abs(started - create_time) > CTIME_TOLERANCE:
                return ActionResult(Outcome.REFUSED, f"pid {pid} is now a different "
                                                     "process; nothing signalled")
        return ticks

    def freeze(self, pid: int, create_time: float) -> ActionResult:
        if pid in self._protected or pid <= 1:
            return ActionResult(Outcome.REFUSED,
                                "camguard never freezes init, itself or its parents")
        got = self._identity(pid, create_time)
        if isinstance(got, ActionResult):
            return got
        with self._lock:
            if pid in self._frozen:
                return ActionResult(Outcome.DONE, f"pid {pid} is paused already")
            try:
                self._ensure_watchdog()
                entry = Frozen(pid, got, time.time() + self._limit)
                # Recorded before the signal: whatever happens next, someone continues it.
                _write(self._journal, [*self._frozen.values(), entry])
            except OSError as exc:  # no journal or no watchdog: no freeze (fail open)
                return ActionResult(Outcome.FAILED, f"not paused: {literal(str(exc), 200)}")
            if not _signal(pid, got, signal.SIGSTOP):
                with contextlib.suppress(OSError):
                    _write(self._journal, list(self._frozen.values()))
                return ActionResult(Outcome.REFUSED, f"pid {pid} is gone or belongs to "
                                                     "another account: not paused")
            self._frozen[pid] = entry
        return ActionResult(Outcome.DONE, f"paused pid {pid} while asking")

    def thaw(self, pid: int, create_time: float = 0.0, *, end: bool = False) -> ActionResult:
        """Continue ``pid`` if camguard froze it (ending it first for ``end``)."""
        with self._lock:
            entry = self._frozen.pop(pid, None)
            if entry is None:
                return ActionResult(Outcome.NOT_FOUND, f"pid {pid} was not paused")
            sigs = (signal.SIGTERM, signal.SIGCONT) if end else (signal.SIGCONT,)
            # POSIX: SIGTERM stays pending while stopped and is delivered on SIGCONT.
            sent = _signal(entry.pid, entry.ticks, *sigs)
            try:
                _write(self._journal, list(self._frozen.values()))
            except OSError as exc:
                log.warning("cannot update the freeze journal %s: %s", self._journal, exc)
        if not sent:
            return ActionResult(Outcome.NOT_FOUND, f"pid {pid} has exited")
        return ActionResult(Outcome.DONE, f"asked pid {pid} to end (SIGTERM, then continued)"
                            if end else f"pid {pid} continues")

    def close(self) -> None:
        """Continue everything and stop the watchdog."""
        for pid in self.frozen:
            self.thaw(pid)
        with self._lock:
            dog, self._watchdog = self._watchdog, None
        if dog is not None:
            if dog.stdin is not None:
                with contextlib.suppress(OSError):
                    dog.stdin.close()  # EOF: it continues what is left (nothing) and exits
            try:
                dog.wait(5)
            except subprocess.TimeoutExpired:
                dog.kill()
                dog.wait()

    def _ensure_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.poll() is None:
            return
        # Its own session: a Ctrl-C or a signal to camguard's process group spares it, and
        # it outlives camguard exactly long enough to continue what camguard froze.
        self._watchdog = subprocess.Popen(
            self._argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env=_watchdog_env())
        self._protected.add(self._watchdog.pid)


def _own_ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        fields = _stat_fields(pid, "/proc")
        try:
            pid = int(fields[1]) if fields is not None else 0
        except (ValueError, IndexError):
            break
    return pids


def watchdog(journal: Path) -> int:
    """Until stdin closes (camguard went away): continue any freeze past its limit; then
    continue everything the journal lists."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], WATCH_EVERY)
        if ready and not os.read(sys.stdin.buffer.fileno(), 4096):
            thawed = thaw_recorded(journal)
            if thawed:
                log.warning("camguard went away: continued %s", thawed)
            return 0
        thaw_recorded(journal, expired_only=True)
