"""The root service's view of every logged-in account's own sound server (issue 11).

The service has no sound server of its own: each account's PulseAudio (or pipewire-pulse)
listens at ``/run/user/UID/pulse/native``, and the apps recording there are its clients.
The service's device-node source skips the server's own ``/dev/snd`` holds (the server is
not the app), so without this the apps are invisible to it.

For each such account the service runs one long-lived child *as that account*
(``camguard service-pulse``, through two setprivs: the account's uid, gid and groups, and
a parent-death signal set after the uid changed, so the child dies with the thread that
started it). The child runs the same :class:`~camguard.platform.linux.pulse.PulseSource`
a user's camguard runs and writes one JSON line per change: the microphones, and each
recording stream's pid and note. Why a child as the account: the server is the account's
program and admits its own user; what it says is parsed by root only as a bounded line.

Trust: the account's server (and the child, which the account may ptrace) says which pid
records. A pid that is not one of that account's processes, or that is the sound server
itself, is not believed: that usage is "a process camguard cannot see", so an account can
never make the service blame, or the kill switch end, someone else's process.

Sessions come and go as for PipeWire (user_pipewire.py: inotify on the runtime root, at
most :data:`MAX_SESSIONS`); a child that dies is started again with back-off.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import select
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import (
    Degraded,
    Device,
    DeviceKind,
    ProcessRef,
    SourceSnapshot,
    Usage,
)
from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.core.text import literal
from camguard.platform.linux.pulse_props import PID_MAX
from camguard.platform.linux.threaded_source import ThreadedSource
from camguard.platform.linux.user_mic import (
    CHILD_OUTPUT_LIMIT,
    accounts_with_sound,
    bounded_output,
    child_command,
)
from camguard.platform.linux.user_pipewire import UserPipeWireSource, Watcher, owner_of
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

COMMAND = "service-pulse"  # the hidden camguard subcommand the child runs (cli/__init__.py)
MAX_SESSIONS = 32  # each costs one Python child (28 MB resident, measured) and a thread
# What root takes from one line of the child: longer lines are dropped whole.
MAX_LINE = 256 * 1024
MAX_DEVICES = 256
MAX_USAGES = 1024
TEXT_LIMIT = 1000
FIRST_LOOK_TIMEOUT = 5.0  # the child's Python start, then its first look
ONE_SHOT_TIMEOUT = 10.0
STOP_TIMEOUT = 1.0
READ_SLICE = 0.25
BACKOFF_START = 0.5
BACKOFF_CAP = 10.0
STDERR_KEEP = 400
NOT_UNDERSTOOD = "the account's answer was not understood"


# -- the service's side: one line of the child, parsed as hostile input ----------------------
def _bounded_text(value: object) -> str | None:
    return value[:TEXT_LIMIT] if isinstance(value, str) else None


def _pid(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PID_MAX:
        return None
    return value


def parse_line(line: bytes, origin: str, uid: int, account: str, *,
               owner: Callable[[int], int | None],
               describe: Callable[[int], ProcessRef | None],
               server_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES) -> SourceSnapshot:
    """One line of the child for ``uid`` (named ``account``) as a snapshot of ``origin``.

    Never raises. Only well-typed, bounded fields are taken; a pid is believed only when
    ``owner(pid)`` is ``uid`` and it is not the sound server (module note, Trust)."""
    doc: object = None
    if len(line) <= MAX_LINE:
        with contextlib.suppress(ValueError, RecursionError):
            doc = json.loads(line.decode("utf-8", "replace"))
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        return SourceSnapshot(origin, degraded=Degraded(origin, NOT_UNDERSTOOD))
    who = literal(account, 64)
    if doc["ok"] is False:
        why = _bounded_text(doc.get("reason")) or "no reason given"
        return SourceSnapshot(origin, degraded=Degraded(
            origin, f"sound server of {who}: {literal(why, 300)}"))
    raw_devices, raw_usages = doc.get("devices"), doc.get("usages")
    if not isinstance(raw_devices, list) or not isinstance(raw_usages, list):
        return SourceSnapshot(origin, degraded=Degraded(origin, NOT_UNDERSTOOD))
    devices: dict[str, Device] = {}
    for d in raw_devices[:MAX_DEVICES]:
        if not isinstance(d, dict):
            continue
        dev_id, name = _bounded_text(d.get("id")), _bounded_text(d.get("name"))
        if dev_id and dev_id.startswith("pulse:") and name is not None:
            devices[dev_id] = Device(DeviceKind.MICROPHONE, dev_id, name, None, origin)
    said = f"recording at the sound server of {who}"
    usages: set[Usage] = set()
    for u in raw_usages[:MAX_USAGES]:
        if not isinstance(u, dict):
            continue
        device = devices.get(_bounded_text(u.get("device")) or "")
        note = _bounded_text(u.get("note"))
        if device is None or note is None:
            continue
        pid = _pid(u.get("pid"))
        ref, why = _believed(pid, uid, who, owner=owner, describe=describe,
                             server_exes=server_exes)
        notes = [n for n in (said, why, note) if n]
        if u.get("pid") is not None and pid is None:
            notes.insert(1, "it named no valid pid")
        usages.add(Usage(device, ref, note="; ".join(notes), via="pulse"))
    return SourceSnapshot(origin, frozenset(devices.values()), frozenset(usages))


def _believed(pid: int | None, uid: int, who: str, *, owner: Callable[[int], int | None],
              describe: Callable[[int], ProcessRef | None], server_exes: tuple[str, ...]
              ) -> tuple[ProcessRef | None, str]:
    if pid is None:
        return None, ""
    if owner(pid) != uid:
        return None, (f"it names pid {pid}, which is not a process of {who}: not believed")
    ref = describe(pid)
    if ref is None or owner(pid) != uid:
        return None, f"it names pid {pid}, which has exited"
    if ref.exe.removesuffix(" (deleted)") in server_exes:
        return None, f"it names pid {pid}, the sound server itself: not believed"
    return ref, ""


# -- one account ------------------------------------------------------------------------------
class AccountPulse(ThreadedSource):
    """One account's sound server, through its ``service-pulse`` child (module note).

    Threads: :meth:`start` starts ``camguard-pulse:<account>``, which owns the child
    (started bound to that thread with a parent-death signal), reads its lines (at most
    :data:`MAX_LINE` each), parses them and calls ``wake()`` when the view changed; a child
    that ends is started again with back-off (0.5 s doubling to 10 s). Never started,
    :meth:`snapshot` runs the child once (``service-pulse once``) on the caller's thread.
    """

    first_look_timeout = FIRST_LOOK_TIMEOUT
    first_look_missing = "the account's sound-server child gave no first answer"

    def __init__(self, describer: ProcessDescriber, entry: pwd.struct_passwd, sock: Path,
                 server_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES) -> None:
        self.account = entry.pw_name
        self.name = f"pulse:{literal(entry.pw_name, 64)}"
        self._entry = entry
        self._sock = sock
        self._describer = describer
        self._server_exes = server_exes
        self._init_thread(SourceSnapshot(self.name, degraded=Degraded(
            self.name, "sound server of the account: no answer yet")))
        self._proc: subprocess.Popen[bytes] | None = None

    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        with self._lock:
            snap = self._cached if self._thread is not None else None
        if snap is None:
            snap = self.snapshot()
        if snap.degraded is not None:
            return [Coverage("microphone", self.name, CoverageState.BLIND,
                             snap.degraded.reason)]
        return [Coverage("microphone", self.name, CoverageState.WATCHING,
                         f"apps recording at the sound server of {literal(self.account, 64)} "
                         "are named")]

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._end_child()
        thread.join(STOP_TIMEOUT * 2)
        if thread.is_alive():
            log.warning("%s: watcher did not stop in time", self.name)
        with self._lock:
            self._thread = None
            self._wake = None

    def parse(self, line: bytes) -> SourceSnapshot:
        return parse_line(line, self.name, self._entry.pw_uid, self.account, owner=owner_of,
                          describe=self._describer.describe, server_exes=self._server_exes)

    # -- the child --------------------------------------------------------------------------
    def _argv(self, bound: bool) -> tuple[list[str], dict[str, str]]:
        setpriv = shutil.which("setpriv")
        if setpriv is None:  # never the child as root
            raise OSError("setpriv (util-linux) is needed to run the child as the account")
        argv, env = child_command(self._entry, self._sock.parent.parent, COMMAND,
                                  {"PULSE_SERVER": f"unix:{self._sock}"})
        # Two setprivs: changing the uid clears the parent-death signal (prctl(2)), so the
        # second, already the account, sets it (as pipewire.py does for pw-dump).
        bind = [setpriv, "--pdeathsig", "KILL", "--"] if bound else []
        return [setpriv, f"--reuid={self._entry.pw_uid}", f"--regid={self._entry.pw_gid}",
                "--init-groups", "--", *bind, *argv], env

    def _one_shot(self) -> SourceSnapshot:
        try:
            argv, env = self._argv(False)
            proc = subprocess.Popen([*argv, "once"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd="/")
            out, err = bounded_output(proc, b"", CHILD_OUTPUT_LIMIT, ONE_SHOT_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            return self._degraded(f"cannot run the child as the account: {exc}")
        lines = out.strip().splitlines()
        if not lines:
            return self._degraded(_tail(err) or f"the child exited ({proc.returncode})")
        return self.parse(lines[-1])

    def _run(self) -> None:
        delay = BACKOFF_START
        while not self._stopping.is_set():
            try:
                delivered, why = self._watch()
            except Exception as exc:  # the watcher must survive anything and keep retrying
                log.exception("%s: watcher failed", self.name)
                delivered, why = False, f"internal error: {exc}"
            if self._stopping.is_set():
                break
            if delivered:
                delay = BACKOFF_START
            log.warning("%s: %s (restarting in %.1f s)", self.name, why, delay)
            self._publish(self._degraded(why))
            self._stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_CAP)
        self._first_look.set()

    def _watch(self) -> tuple[bool, str]:
        """Run the child until it ends or stop() is called: (it delivered, why it ended)."""
        argv, env = self._argv(True)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd="/")
        with self._lock:
            self._proc = proc
        if self._stopping.is_set():
            self._end_child()
        assert proc.stdout is not None and proc.stderr is not None  # noqa: S101
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        buf, errtext, delivered, skipping = b"", b"", False, False
        open_fds = [out, err]
        try:
            while out in open_fds and not self._stopping.is_set():
                for fd in select.select(open_fds, [], [], READ_SLICE)[0]:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        open_fds.remove(fd)
                    elif fd == err:
                        errtext = (errtext + chunk)[-STDERR_KEEP:]
                    else:
                        buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if skipping:  # the end of a line too long to take
                        skipping = False
                    elif line.strip():
                        delivered = True
                        self._publish(self.parse(line))
                if len(buf) > MAX_LINE:
                    buf, skipping = b"", True
                    self._publish(self._degraded(f"said a line longer than {MAX_LINE} bytes"))
        finally:
            self._end_child()
            with self._lock:
                self._proc = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        return delivered, (_tail(errtext) or f"the child exited ({proc.returncode})")

    def _end_child(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT / 2)
        except subprocess.TimeoutExpired:
            proc.kill()

    def _degraded(self, reason: str) -> SourceSnapshot:
        return SourceSnapshot(self.name, degraded=Degraded(
            self.name, f"sound server of {literal(self.account, 64)} not watched: "
                       f"{literal(reason, 300)}"))


def _tail(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][-STDERR_KEEP:] if lines else ""


# -- every account --------------------------------------------------------------------------
class UserPulseSource(UserPipeWireSource):
    """Every account's sound server, as one source (module note): the union of the
    per-account children's views; coverage has one microphone entry per account (source
    ``pulse:<account>``), or says that no account's session has a sound server."""

    name = "pulse-users"
    SENSORS = ("microphone",)
    SESSIONS_HAVE = "have a sound server"
    SESSION_HAS = "has a sound server"
    UNNAMED = "the apps recording there are not named"
    what = "sound-server"
    subfolders = ("pulse",)

    def __init__(self, describer: ProcessDescriber, *, root: Path | None = None,
                 server_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES,
                 limit: int = MAX_SESSIONS) -> None:
        super().__init__(describer, root=root, broker_exes=server_exes, limit=limit)

    def _found(self) -> Iterator[tuple[int, Path]]:
        return accounts_with_sound(self.root)

    def _watcher(self, uid: int, sock: Path) -> Watcher | None:
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return None  # a runtime folder of no account
        return AccountPulse(self._describer, entry, sock, self._brokers)


