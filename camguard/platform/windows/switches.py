"""Windows' own switches, as camguard's kill switch would flip them: the per-user ConsentStore
``Value`` (``Deny``, no admin needed) and the machine policy ``LetAppsAccessCamera`` /
``LetAppsAccessMicrophone`` = 2 (Force Deny, admin). Each change remembers exactly what was
there before (a value or its absence) so that undo restores it, and never restores over a
value someone else changed meanwhile.

Decisions are pure (:func:`plan_deny`, :func:`plan_restore`); :class:`ConsentSwitch` applies
them through registry.Registry. Microsoft documents that desktop apps can bypass these
switches: they stop apps that ask Windows, not a determined program.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from camguard.core.models import DeviceKind
from camguard.platform.windows.regfile import REG_DWORD, REG_SZ

CONSENT_KEY = ("HKCU\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\CapabilityAccessManager"
               "\\ConsentStore\\{cap}")
POLICY_KEY = "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\AppPrivacy"
CAPABILITY = {DeviceKind.CAMERA: "webcam", DeviceKind.MICROPHONE: "microphone"}
POLICY_VALUE = {DeviceKind.CAMERA: "LetAppsAccessCamera",
                DeviceKind.MICROPHONE: "LetAppsAccessMicrophone"}
FORCE_DENY = 2


@dataclass(frozen=True, slots=True)
class Change:
    """One registry value camguard set, and what was there before (None: no value)."""

    key: str
    name: str
    new: tuple[Any, int]
    old: tuple[Any, int] | None

    def to_text(self) -> str:
        return json.dumps({"key": self.key, "name": self.name, "new": list(self.new),
                           "old": list(self.old) if self.old else None})

    @classmethod
    def from_text(cls, text: str) -> Change:
        doc = json.loads(text)
        old = doc["old"]
        return cls(str(doc["key"]), str(doc["name"]), (doc["new"][0], int(doc["new"][1])),
                   (old[0], int(old[1])) if old else None)


def plan_deny(kind: DeviceKind, current: tuple[Any, int] | None, *, policy: bool = False
              ) -> Change | None:
    """The change that denies ``kind`` to apps; None when it is already denied (nothing to
    undo later: camguard must not lift a switch it did not flip)."""
    if policy:
        want: tuple[Any, int] = (FORCE_DENY, REG_DWORD)
        key, name = POLICY_KEY, POLICY_VALUE[kind]
    else:
        want = ("Deny", REG_SZ)
        key, name = CONSENT_KEY.format(cap=CAPABILITY[kind]), "Value"
    if current is not None and current[1] == want[1] and (
            current[0] == want[0] or str(current[0]).casefold() == str(want[0]).casefold()):
        return None
    return Change(key, name, want, current)


def plan_restore(change: Change, current: tuple[Any, int] | None) -> tuple[str, Any]:
    """("set", old) | ("delete", None) | ("keep", why): keep when the value is no longer
    camguard's (someone changed it after the block; their choice stands)."""
    if current is None or (current[0], current[1]) != (change.new[0], change.new[1]):
        return "keep", "changed by someone else since camguard set it"
    if change.old is None:
        return "delete", None
    return "set", change.old


class ConsentSwitch:
    """Flips the switches through a registry.Registry (winreg on Windows)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def deny(self, kind: DeviceKind, *, policy: bool = False) -> Change | None:
        key = POLICY_KEY if policy else CONSENT_KEY.format(cap=CAPABILITY[kind])
        name = POLICY_VALUE[kind] if policy else "Value"
        change = plan_deny(kind, self.registry.get(key, name), policy=policy)
        if change is not None:
            self.registry.set(change.key, change.name, *change.new)
        return change

    def restore(self, change: Change) -> str:
        """What happened, in words."""
        action, arg = plan_restore(change, self.registry.get(change.key, change.name))
        if action == "keep":
            return f"{change.key}\\{change.name} left as it is: {arg}"
        if action == "delete":
            self.registry.delete(change.key, change.name)
        else:
            self.registry.set(change.key, change.name, *arg)
        return f"{change.key}\\{change.name} restored"
