"""macOS capabilities that are plain POSIX or files: ending a process (psutil, by pid and
create time), the login LaunchAgent, the service socket's peer identity (LOCAL_PEERCRED and
LOCAL_PEERPID), the system folders under /Library, and where alerts go."""

from __future__ import annotations

import os
import plistlib
import socket
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal
from camguard.store import paths
from camguard.store.files import write_private

GRACE = 3.0
KILL_WAIT = 5.0
CTIME_TOLERANCE = 0.005


class MacKiller:
    """SIGTERM, a grace period, then SIGKILL; never a reused pid (the create time is checked
    right before each signal), never launchd, the kernel or camguard itself. Any thread;
    blocks up to ``grace`` + 5 s. Never raises."""

    def __init__(self, grace: float = GRACE) -> None:
        self._grace = grace

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult:
        looked = self._look(pid)
        if isinstance(looked, ActionResult):
            return looked
        proc, label = looked
        try:
            self._signal(proc, create_time, force)
            if not force:
                _gone, alive = psutil.wait_procs([proc], timeout=self._grace)
                if alive:
                    self._signal(proc, create_time, True)
            psutil.wait_procs([proc], timeout=KILL_WAIT)
        except _Reused:
            return ActionResult(Outcome.REFUSED, f"pid {pid} is now a different process "
                                f"({label}); the one you meant has exited; nothing signalled")
        except psutil.NoSuchProcess:
            pass  # it exited between two looks: what we wanted
        except psutil.AccessDenied:
            return ActionResult(Outcome.FAILED, f"not allowed to end {label}: it belongs to "
                                                "another account (run the camguard service)")
        if proc.is_running():
            return ActionResult(Outcome.FAILED, f"{label} did not exit")
        return ActionResult(Outcome.DONE, f"ended {label}")

    @staticmethod
    def _look(pid: int) -> tuple[psutil.Process, str] | ActionResult:
        """The process and its label, or why there is nothing to end."""
        if pid <= 1:
            return ActionResult(Outcome.REFUSED, f"pid {pid} is the kernel or launchd; "
                                                 "ending it would stop the whole system")
        if pid == os.getpid():
            return ActionResult(Outcome.REFUSED, "it is camguard itself")
        try:
            proc = psutil.Process(pid)
            return proc, f"{literal(proc.name(), 64) or '?'} (pid {pid})"
        except psutil.NoSuchProcess:
            return ActionResult(Outcome.NOT_FOUND, f"no process with pid {pid}")
        except (psutil.Error, OSError) as exc:
            return ActionResult(Outcome.FAILED, f"cannot inspect pid {pid}: {exc}")

    @staticmethod
    def _signal(proc: psutil.Process, create_time: float | None, hard: bool) -> None:
        # psutil.Process.kill/terminate refuse a pid whose create time changed since the
        # Process was built; the explicit check also covers the caller's create_time.
        if create_time is not None and abs(proc.create_time() - create_time) > CTIME_TOLERANCE:
            raise _Reused
        if hard:
            proc.kill()
        else:
            proc.terminate()


class _Reused(Exception):
    pass


# -- start at login ---------------------------------------------------------------------------
USER_LABEL = "org.camguard.tray"
SYSTEM_AGENT = Path("/Library/LaunchAgents/org.camguard.agent.plist")  # the .pkg installs it


def launch_agent(argv: Sequence[str]) -> bytes:
    """The user's LaunchAgent plist (launchd.plist(5)), the same keys as the .pkg's
    packaging/macos/org.camguard.agent.plist: the tray at login in Aqua sessions, restarted
    after a crash (throttled) but not after the user chose Quit."""
    return plistlib.dumps({"Label": USER_LABEL, "ProgramArguments": list(argv),
                           "RunAtLoad": True, "KeepAlive": {"SuccessfulExit": False},
                           "ThrottleInterval": 10, "LimitLoadToSessionType": "Aqua",
                           "ProcessType": "Interactive",
                           "AssociatedBundleIdentifiers": "org.camguard.camguard"})


