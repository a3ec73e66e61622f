"""End a process that uses a device: SIGTERM, a short wait, then SIGKILL, never a reused pid.

Identity is ``(pid, create_time)``. The process is pinned with a pidfd (``pidfd_open(2)``)
and its start time checked right after, and again right before each signal, so a signal can
only reach the process the user meant. The processes camguard must never end (init,
camguard and its ancestors, another camguard such as the tray, kernel threads, the
session's sound server; each identified by executable, command line, owner or the socket
it serves, never by name) are refused with a reason.
Another user's process goes through the privileged helper (``pkexec``) when it is installed.
A process of a Flatpak sandbox is ended with its whole sandbox (sandbox_tree.py): the app,
its helpers and the ``bwrap`` around them, never anything outside that tree.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

import psutil

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.settings import (
    DEFAULT_CAMERA_GLOBS,
    DEFAULT_MIC_GLOBS,
    DEFAULT_SOUND_SERVER_EXES,
)
from camguard.core.text import literal
from camguard.platform.linux.instances import camguard_instance, holds_device
from camguard.platform.linux.sandbox_tree import sandbox_of
from camguard.platform.linux.soundserver import SoundServers

log = logging.getLogger(__name__)

GRACE = 3.0
KILL_WAIT = 5.0
# create_time is ticks/CLK_TCK + btime on Linux; half a tick tells two processes apart.
CTIME_TOLERANCE = 0.005
MUTE_INSTEAD = "mute instead: killing the sound server would silence the whole desktop"


class HelperCaller(Protocol):
    """Runs one privileged helper action (see camguard.platform.linux.helper_runner)."""

    def call(self, *argv: str) -> tuple[int, dict[str, Any]]: ...


class Killer:
    """Ends processes by ``(pid, create_time)``; returns an :class:`ActionResult`, never raises.

    Threads: any thread; :meth:`kill` blocks up to ``grace`` + 5 s while the process exits.
    ``helper`` is used only for another user's process when camguard is not root.
    """

    def __init__(self, sound_server_exes: Collection[str] = DEFAULT_SOUND_SERVER_EXES, *,
                 helper: HelperCaller | None = None, grace: float = GRACE,
                 protected: Collection[int] = (),
                 device_globs: Sequence[str] = (*DEFAULT_CAMERA_GLOBS, *DEFAULT_MIC_GLOBS)
                 ) -> None:
        # Never by name: a process that calls itself "pipewire" must not escape a kill.
        self._sound = SoundServers(sound_server_exes)
        self._helper = helper
        self._grace = grace
        self._protected = frozenset(protected)
        self._device_globs = tuple(device_globs)

    def is_sound_server(self, pid: int) -> bool:
        """The session's sound server (see :mod:`camguard.platform.linux.soundserver`)."""
        return self._sound.is_sound_server(pid)

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        """End ``pid``; with ``create_time``, only if it is still that process.

        ``force``: SIGKILL at once, without giving the process time to close cleanly.
        """
        looked = self._inspect(pid, create_time)
        if isinstance(looked, ActionResult):
            return looked
        proc, actual, label = looked
        refusal = self._refusal(proc, label)
        if refusal is not None:
            return refusal
        if not _may_signal(proc):
            return self._via_helper(pid, actual, label, proc)
        box = sandbox_of(pid)
        result = self._end(pid, actual, label, force)
        if box is None or result.outcome not in (Outcome.DONE, Outcome.NOT_FOUND):
            return result
        return self._end_sandbox(box.app, [m for m in box.members if m[0] != pid], result,
                                 force)

    def _end_sandbox(self, app: str, members: list[tuple[int, float]], first: ActionResult,
                     force: bool) -> ActionResult:
        """End the rest of a Flatpak sandbox once its process that used the device is gone:
        the app's other processes and the bwrap around them (innermost first), each only
        while it is still the process listed, never one camguard must not end."""
        ended, left = 0, []
        for pid, ctime in reversed(members):  # children after their parents in the list
            looked = self._inspect(pid, ctime)
            if isinstance(looked, ActionResult):
                continue  # gone with the app already (bwrap exits when its child does)
            proc, actual, label = looked
            if self._refusal(proc, label) is not None or not _may_signal(proc):
                left.append(label)
                continue
            done = self._end(pid, actual, label, force)
            if done.outcome is Outcome.DONE:
                ended += 1
            elif done.outcome is not Outcome.NOT_FOUND:
                left.append(label)
        shown = literal(app, 200)
        msg = f"{first.message}; the rest of its Flatpak sandbox ({shown}) ended too" \
            + (f" ({ended} more)" if ended else "")
        if left:
            msg += f"; still running in it: {', '.join(left[:5])}"
            return ActionResult(Outcome.FAILED if first.outcome is not Outcome.DONE
                                else Outcome.DONE, msg)
        return ActionResult(Outcome.DONE if first.outcome is Outcome.DONE or ended
                            else first.outcome, msg)

    # -- inside --------------------------------------------------------------------------
    @staticmethod
    def _inspect(pid: int, create_time: float | None
                 ) -> tuple[psutil.Process, float, str] | ActionResult:
        """The process, its start time and a label; or why there is nothing to end."""
        if pid <= 0:
            return ActionResult(Outcome.NOT_FOUND, f"no process with pid {pid}")
        try:
            proc = psutil.Process(pid)
            actual = proc.create_time()
            name = literal(proc.name(), 64) or "?"
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, ProcessLookupError):
            return ActionResult(Outcome.NOT_FOUND, f"no process with pid {pid}")
        except (psutil.AccessDenied, OSError) as exc:
            return ActionResult(Outcome.FAILED, f"cannot inspect pid {pid}: {exc}")
        if create_time is not None and abs(actual - create_time) > CTIME_TOLERANCE:
            return ActionResult(Outcome.REFUSED, f"pid {pid} is now a different process "
                                f"({name}); the one you meant has exited; nothing signalled")
        if zombie:
            return ActionResult(Outcome.NOT_FOUND, f"{name} (pid {pid}) has already exited")
        return proc, actual, f"{name} (pid {pid})"

    def _refusal(self, proc: psutil.Process, label: str) -> ActionResult | None:
        """Why ``proc`` must not be ended, or None."""
        pid = proc.pid
        why = None
        if pid == 1:
            why = "it is init; ending it would stop the whole system"
        elif pid == os.getpid():
            why = "it is camguard itself"
        elif pid in self._protected or pid in _own_ancestors():
            why = "camguard runs inside it, so ending it would end camguard too"
        else:
            why = self._protected_kind(proc)
        return None if why is None else ActionResult(Outcome.REFUSED,
                                                     f"refusing to end {label}: {why}")

    def _protected_kind(self, proc: psutil.Process) -> str | None:
        pid = proc.pid
        try:
            if pid == 2 or proc.ppid() == 2:
                return "it is a kernel thread"
        except psutil.Error:
            pass
        if self._sound.is_sound_server(pid):
            return f"it is the sound server; {MUTE_INSTEAD}"
        what = camguard_instance(pid)
        # A camguard that uses a camera or microphone (a selftest) is ended like any other
        # user: anyone can start "python3 -m camguard", so this must never shield one.
        if what is not None and not holds_device(pid, self._device_globs):
            return f"it is {what}; quit it from its menu (or with Ctrl+C) instead"
        return None

    def _via_helper(self, pid: int, ctime: float, label: str, proc: psutil.Process
                    ) -> ActionResult:
        try:
            owner = literal(proc.username(), 64)
        except (psutil.Error, KeyError):
            owner = "another user"
        if self._helper is None:
            return ActionResult(
                Outcome.REFUSED, f"{label} belongs to {owner}: ending it needs the privileged "
                "helper (/usr/libexec/camguard/camguard-helper), which is not installed; "
                "or run camguard as root")
        code, reply = self._helper.call("kill", str(pid), f"{ctime:.6f}")
        outcome = {0: Outcome.DONE, 3: Outcome.REFUSED, 4: Outcome.NOT_FOUND}.get(
            code, Outcome.FAILED)
        if outcome is Outcome.DONE:
            return ActionResult(Outcome.DONE, f"ended {label} with {reply.get('signal')} "
                                "(through the privileged helper)")
        return ActionResult(outcome, f"could not end {label}: {reply.get('error', 'failed')}")

    def _end(self, pid: int, ctime: float, label: str, force: bool) -> ActionResult:
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            return ActionResult(Outcome.NOT_FOUND, f"{label} has already exited")
        except OSError:
            pidfd = None  # kernels before 5.3: fall back to kill(2) behind the same checks
        try:
            first = signal.SIGKILL if force else signal.SIGTERM
            sent = self._signal(pid, ctime, pidfd, first)
            if sent is not None:
                return sent
            if first == signal.SIGTERM and _wait_gone(pid, ctime, pidfd, self._grace):
                return ActionResult(Outcome.DONE, f"ended {label} (SIGTERM)")
            if first == signal.SIGTERM:
                sent = self._signal(pid, ctime, pidfd, signal.SIGKILL)
                if sent is not None:
                    # It exited between the wait and the second signal: that is success.
                    return ActionResult(Outcome.DONE, f"ended {label} (SIGTERM)")
            if _wait_gone(pid, ctime, pidfd, KILL_WAIT):
                how = "SIGKILL" if force else "SIGKILL after SIGTERM was ignored for " \
                    f"{self._grace:g} s"
                return ActionResult(Outcome.DONE, f"ended {label} ({how})")
            return ActionResult(Outcome.FAILED, f"{label} is still running after SIGKILL "
                                "(stuck in the kernel, e.g. on a hung device)")
        finally:
            if pidfd is not None:
                os.close(pidfd)

    @staticmethod
    def _signal(pid: int, ctime: float, pidfd: int | None, sig: int) -> ActionResult | None:
        """Send ``sig``; None when sent, a result when it was not (gone, changed, denied)."""
        if not _same_process(pid, ctime):
            return ActionResult(Outcome.NOT_FOUND, f"pid {pid} has already exited")
        try:
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return ActionResult(Outcome.NOT_FOUND, f"pid {pid} has already exited")
        except PermissionError:
            return ActionResult(Outcome.REFUSED, f"not allowed to signal pid {pid}")
        log.info("sent %s to pid %d", signal.Signals(sig).name, pid)
        return None


def _same_process(pid: int, ctime: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return (abs(proc.create_time() - ctime) <= CTIME_TOLERANCE
                and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.Error, OSError):
        return False


def _wait_gone(pid: int, ctime: float, pidfd: int | None, seconds: float) -> bool:
    """Wait until the process has exited (a zombie counts: its fds are closed already)."""
    deadline = time.monotonic() + seconds
    poller = None
    if pidfd is not None:
        # A pidfd polls readable when its process exits (pidfd_open(2)): no busy loop.
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
    while True:
        if not _same_process(pid, ctime):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if poller is not None:
            if poller.poll(int(min(left, 0.5) * 1000) + 1):
                return True
        else:
            time.sleep(min(left, 0.02))


def _may_signal(proc: psutil.Process) -> bool:
    """kill(2): the sender's real or effective uid must match the target's real or saved uid
    (root, with CAP_KILL, may signal anyone)."""
    if os.geteuid() == 0:
        return True
    try:
        uids = proc.uids()
    except psutil.Error:
        return False
    mine = {os.getuid(), os.geteuid()}
    return uids.real in mine or uids.saved in mine


def _own_ancestors() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return {os.getppid()}
