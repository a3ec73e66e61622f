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
- a watchdog process, started with the first freeze, continues every recorded process when
  camguard goes away (its pipe from camguard closes on exit, crash or SIGKILL) and any
  process frozen longer than the limit even while camguard still runs (camguard hung);
- :func:`thaw_recorded` at the next start continues whatever a journal still lists (both
  camguard and its watchdog were killed).

Fail-open, deliberately: a freeze is a pause while a question is open. At the limit, or if
camguard stops answering, the process is continued, never ended: a stuck guard must not
hold a user's video call hostage. Ending it is a decision (the user's, a rule's or the
alert's countdown default), carried out by the killer like any other.
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

log = logging.getLogger(__name__)

# Longest a process stays frozen if no answer comes (seconds). The alert's countdown is
# shorter; this bounds a camguard that hangs.
LIMIT = 60.0
# How often the watchdog looks for a freeze past its limit.
WATCH_EVERY = 0.5


def start_ticks(pid: int, proc_root: str = "/proc") -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat):
    with the pid, the identity a reused pid cannot take. None when it is gone."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields start after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def state_of(pid: int, proc_root: str = "/proc") -> str | None:
    """The one-letter state of /proc/PID/stat (``T``: stopped by a signal), or None."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()[0].decode("ascii", "replace")


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
    tmp = journal.with_name(journal.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"frozen": [{"pid": e.pid, "ticks": e.ticks, "until": e.until}
                              for e in entries]}, fh)
    # No fsync: the journal must outlive camguard, not the machine (a reboot ends every
    # frozen process anyway), and an fsync cost 100+ ms on a busy disk, on the alert's path.
    os.replace(tmp, journal)


def _signal(pid: int, ticks: int, sig: int) -> bool:
    """``sig`` to ``pid`` only if it is still the process started at ``ticks`` (pinned by
    a pidfd between the check and the signal)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if start_ticks(pid) != ticks:
            return False
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


class Freezer:
    """Stops and continues processes by pid, with a journal and a watchdog.

    Threads: any thread (one lock). ``limit``: seconds after which a frozen process is
    continued whatever happens. Refuses init, camguard itself and its ancestors.
    """

    def __init__(self, journal: Path, *, limit: float = LIMIT) -> None:
        self._journal = journal
        self._limit = limit
        self._lock = threading.Lock()
        self._frozen: dict[int, Frozen] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._timers: dict[int, threading.Timer] = {}
        self._protected = _own_ancestors()
        with self._lock:
            self._ensure_watchdog()  # now, not at the first freeze: it takes ~50 ms to start

    @property
    def frozen(self) -> set[int]:
        with self._lock:
            return set(self._frozen)

    def freeze(self, pid: int) -> str | None:
        """Stop ``pid`` now. None when done, else why not (gone, protected, not ours)."""
        if pid in self._protected or pid <= 1:
            return "camguard never freezes init, itself or its parents"
        ticks = start_ticks(pid)
        if ticks is None:
            return "the process is gone"
        with self._lock:
            if pid in self._frozen:
                return None
            self._ensure_watchdog()
            entry = Frozen(pid, ticks, time.time() + self._limit)
            # Recorded before the signal: whatever happens next, someone continues it.
            _write(self._journal, [*self._frozen.values(), entry])
            if not _signal(pid, ticks, signal.SIGSTOP):
                _write(self._journal, list(self._frozen.values()))
                return "the process is gone or camguard may not signal it"
            self._frozen[pid] = entry
            timer = threading.Timer(self._limit, self.thaw, (pid,))
            timer.daemon = True
            timer.start()
            self._timers[pid] = timer
        return None

    def thaw(self, pid: int) -> bool:
        """Continue ``pid`` if camguard froze it; True if it was frozen by us."""
        with self._lock:
            entry = self._frozen.pop(pid, None)
            timer = self._timers.pop(pid, None)
            if entry is None:
                return False
            if timer is not None:
                timer.cancel()
            _signal(entry.pid, entry.ticks, signal.SIGCONT)
            try:
                if self._frozen:
                    _write(self._journal, list(self._frozen.values()))
                else:
                    self._journal.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot update the freeze journal %s: %s", self._journal, exc)
            return True

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
            [sys.executable, "-m", "camguard.platform.linux.freeze", str(self._journal)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
            close_fds=True, env=_watchdog_env())
        self._protected.add(self._watchdog.pid)


def _watchdog_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _own_ancestors() -> set[int]:
    pids = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read()
            pid = int(data[data.rfind(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def watchdog(journal: Path) -> int:
    """Until stdin closes (camguard went away): continue any freeze past its limit; then
    continue everything the journal lists."""
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], WATCH_EVERY)
        if ready and not os.read(sys.stdin.buffer.fileno(), 4096):
            thawed = thaw_recorded(journal)
            if thawed:
                log.warning("camguard went away: continued %s", thawed)
            return 0
        thaw_recorded(journal, expired_only=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(watchdog(Path(sys.argv[1])))
