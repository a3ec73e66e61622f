"""Hooks: run an administrator's program on events, off the monitor thread, with a timeout.

The program gets ``EVENT DEVICE PID EXE USER`` as arguments (an argv list, never a shell
string) and the whole event as JSON in ``CAMGUARD_EVENT``. It runs on one worker thread fed
by a bounded queue: a slow hook delays only later hooks, never the monitor, and events that
do not fit in the queue are dropped and logged. A hook that outlives its timeout is ended
with its whole process group (SIGTERM, then SIGKILL), so a child it left behind dies too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from camguard.core.models import EventType, HealthEvent, MonitorEvent
from camguard.core.text import json_safe, json_text, literal

log = logging.getLogger(__name__)
# A monitor event's type in the event log's names (docs/events.md).
_HOOK_TYPES = {EventType.STARTED: "device.started", EventType.STOPPED: "device.stopped",
               EventType.PROBE: "device.probe", EventType.PROBE_STORM: "device.probe-storm"}

MAX_OUTPUT = 64 * 1024  # what is kept of a hook's output (the rest is still drained)
MAX_ENV_EVENT = 32 * 1024  # an environment string must stay far below MAX_ARG_STRLEN
TERM_GRACE = 1.0
DEFAULT_EVENTS = frozenset({"device.started", "device.stopped", "device.raw-usb"})
# Never run a hook for its own failure: a failing hook would feed itself forever.
_NEVER = frozenset({"hook.failed"})


@dataclass(frozen=True, slots=True)
class HookConfig:
    program: str
    events: frozenset[str] = DEFAULT_EVENTS  # empty: every event type
    timeout: float = 10.0
    queue_size: int = 32

    def __post_init__(self) -> None:
        if not self.program or not os.path.isabs(self.program) or "\x00" in self.program:
            # A relative name would be looked up in PATH (or the working folder): whoever
            # controls those would choose what camguard runs.
            raise ValueError(f"a hook must be an absolute path: {literal(self.program, 200)}")
        if not 0 < self.timeout <= 3600:
            raise ValueError("a hook timeout must be between 0 and 3600 seconds")
        if self.queue_size < 1:
            raise ValueError("a hook queue needs room for at least one event")


@dataclass(frozen=True, slots=True)
class HookResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: it could not be started
    timed_out: bool = False
    output: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def hook_args(record: Mapping[str, Any]) -> list[str]:
    """``EVENT DEVICE PID EXE USER`` from an event record ('' for what it does not have).

    USER is the user of the process that used the device; for other events, the user
    camguard runs as.
    """
    pid = record.get("pid")
    values = [record.get("type"), record.get("device") or record.get("kind"),
              None if pid is None else str(pid), record.get("exe"),
              record.get("process_user") or record.get("user")]
    # argv strings cannot hold NUL; a hostile device name must not make the call fail.
    return ["" if v is None else str(v).replace("\x00", "\\x00") for v in values]


class HookRunner:
    """Runs the hook for each matching event on its own thread. Thread-safe ``handle``."""

    def __init__(self, config: HookConfig, *, env: Mapping[str, str] | None = None,
                 on_result: Callable[[HookResult], None] | None = None) -> None:
        self.config = config
        self._env = dict(os.environ if env is None else env)
        self._on_result = on_result
        self._q: queue.Queue[Mapping[str, Any] | threading.Event | None] = \
            queue.Queue(config.queue_size)
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.ran = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="camguard-hooks",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Finish what is queued (each within its timeout) and end the worker."""
        if self._thread is None:
            return
        self._q.put(None)
        self._thread.join(timeout)
        self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every event queued so far was handled; False on timeout."""
        done = threading.Event()
        try:
            self._q.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def handle(self, record: Mapping[str, Any]) -> bool:
        """An EventLog listener: queue the hook for ``record``. False if dropped or not
        wanted. Never blocks."""
        kind = record.get("type")
        if not isinstance(kind, str) or kind in _NEVER:
            return False
        if self.config.events and kind not in self.config.events:
            return False
        try:
            self._q.put_nowait(dict(record))
        except queue.Full:
            self.dropped += 1
            log.warning("hook queue full (%d waiting): %s event for pid %s dropped "
                        "(%d dropped so far)", self.config.queue_size, kind,
                        record.get("pid"), self.dropped)
            return False
        return True

    def monitor_sink(self, ev: MonitorEvent) -> None:
        """Use the runner as a Monitor sink directly (without an EventLog)."""
        if isinstance(ev, HealthEvent):
            return
        p = ev.usage.process
        self.handle({
            "type": _HOOK_TYPES.get(ev.type, "device.stopped"),
            "device": json_safe(ev.usage.device.id), "kind": ev.usage.device.kind.value,
            "pid": None if p is None else p.pid, "exe": None if p is None else p.exe,
            "process_user": None if p is None else p.user,
            "name": None if p is None else p.name})

    # -- the worker ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                result = self.run_once(item)
            except Exception:  # the worker must survive whatever one event does
                log.exception("hook failed unexpectedly")
                continue
            self.ran += 1
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:
                    log.exception("hook result callback failed")

    def run_once(self, record: Mapping[str, Any]) -> HookResult:
        """Run the hook for ``record`` now, on this thread; returns when it ended or was
        killed (at most the timeout plus a grace second)."""
        argv = (self.config.program, *hook_args(record))
        env = dict(self._env)
        event = json_text(dict(record), separators=(",", ":"), default=str)
        env["CAMGUARD_EVENT"] = event if len(event) <= MAX_ENV_EVENT else json.dumps(
            {"type": record.get("type"), "truncated": True})
        # A file, not a pipe: a grandchild the hook leaves running would keep a pipe open
        # and a pipe reader waiting; a file also bounds what we hold in memory.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, env=env, close_fds=True,
                                        start_new_session=os.name == "posix")
            except (OSError, ValueError) as exc:
                log.warning("cannot run hook %s: %s", literal(argv[0], 200), exc)
                return HookResult(argv, None, error=str(exc))
            timed_out = False
            try:
                code: int | None = proc.wait(self.config.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                code = _end(proc)
            out.seek(0)
            output = out.read(MAX_OUTPUT).decode("utf-8", "replace")
        result = HookResult(argv, code, timed_out, output)
        shown = literal(output.strip(), 2000)
        if timed_out:
            log.warning("hook %s for %s killed after %.1f s; output: %s",
                        literal(argv[0], 200), argv[1], self.config.timeout, shown or "-")
        elif code != 0:
            log.warning("hook %s for %s exited with %s; output: %s",
                        literal(argv[0], 200), argv[1], code, shown or "-")
        else:
            log.info("hook %s for %s done; output: %s", literal(argv[0], 200), argv[1],
                     shown or "-")
        return result


def _end(proc: subprocess.Popen[bytes]) -> int | None:
    """End a hook and everything it started: SIGTERM to its group, then SIGKILL to whatever
    of the group is left (a child that ignores SIGTERM must not outlive the hook)."""
    if os.name != "posix":
        proc.kill()
        return proc.wait()
    # Its own session: the group id is its pid. Linux does not hand out a pid that is still
    # some group's id, so the second signal cannot reach an unrelated process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    code: int | None = None
    with contextlib.suppress(subprocess.TimeoutExpired):
        code = proc.wait(TERM_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if code is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(5.0)
    return code
