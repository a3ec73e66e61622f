"""core.freeze.Freezer on every OS through psutil: ``suspend()``/``resume()`` are SIGSTOP and
SIGCONT on Linux and macOS, NtSuspendProcess/NtResumeProcess on Windows. Before each signal
the process's create time is compared with the one the alert named, so a pid reused by an
unrelated process is never touched. Run on Linux against real processes
(tests/unit/test_freeze.py); the macOS and Windows paths are psutil's and never ran here."""

from __future__ import annotations

import signal
import sys

import psutil

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal

CTIME_TOLERANCE = 0.005


class PsutilFreezer:
    """Any thread; each call is one or two signals (never blocks). Never raises."""

    def freeze(self, pid: int, create_time: float) -> ActionResult:
        got = _same(pid, create_time)
        if isinstance(got, ActionResult):
            return got
        proc, label = got
        try:
            proc.suspend()
        except psutil.NoSuchProcess:
            return ActionResult(Outcome.NOT_FOUND, f"{label} has exited")
        except psutil.AccessDenied:
            return ActionResult(Outcome.REFUSED, f"not allowed to freeze {label}: it belongs "
                                                 "to another account")
        return ActionResult(Outcome.DONE, f"froze {label} while asking")

    def thaw(self, pid: int, create_time: float, *, end: bool = False) -> ActionResult:
        got = _same(pid, create_time)
        if isinstance(got, ActionResult):
            return got
        proc, label = got
        try:
            if end:
                # POSIX: SIGTERM stays pending while stopped and is delivered on SIGCONT,
                # before the app runs anything else. Windows: TerminateProcess ends a
                # suspended process at once (resume then finds it gone).
                if sys.platform == "win32":
                    proc.terminate()
                else:
                    proc.send_signal(signal.SIGTERM)
            proc.resume()
        except psutil.NoSuchProcess:
            if end:
                return ActionResult(Outcome.DONE, f"ended {label}")
            return ActionResult(Outcome.NOT_FOUND, f"{label} has exited")
        except psutil.AccessDenied:
            return ActionResult(Outcome.FAILED, f"not allowed to continue {label}")
        if end:
            return ActionResult(Outcome.DONE, f"asked {label} to end (SIGTERM, then continued)")
        return ActionResult(Outcome.DONE, f"{label} continues")


def _same(pid: int, create_time: float) -> tuple[psutil.Process, str] | ActionResult:
    """The process, if it is still the one that started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        label = f"{literal(proc.name(), 64) or '?'} (pid {pid})"
        if abs(proc.create_time() - create_time) > CTIME_TOLERANCE:
            return ActionResult(Outcome.REFUSED, f"pid {pid} is now a different process "
                                                 f"({label}); nothing signalled")
    except psutil.NoSuchProcess:
        return ActionResult(Outcome.NOT_FOUND, f"no process with pid {pid}")
    except (psutil.Error, OSError) as exc:
        return ActionResult(Outcome.FAILED, f"cannot inspect pid {pid}: {exc}")
    return proc, label
