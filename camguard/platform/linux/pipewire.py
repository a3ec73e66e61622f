"""Camera and screen-cast uses through PipeWire, from a long-lived ``pw-dump --monitor``.

Why ``pw-dump -m`` and not the native protocol: PipeWire's protocol is a binary POD stream
over a Unix socket with its own type system and version negotiation; speaking it from Python
needs either libpipewire bindings (none packaged for Debian 12, and a C dependency that must
match the daemon) or a re-implementation of the protocol (~2,000 lines to keep in step with
PipeWire). ``pw-dump`` ships with every PipeWire (pipewire-bin), is the daemon's own client
library, and in monitor mode writes each change of the registry as a JSON array of whole
objects (``"info": null`` for a removal), flushed as it happens: measured 0.3.65, a link
appears on our pipe within a few milliseconds of its creation. The cost is one small process
per session while camguard watches, and JSON parsing of the objects that change.

The graph itself and what counts as a use are in :mod:`camguard.platform.linux.pw_graph`.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import select
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from camguard.core.coverage import Coverage, CoverageState
from camguard.core.models import Degraded, SourceSnapshot
from camguard.core.settings import DEFAULT_SOUND_SERVER_EXES
from camguard.platform.linux import pw_graph
from camguard.platform.linux.threaded_source import ThreadedSource
from camguard.platform.process import ProcessDescriber

log = logging.getLogger(__name__)

PW_DUMP = "pw-dump"
# A one-shot dump of a local daemon takes ~10 ms; one that has not finished in 2 s is hung.
ONE_SHOT_TIMEOUT = 2.0
FIRST_LOOK_TIMEOUT = 2.0
STOP_TIMEOUT = 1.0
READ_SLICE = 0.25  # how often the reader checks for stop() while nothing is written
BACKOFF_START = 0.1
BACKOFF_CAP = 2.0
# Never reached (a desktop without PipeWire): ask again this seldom, so an absent PipeWire
# costs one failed pw-dump (~3 ms of CPU) every 10 s, and a late-starting one is seen in 10 s.
ABSENT_CAP = 10.0
# A single pw-dump round is tens of KB; more than this unparsed means we lost the framing.
MAX_BUFFER = 32 * 1024 * 1024
STDERR_KEEP = 400
UNREACHABLE = "PipeWire not reachable"
X11_SCREEN = ("screen capture cannot be detected on X11 (any X client can read the screen "
              "unseen)")


@dataclass(frozen=True, slots=True)
class Account:
    """The account whose own PipeWire is watched: pw-dump runs as it."""

    uid: int
    gid: int
    name: str
    home: str
    runtime: str  # its XDG_RUNTIME_DIR

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": self.home,
                "USER": self.name, "XDG_RUNTIME_DIR": self.runtime}


class PipeWireSource(ThreadedSource):
    """Video sources in the PipeWire graph and the clients linked to them (module docstring).

    Threads: :meth:`snapshot` returns the watcher's cached view once started (microseconds);
    never started, it runs ``pw-dump`` once on the caller's thread (~10-50 ms, at most
    ``ONE_SHOT_TIMEOUT``). :meth:`start` starts ``camguard-pipewire``, which owns the
    ``pw-dump -m`` process, folds each round into the graph, names the linked clients
    through /proc and calls ``wake()`` when the view changed; if pw-dump ends (the daemon
    went away) it is started again with back-off (0.1 s doubling to 2 s; to 10 s while
    PipeWire has never answered). :meth:`stop`
    ends the process and joins within about a second.
    """

    first_look_timeout = FIRST_LOOK_TIMEOUT
    first_look_missing = "pw-dump gave no first answer"

    def __init__(self, describer: ProcessDescriber, *, remote: str | None = None,
                 broker_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES,
                 name: str = "pipewire", pw_dump: str = PW_DUMP,
                 account: Account | None = None) -> None:
        """``remote``: the daemon's socket (a name under $XDG_RUNTIME_DIR, or a path);
        None is pw-dump's default ($PIPEWIRE_REMOTE, else pipewire-0). ``account``: run
        pw-dump as that account (the root service watching a user's own PipeWire,
        user_pipewire.py), with its uid, gid and groups and a clean environment."""
        self.name = name
        self._describer = describer
        self._remote = remote
        self._brokers = frozenset(broker_exes)
        self._pw_dump = pw_dump
        self._account = account
        self._init_thread(SourceSnapshot(name))
        self._reachable: bool | None = None  # None: not asked yet
        self._why = ""
        self._proc: subprocess.Popen[bytes] | None = None

    # -- UsageSource ---------------------------------------------------------------------
    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._end_process()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("PipeWire watcher did not stop within %.1f s", STOP_TIMEOUT)
        with self._lock:
            self._thread = None
            self._wake = None

    # -- coverage -------------------------------------------------------------------------
    def coverage(self, last: SourceSnapshot | None = None) -> list[Coverage]:
        with self._lock:
            reachable, why = self._reachable, self._why
        if reachable is None:
            self.snapshot()
            with self._lock:
                reachable, why = self._reachable, self._why
        if reachable:
            camera = Coverage("camera", self.name, CoverageState.WATCHING,
                              "apps using a camera through PipeWire are named (kernel pid)")
            screen = Coverage("screen", self.name, CoverageState.WATCHING,
                              "screen casts through PipeWire (ScreenCast portal) are named")
        else:
            camera = Coverage("camera", self.name, CoverageState.BLIND,
                              f"{why}: apps using a camera through PipeWire are not seen "
                              "(PipeWire itself is not counted as a user)")
            screen = Coverage("screen", self.name, CoverageState.BLIND, why)
        if self._account is None and x11_session():
            screen = Coverage("screen", self.name, CoverageState.BLIND, X11_SCREEN)
        return [camera, screen]

    # -- one-shot ------------------------------------------------------------------------
    def _one_shot(self) -> SourceSnapshot:
        exe = shutil.which(self._pw_dump)
        if exe is None:
            self._set_reach(False, f"{UNREACHABLE}: pw-dump is not installed (pipewire-bin)")
            return SourceSnapshot(self.name)
        try:
            done = subprocess.run([*self._as_account(False), exe, "-N", *self._remote_args()],
                                  capture_output=True, timeout=ONE_SHOT_TIMEOUT,
                                  check=False, **self._child_env())
        except (OSError, subprocess.TimeoutExpired) as exc:
            self._set_reach(False, f"{UNREACHABLE}: {exc}")
            return SourceSnapshot(self.name)
        if done.returncode != 0:
            self._set_reach(False, f"{UNREACHABLE}: {_tail(done.stderr) or 'pw-dump failed'}")
            return SourceSnapshot(self.name)
        objects: pw_graph.Objects = {}
        try:
            # One run may print more than one round (changes that came while it dumped).
            rest, rounds = _split_rounds(done.stdout.decode("utf-8", "surrogateescape"))
            if rest.strip() or not rounds:
                raise ValueError("not whole JSON")
            for doc in rounds:
                pw_graph.apply(objects, doc)
        except ValueError as exc:
            self._set_reach(False, f"{UNREACHABLE}: unreadable pw-dump output ({exc})")
            return SourceSnapshot(self.name)
        self._set_reach(True, "")
        return self._build(objects, ())

    # -- watcher thread --------------------------------------------------------------------
    def _run(self) -> None:
        delay = BACKOFF_START
        was_connected = False
        while not self._stopping.is_set():
            try:
                connected, reason = self._watch()
            except Exception as exc:  # the watcher must survive anything and keep retrying
                log.exception("PipeWire watcher failed")
                connected, reason = False, f"internal error: {exc}"
            if self._stopping.is_set():
                break
            self._set_reach(False, reason)
            was_connected = was_connected or connected
            if connected:
                delay = BACKOFF_START
            # Lost after it worked: degraded (a health event). Never reached: the coverage
            # says so, but a desktop without PipeWire is not a degraded camguard.
            degraded = Degraded(self.name, reason) if was_connected else None
            self._publish(SourceSnapshot(self.name, degraded=degraded))
            self._stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_CAP if was_connected else ABSENT_CAP)
        self._first_look.set()

    def _watch(self) -> tuple[bool, str]:
        """Run pw-dump -m until it ends or stop() is called: (it delivered, why it ended)."""
        exe = shutil.which(self._pw_dump)
        if exe is None:
            return False, f"{UNREACHABLE}: pw-dump is not installed (pipewire-bin)"
        proc = subprocess.Popen([*self._as_account(True), exe, "-m", "-N",
                                 *self._remote_args()],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **self._child_env())
        with self._lock:
            self._proc = proc
        if self._stopping.is_set():
            self._end_process()
        if proc.stdout is None or proc.stderr is None:  # pragma: no cover - both piped
            raise RuntimeError("pw-dump has no pipes")
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        objects: pw_graph.Objects = {}
        buf, errtext, delivered = "", "", False
        open_fds = [out, err]
        try:
            while out in open_fds and not self._stopping.is_set():
                ready, _, _ = select.select(open_fds, [], [], READ_SLICE)
                for fd in ready:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        open_fds.remove(fd)
                    elif fd == err:
                        errtext = (errtext + chunk.decode("utf-8", "replace"))[-STDERR_KEEP:]
                    else:
                        buf += decoder.decode(chunk)
                if out not in ready:
                    continue
                buf, rounds = _split_rounds(buf)
                changed = False
                for update in rounds:
                    changed = pw_graph.apply(objects, update) or changed
                if rounds and (changed or not delivered):
                    delivered = True
                    self._set_reach(True, "")
                    self._publish(self._build(objects, (proc.pid,)))
        finally:
            self._end_process()
            with self._lock:
                self._proc = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        if self._stopping.is_set():
            return delivered, "stopped"
        errtext += _tail(proc.stderr.read() if proc.stderr.readable() else b"")
        why = errtext.strip() or f"pw-dump exited ({proc.returncode})"
        return delivered, f"{UNREACHABLE}: {why[-STDERR_KEEP:]}"

    def _end_process(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT / 2)
        except subprocess.TimeoutExpired:
            proc.kill()

    # -- helpers ---------------------------------------------------------------------------
    def _build(self, objects: pw_graph.Objects, own: tuple[int, ...]) -> SourceSnapshot:
        own_pids = (*own, os.getpid())
        uses = pw_graph.uses(objects, self._describer.describe, self._brokers, own_pids)
        idle = pw_graph.uses(objects, self._describer.describe, self._brokers, own_pids,
                             flowing=False)
        devices = pw_graph.devices(objects, self._describer.describe, self._brokers)
        return SourceSnapshot(self.name, frozenset(devices),
                              frozenset(u.usage for u in uses),
                              probes=frozenset(u.usage for u in idle))

    def _set_reach(self, reachable: bool, why: str) -> None:
        with self._lock:
            self._reachable, self._why = reachable, why

    def _remote_args(self) -> list[str]:
        return ["-r", self._remote] if self._remote else []

    def _as_account(self, bound: bool) -> list[str]:
        """The setpriv prefix: bound to this thread (``bound``), and as the account."""
        if self._account is None:
            return _bound_to_this_thread() if bound else []
        setpriv = shutil.which("setpriv")
        if setpriv is None:  # never pw-dump as root against a user's daemon
            raise OSError("setpriv (util-linux) is needed to run pw-dump as the account")
        # Two setprivs: a change of euid clears the parent-death signal (prctl(2)), and
        # one setpriv sets --pdeathsig before it drops the uid (measured, util-linux
        # 2.38): the second, already the account, sets it after.
        bind = [setpriv, "--pdeathsig", "KILL", "--"] if bound else []
        return [setpriv, f"--reuid={self._account.uid}", f"--regid={self._account.gid}",
                "--init-groups", "--", *bind]

    def _child_env(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {"env": self._account.env(), "cwd": "/"}


def _split_rounds(buf: str) -> tuple[str, list[object]]:
    """The whole JSON documents at the front of ``buf`` and what is left (an unfinished
    round). pw-dump ends every round with "]\\n", so a parse is tried only then."""
    rounds: list[object] = []
    decoder = json.JSONDecoder()
    while True:
        start = len(buf) - len(buf.lstrip())
        if start == len(buf):
            return "", rounds
        if not buf.rstrip().endswith("]"):
            break
        try:
            doc, end = decoder.raw_decode(buf, start)
        except ValueError:
            if len(buf) > MAX_BUFFER:
                log.warning("pw-dump output lost its framing; dropping %d bytes", len(buf))
                return "", rounds
            break
        rounds.append(doc)
        buf = buf[end:]
    return buf, rounds


def _bound_to_this_thread() -> list[str]:
    """``setpriv --pdeathsig KILL --``: the kernel ends pw-dump when the thread that
    started it ends (stop(), or camguard killed with SIGKILL), which an idle graph, with
    nothing to write and so no SIGPIPE, would otherwise never do. Not preexec_fn: that is
    unsafe in a threaded program. Without setpriv (util-linux), pw-dump still ends at its
    next write."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _tail(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-STDERR_KEEP:]


def x11_session() -> bool:
    """An X11 desktop session (any X client may read the screen; nothing to watch)."""
    kind = os.environ.get("XDG_SESSION_TYPE", "").lower()
    if kind:
        return kind == "x11"
    return bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")