class LaunchAgentAutostart:
    """``~/Library/LaunchAgents/org.camguard.tray.plist``. The .pkg's agent in
    /Library/LaunchAgents starts the tray for everyone; a user cannot switch that one off
    from a file of their own, so :meth:`set` says so instead of pretending."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 argv: Sequence[str] = ("/Applications/camguard.app/Contents/MacOS/camguard",
                                        "tray"),
                 system_agent: Path = SYSTEM_AGENT) -> None:
        home = (env if env is not None else os.environ).get("HOME") or str(Path.home())
        self.path = Path(home) / "Library" / "LaunchAgents" / f"{USER_LABEL}.plist"
        self._argv = tuple(argv)
        self._system = system_agent

    def is_enabled(self) -> bool:
        return self.path.is_file() or self._system.is_file()

    def set(self, enabled: bool) -> None:
        if enabled:
            write_private(self.path, launch_agent(self._argv))
            return
        self.path.unlink(missing_ok=True)
        if self._system.is_file():
            raise OSError(f"{self._system} starts camguard for every user; an administrator "
                          "removes it (or: launchctl disable gui/$UID/org.camguard.agent)")


# -- the service socket -----------------------------------------------------------------------
SOL_LOCAL = 0  # <sys/un.h>
LOCAL_PEERCRED = 0x001  # struct xucred of the peer
LOCAL_PEERPID = 0x002  # pid_t of the peer
XUCRED_VERSION = 0
# struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
_XUCRED = struct.Struct("=IIh2x16I")
DEFAULT_SOCKET = Path("/var/run/camguard/camguard.sock")


def decode_xucred(raw: bytes) -> tuple[int, int]:
    """(uid, gid) from LOCAL_PEERCRED's bytes (<sys/ucred.h>); the first group is the
    effective gid. Raises OSError on anything else."""
    if len(raw) < _XUCRED.size:
        raise OSError(f"LOCAL_PEERCRED gave {len(raw)} bytes, expected {_XUCRED.size}")
    version, uid, ngroups, *groups = _XUCRED.unpack(raw[:_XUCRED.size])
    if version != XUCRED_VERSION or not 1 <= ngroups <= len(groups):
        raise OSError(f"LOCAL_PEERCRED: unknown xucred (version {version}, {ngroups} groups)")
    return uid, groups[0]


class MacSocketTransport:
    """AF_UNIX stream socket; the kernel says who the peer is: LOCAL_PEERCRED (uid, groups)
    and LOCAL_PEERPID (unix(4); getpeereid(3) reads the same xucred). NOT RUN ON macOS."""

    def default_address(self) -> Path:
        override = os.environ.get("CAMGUARD_SOCKET")
        return Path(override) if override else DEFAULT_SOCKET

    def peer_credentials(self, sock: socket.socket) -> tuple[int, int, int]:
        uid, gid = decode_xucred(sock.getsockopt(SOL_LOCAL, LOCAL_PEERCRED, _XUCRED.size))
        (pid,) = struct.unpack("=i", sock.getsockopt(SOL_LOCAL, LOCAL_PEERPID, 4)[:4])
        return pid, uid, gid


# -- folders and alerts -----------------------------------------------------------------------
SERVICE_DIR = Path("/Library/Application Support/camguard")
SERVICE_CONFIG = Path("/Library/Preferences/camguard")


class MacSystemPaths:
    """/Library/Application Support/camguard (root's) and /Library/Preferences/camguard,
    moved by the same CAMGUARD_*_DIR variables as everywhere."""

    @staticmethod
    def _env(name: str, default: Path) -> Path:
        value = os.environ.get(name)
        return Path(value) if value else default

    def service_data_dir(self) -> Path:
        return self._env(paths.DATA_ENV, SERVICE_DIR)

    def service_state_dir(self) -> Path:
        return self._env(paths.STATE_ENV, SERVICE_DIR / "state")

    def service_config_dir(self) -> Path:
        return self._env(paths.CONFIG_ENV, SERVICE_CONFIG)


class MacNotifications:
    """camguard's own alert window: macOS takes banners of apps that are not signed and
    notarised out of sight after a few seconds, too easy to miss for a camera alert."""

    @property
    def available(self) -> bool:
        return True

    def describe(self) -> str:
        return "camguard's own alert window (Notification Center banners vanish by themselves)"
