"""The words of an alert: what the popup shows for one :class:`Alert`, as plain text (pure;
no widget). Everything a process controls is passed through ``core.text.literal`` with a
limit, so markup, control characters and 64 KB names are shown literally and bounded; each
line is elided to its width on screen by the popup, and the limit bounds its tooltip."""

from __future__ import annotations

import os
from dataclasses import dataclass

from camguard.core.models import UNSEEN_PROCESS_NOTE, DeviceKind, ProcessRef
from camguard.core.origin import origin_line
from camguard.core.text import literal
from camguard.ui.alert_freeze import paused_line
from camguard.ui.model import Alert

# The popup's title for each kind of device ("Camera turned on").
KIND_TITLES = {DeviceKind.CAMERA: "Camera", DeviceKind.MICROPHONE: "Microphone",
               DeviceKind.SCREEN: "Screen capture", DeviceKind.LOCATION: "Location"}
# Kinds with no device to switch off: Kill app is the way to stop them.
NO_DEVICE_KINDS = frozenset({DeviceKind.SCREEN, DeviceKind.LOCATION})
# Character limits for process-controlled text: enough to recognise, never a wall of text.
LIMITS = {"name": 48, "exe": 1000, "user": 32, "parent": 32, "device": 200, "cmdline": 1000,
          "note": 300, "why": 160}


@dataclass(frozen=True, slots=True)
class AlertText:
    """Each line of the popup ("" for a line not shown)."""

    title: str
    name: str
    exe: str = ""
    origin: str = ""
    process: str = ""
    parents: str = ""
    cmdline: str = ""
    device: str = ""
    note: str = ""
    why: str = ""


def app_name(p: ProcessRef) -> str:
    """The name a person knows the app by: its process name, else its program file's."""
    return p.name or os.path.basename(p.exe or "") or f"process {p.pid}"


def why_line(alert: Alert, stopped: bool, now: float) -> str:
    """Why this alert is asked again, a probe storm's count, and whether the app is paused."""
    why = f"Asking again: {literal(alert.why, LIMITS['why'])}" if alert.why else ""
    if alert.storm:
        why = f"Probe storm: {literal(alert.why, LIMITS['why'])}"
    if alert.paused and not stopped:  # core/freeze.py: stopped until the answer
        why = "\n".join(filter(None, (paused_line(alert, now), why)))
    return why


def alert_text(alert: Alert, now: float) -> AlertText:
    """What the popup says about ``alert`` at wall time ``now``. What was known about an app
    is kept after it ended (no "?" and no empty lines for what the system no longer tells),
    with "· ended" on its process line."""
    usage = alert.usage
    device = usage.device
    stopped = alert.stopped_at is not None
    kind = KIND_TITLES.get(device.kind, device.kind.value.capitalize())
    title = f"{kind} probed again and again" if alert.storm else f"{kind} turned on"
    dev_name = literal(device.name, LIMITS["device"]) if device.name else ""
    where = literal(device.path or device.id, LIMITS["device"])
    common = {
        "device": f"{dev_name} ({where})" if dev_name and where != dev_name
        else (dev_name or where),
        # A storm's note is its "why".
        "note": literal(usage.note, LIMITS["note"]) if usage.note and not alert.storm else "",
        "why": why_line(alert, stopped, now),
    }
    p = usage.process
    if p is None:
        return AlertText(title, UNSEEN_PROCESS_NOTE,
                         process="run camguard with more privileges to name it", **common)
    origin = alert.origin
    name = literal(app_name(p), LIMITS["name"])
    # A sandboxed app by its real name ("bwrap (Flatpak org.telegram.desktop)"); a package's
    # name is on the origin line.
    shown = origin.label(name) if origin and origin.sandboxed else name
    exe = literal(p.exe, LIMITS["exe"]) if p.exe else "program file not known"
    if p.script:  # an interpreter: the script is the program ("cam.py (python3)")
        shown = f"{literal(os.path.basename(p.script), LIMITS['name'])} ({name})"
        exe = f"{literal(p.script, LIMITS['exe'])} (run by {exe})"
    who = f"process {p.pid}"
    if p.user:
        who += f", user {literal(p.user, LIMITS['user'])}"
    chain = " ← ".join(literal(n, LIMITS["parent"]) for n in p.parents[:6] if n)
    return AlertText(
        title, shown, exe=exe,
        origin=origin_line(origin) if origin is not None else "",
        process=who + (" · ended" if stopped else ""),
        parents=f"started by {chain}" if chain else "",
        cmdline=literal(" ".join(p.cmdline), LIMITS["cmdline"]), **common)
