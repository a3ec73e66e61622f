"""Who may use the camguard service's named pipe, decided from the caller's token: its user
SID and its groups with their attributes (GetNamedPipeClientProcessId, then
OpenProcessToken + GetTokenInformation(TokenUser, TokenGroups) in the pipe adapter).

Pure: tested on Linux with recorded SIDs and groups. Rules, first match wins:

1. A remote or anonymous caller (NETWORK S-1-5-2 or ANONYMOUS LOGON S-1-5-7 in its token,
   or anonymous as its user) is refused: the pipe is for this machine's users only.
2. LocalSystem (S-1-5-18) is an admin.
3. Membership of the admin group (configurable; default BUILTIN\\Administrators
   S-1-5-32-544) makes an admin only when the group is enabled: under UAC a non-elevated
   administrator's token carries it as deny-only (SE_GROUP_USE_FOR_DENY_ONLY), which is not
   membership.
4. An interactive user (INTERACTIVE S-1-5-4 enabled) is a user.
5. Anyone else (a service account, a batch job) is refused.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

LOCAL_SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
INTERACTIVE = "S-1-5-4"
NETWORK = "S-1-5-2"
ANONYMOUS = "S-1-5-7"
SE_GROUP_ENABLED = 0x4
SE_GROUP_USE_FOR_DENY_ONLY = 0x10
MAX_GROUPS = 1024
_SID = re.compile(r"S-1-\d{1,14}(?:-\d{1,10}){0,15}")


class Role(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class PipeCaller:
    pid: int
    user_sid: str
    groups: tuple[tuple[str, int], ...]  # (SID, SE_GROUP_* attributes)


def is_sid(text: str) -> bool:
    return _SID.fullmatch(text) is not None


def _enabled(groups: Sequence[tuple[str, int]], sid: str) -> bool:
    return any(g == sid and attrs & SE_GROUP_ENABLED and not attrs & SE_GROUP_USE_FOR_DENY_ONLY
               for g, attrs in groups)


def authorize(caller: PipeCaller, admin_group: str = ADMINISTRATORS) -> tuple[Role, str]:
    """The caller's role and the reason, in words."""
    if not is_sid(caller.user_sid) or len(caller.groups) > MAX_GROUPS or not is_sid(admin_group):
        return Role.REFUSED, "the caller's token could not be read as SIDs"
    present = {g for g, _a in caller.groups}
    if caller.user_sid == ANONYMOUS or ANONYMOUS in present or NETWORK in present:
        return Role.REFUSED, "a remote or anonymous caller"
    if caller.user_sid == LOCAL_SYSTEM:
        return Role.ADMIN, "LocalSystem"
    if _enabled(caller.groups, admin_group):
        return Role.ADMIN, f"member of the admin group {admin_group}"
    if _enabled(caller.groups, INTERACTIVE):
        why = " (admin group present but not enabled: a non-elevated token)" if \
            admin_group in present else ""
        return Role.USER, "an interactive user" + why
    return Role.REFUSED, "not an interactive user"
