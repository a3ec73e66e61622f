"""Who is asking, and what they may see and do: kernel-given identity, per request.

The caller is whoever the kernel says connected (``SO_PEERCRED``, socket(7): the pid, uid
and gid of the peer at ``connect`` time); nothing a request says about itself is trusted.
A user sees and controls their own sessions: usages whose process belongs to them (its
real uid, which is what ``ProcessRef.user`` names). Members of the admin group, and root,
see and control every account's sessions and history. A usage whose process camguard
cannot see has no owner to match, so only admins see it.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

import psutil

from camguard.core.models import ProcessRef, Usage
from camguard.core.state import GuardState

DEFAULT_ADMIN_GROUP = "camguard-admins"
_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }
# create_time is ticks/CLK_TCK + btime on Linux; half a tick tells two processes apart.
CTIME_TOLERANCE = 0.005


@dataclass(frozen=True, slots=True)
class Caller:
    uid: int
    gid: int
    pid: int
    name: str
    admin: bool

    @property
    def root(self) -> bool:
        return self.uid == 0

    def owns(self, user: str | None) -> bool:
        """True when ``user`` (a process's user name, as psutil gives it) is this caller.

        psutil names a uid without a passwd entry by its number, so that matches too.
        """
        return bool(user) and user in (self.name, str(self.uid))

    def to_dict(self) -> dict[str, object]:
        return {"uid": self.uid, "gid": self.gid, "user": self.name, "admin": self.admin}


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def user_name(uid: int) -> str:
    import pwd  # Unix only: imported here so that camguard.cli imports everywhere

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def is_admin(uid: int, admin_group: str) -> bool:
    """Root, or a member of ``admin_group`` by the group database (primary or listed)."""
    if uid == 0:
        return True
    import grp  # Unix only, as above
    import pwd

    try:
        wanted = grp.getgrnam(admin_group).gr_gid
        entry = pwd.getpwuid(uid)
    except KeyError:  # no such group (nobody is an admin) or a uid without a passwd entry
        return False
    return wanted in os.getgrouplist(entry.pw_name, entry.pw_gid)


def identify(sock: socket.socket, admin_group: str) -> Caller:
    pid, uid, gid = peer_credentials(sock)
    return Caller(uid, gid, pid, user_name(uid), is_admin(uid, admin_group))


# -- what a caller sees ---------------------------------------------------------------------
def can_see(caller: Caller, usage: Usage) -> bool:
    if caller.admin:
        return True
    return usage.process is not None and caller.owns(usage.process.user)


def visible_state(caller: Caller, state: GuardState) -> GuardState:
    """``state`` with only the usages ``caller`` may see (devices are listed for all)."""
    if caller.admin:
        return state
    usages = tuple(u for u in state.usages if can_see(caller, u))
    keys = {u.key for u in usages}
    return replace(state, usages=usages,
                   first_seen={k: v for k, v in state.first_seen.items() if k in keys})


def history_users(caller: Caller, asked: str | None) -> frozenset[str] | None:
    """Whose history a query returns: None for everyone (an admin who did not narrow it)."""
    if caller.admin:
        return None if asked is None else frozenset({asked})
    return frozenset({caller.name, str(caller.uid)})


# -- what a caller may end -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Target:
    pid: int
    create_time: float
    uid: int


Lookup = Callable[[int], Target | None]


def lookup_process(pid: int) -> Target | None:
    """The process's start time and real uid (the owner kill(2) and psutil go by)."""
    try:
        proc = psutil.Process(pid)
        return Target(pid, proc.create_time(), proc.uids().real)
    except (psutil.Error, OSError, ValueError):
        return None


def kill_permission(caller: Caller, pid: int, create_time: float | None, state: GuardState,
                    lookup: Lookup = lookup_process) -> Target | str:
    """The process ``caller`` may end, or why not.

    A user may end their own processes (what kill(2) would let them do anyway). An admin
    may also end another account's process, but only one that uses a camera or microphone
    right now: camguard's admin group is not a way to end any process on the machine.
    """
    target = lookup(pid)
    if target is None:
        return f"no process with pid {pid}"
    if create_time is not None and abs(target.create_time - create_time) > CTIME_TOLERANCE:
        return f"pid {pid} is now a different process; the one you meant has exited"
    if target.uid == caller.uid or caller.root:
        return target
    if caller.admin and any(_same(u.process, target) for u in state.usages):
        return target
    if caller.admin:
        return f"pid {pid} belongs to another account and uses no camera or microphone"
    return f"pid {pid} is not yours"


def _same(p: ProcessRef | None, target: Target) -> bool:
    return p is not None and p.pid == target.pid and \
        abs(p.create_time - target.create_time) <= CTIME_TOLERANCE
