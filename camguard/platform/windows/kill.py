"""Ending a process on Windows with psutil (TerminateProcess): by ``(pid, create_time)``,
never a reused pid, never Windows' own critical processes nor camguard and its ancestors.

:func:`refusal` is the pure decision; :class:`WindowsKiller` is the thin psutil adapter.
psutil (>= 5.9, checked in 7.2) checks the create time again itself right before it
terminates, so a pid reused after our check is never hit. psutil is the same API on Linux,
so the adapter runs in the Linux tests against real child processes (there ``terminate``
is SIGTERM; on Windows it is TerminateProcess).
"""

from __future__ import annotations

import ntpath
from collections.abc import Collection

import psutil

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal

KILL_WAIT = 5.0
CTIME_TOLERANCE = 0.01
# Ending one of these crashes Windows, logs the user off or breaks every app's sound or
# display. Matched by name AND location (System32), never by name alone.
CRITICAL = frozenset({"csrss.exe", "smss.exe", "wininit.exe", "winlogon.exe", "services.exe",
                      "lsass.exe", "lsaiso.exe", "svchost.exe", "dwm.exe", "fontdrvhost.exe",
                      "audiodg.exe", "system", "registry", "memory compression"})
AUDIO_ENGINE = "audiodg.exe"


def refusal(pid: int, name: str, exe: str, own: Collection[int],
            system_root: str = "C:\\Windows") -> str | None:
    """Why camguard must not end this process; None when it may."""
    if pid <= 4:
        return "a Windows kernel process"
    if pid in own:
        return "camguard itself or a program that started it"
    base = ntpath.basename(exe).casefold() if exe else name.casefold()
    in_system = not exe or ntpath.normcase(ntpath.dirname(exe)) in {
        ntpath.normcase(ntpath.join(system_root, "System32")),
        ntpath.normcase(ntpath.join(system_root, "SysWOW64")), ntpath.normcase(system_root)}
    if base in CRITICAL and in_system:
        if base == AUDIO_ENGINE:
            return "Windows' audio engine: mute the microphone instead"
        if base == "svchost.exe":
            return ("a Windows service host (the camera's Frame Server runs in one): end the "
                    "app it serves instead")
        return f"a Windows system process ({literal(base, 64)}): ending it would crash Windows"
    return None


def _own_pids() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents())}


class WindowsKiller:
    """platform.base.ProcessKiller. Any thread; blocks up to ``wait`` s; never raises."""

    def __init__(self, sound_server_exes: Collection[str] = (), *, wait: float = KILL_WAIT,
                 system_root: str = "C:\\Windows") -> None:
        self.wait = wait
        self.system_root = system_root

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        try:
            proc = psutil.Process(pid)
            refused = self._check(proc, create_time)
            if refused is not None:
                return refused
            name = proc.name()
            if force:
                proc.kill()
            else:
                proc.terminate()
            proc.wait(self.wait)
        except psutil.NoSuchProcess:
            return ActionResult(Outcome.NOT_FOUND, f"process {pid} is gone")
        except psutil.AccessDenied:
            return ActionResult(Outcome.REFUSED, f"Windows denied ending process {pid} (another "
                                "user's or an elevated program: run camguard as administrator)")
        except psutil.TimeoutExpired:
            return ActionResult(Outcome.FAILED, f"process {pid} did not exit within "
                                f"{self.wait:g} s")
        return ActionResult(Outcome.DONE, f"ended {literal(name, 64)} ({pid})")

    def _check(self, proc: psutil.Process, create_time: float | None) -> ActionResult | None:
        """A result when the process must be left alone; None when it may be ended."""
        started = proc.create_time()
        if create_time is not None and abs(started - create_time) > CTIME_TOLERANCE:
            return ActionResult(Outcome.NOT_FOUND, f"process {proc.pid} is gone (its pid now "
                                "belongs to another process)")
        try:
            name, exe = proc.name(), proc.exe()
        except psutil.AccessDenied:
            name, exe = proc.name(), ""
        why = refusal(proc.pid, name, exe, _own_pids(), self.system_root)
        if why is not None:
            return ActionResult(Outcome.REFUSED, f"not ending {literal(name, 64)} "
                                f"({proc.pid}): {why}")
        return None
