"""Taking back an app's camera or microphone permission on macOS: ``tccutil reset Camera
<bundle id>`` (tccutil(1)) forgets the app's answer in TCC, so the next time the app starts
the device macOS asks the person again.

What it is and is not:

* It cannot be undone. camguard does not know (and cannot write) what the person had
  answered; after a reset the app simply asks again. The result says so every time.
* It does not stop a capture in progress: TCC is asked when a capture starts. The camera
  stays on for the running app until it ends (``camguard kill PID``) or stops by itself.
* It needs a bundle id: apps in a ``.app`` bundle have one (``CFBundleIdentifier`` in
  ``Contents/Info.plist``); a bare command-line tool has none and is named as such.

The argv is a list, never a shell string; the bundle id is checked to be one (reverse-DNS
characters, not starting with ``-``) before it is passed. Only from the person's own
account: TCC keeps each account's answers apart, so the root service refuses (it would reset
root's). NOT RUN ON macOS.
"""

from __future__ import annotations

import os
import plistlib
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.models import DeviceKind
from camguard.core.text import literal

TCCUTIL = "/usr/bin/tccutil"
TIMEOUT = 10.0
# tccutil's service names (the TCC services without their kTCCService prefix).
SERVICES = {DeviceKind.CAMERA: "Camera", DeviceKind.MICROPHONE: "Microphone"}
_BUNDLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,254}")
MAX_PLIST = 1 << 20
ROOT_REFUSAL = ("the service (root) cannot reset a person's camera permission: macOS keeps it "
                "per account; block with --persistent from that account (camguard block "
                "camera --persistent, or the tray)")
UNDO = "cannot be undone: the app asks for permission again the next time it starts the"


def valid_bundle_id(text: object) -> str | None:
    """``text`` when it is a bundle id tccutil can be given as one argument, else None."""
    if isinstance(text, str) and _BUNDLE_ID.fullmatch(text) and ".." not in text:
        return text
    return None


def bundle_path(exe: str) -> PurePosixPath | None:
    """The outermost ``.app`` folder that holds ``exe``; None for an executable outside any
    app bundle. Outermost: TCC charges a helper app's use (Chrome's "Google Chrome Helper
    .app" inside Google Chrome.app) to the app responsible for it, whose answer is the one
    to reset."""
    found = None
    for parent in PurePosixPath(exe).parents:
        if parent.suffix == ".app":
            found = parent
    return found


def bundle_id_of(exe: str, read: Callable[[str], bytes] | None = None) -> str | None:
    """The bundle id of the app ``exe`` belongs to (its Info.plist's CFBundleIdentifier),
    or None: no bundle, an unreadable or hostile Info.plist, or no valid id in it."""
    app = bundle_path(exe)
    if app is None:
        return None
    reader = read or _read_limited
    try:
        doc = plistlib.loads(reader(str(app / "Contents" / "Info.plist")))
    except (OSError, ValueError, plistlib.InvalidFileException):
        return None
    return valid_bundle_id(doc.get("CFBundleIdentifier")) if isinstance(doc, dict) else None


def _read_limited(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(MAX_PLIST + 1)
    if len(data) > MAX_PLIST:
        raise OSError(f"{path} is larger than {MAX_PLIST} bytes")
    return data


def reset_argv(kind: DeviceKind, bundle_id: str, tool: str = TCCUTIL) -> list[str]:
    """``tccutil reset Camera org.example.app`` as an argv list."""
    checked = valid_bundle_id(bundle_id)
    if checked is None or kind not in SERVICES:
        raise ValueError(f"not a bundle id tccutil can be given: {literal(bundle_id, 100)!r}")
    return [tool, "reset", SERVICES[kind], checked]


Run = Callable[..., "subprocess.CompletedProcess[bytes]"]


@dataclass(frozen=True, slots=True)
class Holder:
    """A process using a device: its pid, executable and shown name."""

    pid: int
    exe: str
    name: str


class TccRevoker:
    """Runs ``tccutil reset`` for each app; ``run`` is subprocess.run (tests give a fake).
    The caller's thread; one short process per app (up to ``TIMEOUT`` s each)."""

    def __init__(self, run: Run = subprocess.run,
                 bundle_of: Callable[[str], str | None] = bundle_id_of,
                 tool: str = TCCUTIL, euid: int | None = None) -> None:
        self._run = run
        self._bundle_of = bundle_of
        self._tool = tool
        self._euid = os.geteuid() if euid is None else euid

    def revoke(self, kind: DeviceKind, bundle_id: str) -> ActionResult:
        try:
            argv = reset_argv(kind, bundle_id, self._tool)
        except ValueError as exc:
            return ActionResult(Outcome.REFUSED, str(exc))
        device = kind.value
        try:
            done = self._run(argv, capture_output=True, timeout=TIMEOUT, check=False,
                             stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return ActionResult(Outcome.FAILED, f"cannot run tccutil for {bundle_id}: {exc}")
        if done.returncode != 0:
            said = literal(done.stderr.decode("utf-8", "replace").strip(), 200) or \
                f"exit status {done.returncode}"
            return ActionResult(Outcome.FAILED,
                                f"tccutil could not reset {bundle_id}'s {device} permission: "
                                f"{said}")
        return ActionResult(Outcome.DONE, f"reset {bundle_id}'s {device} permission ({UNDO} "
                                          f"{device})")

    def revoke_holders(self, kind: DeviceKind, holders: Sequence[Holder]
                       ) -> list[ActionResult]:
        """Reset the permission of each app among ``holders`` (once per bundle id); a holder
        without a bundle id is named, never guessed."""
        if self._euid == 0 and holders:
            # TCC keeps camera answers per account (~/Library/Application Support/com.apple.
            # TCC/TCC.db); root's tccutil would reset root's, not the person's.
            return [ActionResult(Outcome.REFUSED, ROOT_REFUSAL)]
        out: list[ActionResult] = []
        seen: set[str] = set()
        for h in holders:
            bundle = self._bundle_of(h.exe)
            who = f"{literal(h.name, 64) or '?'} (pid {h.pid})"
            if bundle is None:
                out.append(ActionResult(Outcome.NOT_FOUND, f"{who} is not in an app bundle: "
                                        "there is no permission of its own to reset"))
                continue
            if bundle in seen:
                continue
            seen.add(bundle)
            out.append(self.revoke(kind, bundle))
        return out