# -- the child (run as the account) -----------------------------------------------------------
def encode(snap: SourceSnapshot) -> str:
    """A PulseSource snapshot as the child's line."""
    if snap.degraded is not None:
        return json.dumps({"ok": False, "reason": snap.degraded.reason})
    devices = sorted(({"id": d.id, "name": d.name} for d in snap.devices),
                     key=lambda d: d["id"])
    usages = sorted(({"device": u.device.id, "note": u.note,
                      "pid": u.process.pid if u.process is not None else None}
                     for u in snap.usages), key=lambda u: (u["device"], str(u["pid"])))
    return json.dumps({"ok": True, "devices": devices, "usages": usages}, sort_keys=True)


def child_main(once: bool) -> int:
    """Follow the account's sound server; one line on stdout per change (``once``: one
    line, then exit). Ends when its stdout is closed or it is killed (the parent-death
    signal)."""
    from camguard.platform.linux.pulse import PulseSource

    src = PulseSource(ProcessDescriber(), server=os.environ.get("PULSE_SERVER"))
    if once:
        print(encode(src.snapshot()), flush=True)
        return 0
    changed = threading.Event()
    src.start(changed.set)
    last: Any = None
    try:
        while True:
            changed.clear()
            line = encode(src.snapshot())
            if line != last:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                last = line
            changed.wait(30.0)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
    finally:
        src.stop()
