"""What a block saved of a device node (mode, owner, ACL), so that it is restored exactly and
a person can restore it by hand: the Linux backend's own reading of an undo step's
``saved`` text (core/blocks.py keeps it opaque; the blocks file keeps its shape)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from camguard.core.blocks import StepKind, UndoStep
from camguard.core.text import literal


@dataclass(frozen=True, slots=True)
class NodeState:
    """A device node's access as it was before camguard blocked it, restored exactly."""

    mode: int  # permission bits only (stat.S_IMODE)
    uid: int
    gid: int
    acl: bytes | None  # raw "system.posix_acl_access" xattr, None when the node had none


def _node_state(raw: Any) -> NodeState | None:
    if not isinstance(raw, dict):
        return None
    try:
        acl = raw.get("acl")
        mode, uid, gid = (raw[k] for k in ("mode", "uid", "gid"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (mode, uid, gid)):
            return None
        return NodeState(mode=mode & 0o7777, uid=uid, gid=gid,
                         acl=None if acl is None else bytes.fromhex(str(acl)))
    except (KeyError, TypeError, ValueError):
        return None


def saved_text(raw: Any) -> str | None:
    """A node's state as the helper reported it, as the step's saved text (the shape the
    blocks file has always held: mode, uid, gid as numbers, the ACL as hex)."""
    s = _node_state(raw)
    if s is None:
        return None
    return json.dumps({"mode": s.mode, "uid": s.uid, "gid": s.gid,
                       "acl": None if s.acl is None else s.acl.hex()}, sort_keys=True)


def node_state(step: UndoStep) -> NodeState | None:
    """What a node step saved, or None (another step, nothing saved, or unreadable)."""
    if step.kind is not StepKind.NODE or step.saved is None:
        return None
    try:
        return _node_state(json.loads(step.saved))
    except ValueError:
        return None


def manual_restore(step: UndoStep) -> str:
    """How a person restores a node by hand, from what camguard recorded."""
    s = node_state(step)
    if s is None:
        return ""
    acl = "; it also had an ACL (setfacl)" if s.acl else ""
    return (f" (by hand: chown {s.uid}:{s.gid} {literal(step.target, 200)} && "
            f"chmod {s.mode:04o} {literal(step.target, 200)}{acl})")
