"""The kill switch without privileges: a block that ends this account's own camera users.

Closing a device node for everyone needs root or the privileged helper. Without either, an
ordinary user can still stop what their own account does (issue 17): at block time camguard
ends every process of the account that holds the device, and while the block lasts it ends
any process of the account that opens it (:class:`UserGuard`, a monitor sink). Other
accounts' processes are never signalled: they are named, and the person is told that the
helper is needed to cover them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal
from camguard.platform.linux.fdscan import scan_holders

log = logging.getLogger(__name__)

OTHERS_NOT_COVERED = ("other accounts are not covered: closing the device for everyone "
                      "needs root or the privileged helper (installed with the camguard "
                      "package)")


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    uid: int | None  # None: the process went away or /proc/PID could not be read
    name: str


def _describe(pid: int, proc_root: str) -> Holder:
    try:
        uid = os.stat(f"{proc_root}/{pid}").st_uid
    except OSError:
        uid = None
    try:
        with open(f"{proc_root}/{pid}/comm", "rb") as f:
            name = f.read(64).decode("utf-8", "surrogateescape").rstrip("\n")
    except OSError:
        name = "?"
    return Holder(pid, uid, name)


def holders(nodes: Sequence[str], proc_root: str = "/proc") -> tuple[list[Holder], int]:
    """Processes holding any of ``nodes`` open, and how many processes camguard could not
    inspect (another account's, without privileges)."""
    found, hidden = scan_holders(nodes, proc_root)
    pids = sorted({pid for pairs in found.values() for pid, _fd in pairs})
    return [_describe(pid, proc_root) for pid in pids], hidden


def end_own_holders(nodes: Sequence[str], kill: Callable[[int], ActionResult], uid: int,
                    device: str, proc_root: str = "/proc") -> tuple[list[ActionResult], list[str]]:
    """End ``uid``'s processes that hold ``nodes``; name the others. Returns the failures
    (results to report) and notes (what was done, what is not covered)."""
    results: list[ActionResult] = []
    notes: list[str] = []
    # Processes camguard cannot inspect (``hidden``) are every other account's, whether or
    # not they hold the device: no evidence either way, so they are not reported as holders.
    found, _hidden = holders(nodes, proc_root)
    own = [h for h in found if h.uid == uid]
    others = [h for h in found if h.uid != uid]
    for h in own:
        r = kill(h.pid)
        if r.ok or r.outcome is Outcome.NOT_FOUND:
            notes.append(f"closed {literal(h.name, 64)} (pid {h.pid})")
        else:
            results.append(r)
    if others:
        who = ", ".join(f"{literal(h.name, 64)} (pid {h.pid})" for h in others)
        results.append(ActionResult(
            Outcome.REFUSED, f"the {device} is still in use by another account: {who}; "
            + OTHERS_NOT_COVERED))
    else:
        notes.append(OTHERS_NOT_COVERED)
    return results, notes
