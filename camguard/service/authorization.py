"""Who is asking, and what they may see and do: kernel-given identity, per request.

The caller is whoever the kernel says connected (the platform's transport reads it:
``SO_PEERCRED`` on Linux, socket(7): the pid, uid and gid of the peer at ``connect`` time);
nothing a request says about itself is trusted.
A user sees and controls their own sessions: usages whose process belongs to them (its
real uid, which is what ``ProcessRef.user`` names). Members of the admin group, and root,
see and control every account's sessions and history. A usage whose process camguard
cannot see has no owner to match, so only admins see it.

The kill switch (``block``/``unblock``) is decided here too, and written down in
docs/security.md: an admin blocks for everyone; an ordinary account only when the managed
policy lets it, never while another account's program holds the device, and its block
ends only its own programs; a block is lifted by an admin, by the parental-lock password,
or by the ordinary account that made it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from camguard.core.blocks import ActiveBlock, BlockOptions
from camguard.core.models import DeviceKind, ProcessRef, Usage
from camguard.core.state import GuardState

DEFAULT_ADMIN_GROUP = "camguard-admins"
# The kernel-given (pid, uid, gid) of a connected socket's peer: the platform's transport
# (platform.base.ServiceTransport.peer_credentials), handed in by the composition root.
PeerCredentials = Callable[[socket.socket], tuple[int, int, int]]
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


def identify(sock: socket.socket, admin_group: str, peer: PeerCredentials) -> Caller:
    """Who is at the other end of ``sock``, as the kernel says (``peer``)."""
    pid, uid, gid = peer(sock)
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
    import psutil  # here: every command's service client imports this module (issue 16)

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


# -- the kill switch -------------------------------------------------------------------------
def _kinds_text(kinds: Collection[DeviceKind]) -> str:
    return " and ".join(k.value for k in sorted(kinds, key=lambda k: k.value))


def _holder(usage: Usage) -> str:
    p = usage.process
    return p.user if p is not None and p.user else "a process camguard cannot see"


def block_refusal(caller: Caller, kinds: Collection[DeviceKind], options: BlockOptions,
                  usages: Sequence[Usage], *, users_may_block: bool, admin_group: str
                  ) -> str | None:
    """Why ``caller`` may not block ``kinds`` for every account now, or None.

    ``usages``: who holds which device now (the monitor's state). An ordinary account's
    block is refused while another account (or a process camguard cannot see) holds one of
    the devices, naming the accounts: the block would end their programs (a child's
    ``block all`` must not end a parent's call).
    """
    if caller.admin:
        return None
    admins = f"an admin (root or the group {admin_group!r})"
    if options.persistent or options.unbind_usb:
        return (f"only {admins} may block with --persistent or --unbind-usb: they change "
                "the system beyond this block")
    if not users_may_block:
        return (f"blocking a device for every account needs {admins}: the managed policy "
                "sets users_may_block = false")
    others = sorted({_holder(u) for u in usages
                     if u.device.kind in kinds and not can_see(caller, u)})
    if others:
        return (f"the {_kinds_text(kinds)} is in use by another account "
                f"({', '.join(others)}); a block would end their programs, so only "
                f"{admins} may block it now")
    return None


def block_owner(caller: Caller) -> int | None:
    """Who a block is recorded as made by: None for an admin (only admins lift it)."""
    return None if caller.admin else caller.uid


def block_end_refusal(caller: Caller, pid: int, create_time: float,
                      lookup: Lookup = lookup_process) -> str | None:
    """Why a block ``caller`` asked for may not end the holder ``pid``, or None.

    Checked again for each holder the block finds (a program may have opened the device
    after :func:`block_refusal` looked): an ordinary account's block ends only its own.
    """
    if caller.admin:
        return None
    target = lookup(pid)
    if target is None or abs(target.create_time - create_time) > CTIME_TOLERANCE:
        return None  # gone already: nothing to end
    if target.uid == caller.uid:
        return None
    return (f"left pid {pid} running: it belongs to another account, and a block by "
            f"{caller.name} ends only {caller.name}'s programs")


def unblock_refusal(caller: Caller, blocks: Sequence[ActiveBlock],
                    kinds: Collection[DeviceKind], *, unlocked: bool, admin_group: str
                    ) -> str | None:
    """Why ``caller`` may not lift the blocks of ``kinds``, or None.

    ``unlocked``: the caller gave the parental-lock password, which stands for the parent
    who set it. Otherwise an ordinary account lifts only blocks it made itself.
    """
    if caller.admin or unlocked:
        return None
    theirs = [b.kind for b in blocks if b.kind in kinds and b.owner != caller.uid]
    if not theirs:
        return None
    return (f"the {_kinds_text(theirs)} block was made by an admin or another account; only "
            f"an admin (root or the group {admin_group!r}) or the parental-lock password "
            "may lift it")


def unblock_kinds(caller: Caller, blocks: Sequence[ActiveBlock],
                  kinds: Collection[DeviceKind], *, unlocked: bool) -> set[DeviceKind]:
    """Which of ``kinds`` an unblock lifts: all for an admin (a kind with no record still
    has its nodes released, so a lost record never strands a device); for an ordinary
    account only its own recorded blocks."""
    if caller.admin or unlocked:
        return set(kinds)
    return {b.kind for b in blocks if b.kind in kinds and b.owner == caller.uid}


# -- a person's answer to an alert (``decide``) ------------------------------------------------
def decide_refusal(caller: Caller, session_user: str | None, found: bool,
                   decided_before: str | None, people: Collection[str]) -> str | None:
    """Why ``caller`` may not record a decision on a session, or None.

    Only the account whose process the session is (by the user name recorded with it, as
    ``history`` goes by) or an admin may; an ordinary account is told the same whether the
    session does not exist or belongs to someone else, so it learns nothing of other
    accounts' sessions. A decision a rule or the mode made (``decided_before`` outside
    ``people``, the values people and the countdown record) is never replaced: the history
    keeps what the administrator's rules did.
    """
    if not caller.admin and (not found or not caller.owns(session_user)):
        return "no session of yours matches that usage (kind, device, pid and start time)"
    if not found:
        return "no session matches that usage"
    if decided_before is not None and decided_before not in people:
        return f"that session was decided by {decided_before}; a later answer does not replace it"
    return None

