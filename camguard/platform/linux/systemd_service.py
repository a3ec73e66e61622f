"""Turning on camguard's system service from the parental page: ``systemctl enable --now``.

Run as the person at the desktop, not through pkexec: systemctl asks systemd over D-Bus, and
systemd asks polkit itself (``org.freedesktop.systemd1.manage-unit-files`` and
``manage-units``, which the desktop's polkit agent answers with an administrator's
password). So nothing camguard ships runs as root for it, no shell is involved (one argv),
and a refusal changes nothing. Offered only when the package installed the unit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

UNIT = "camguard.service"
# sd_booted(3): systemd is the running init exactly when this is a folder.
BOOTED = "/run/systemd/system"
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


class SystemdService:
    """Whether camguard's unit is installed and running, and turning it on."""

    def __init__(self, unit_dirs: Sequence[str] = UNIT_DIRS, systemctl: str | None = None,
                 timeout: float = 300.0, booted: str = BOOTED) -> None:
        self._dirs = tuple(unit_dirs)
        self._booted = booted
        self._systemctl = systemctl or shutil.which("systemctl") or "/usr/bin/systemctl"
        self._timeout = timeout

    def installed(self) -> bool:
        return any((Path(d) / UNIT).is_file() for d in self._dirs)

    def running(self) -> bool:
        """``systemctl is-active`` says active (False also where systemd does not run)."""
        try:
            proc = subprocess.run([self._systemctl, "is-active", "--quiet", UNIT],
                                  capture_output=True, timeout=30, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0

    def turn_on(self) -> tuple[bool, str]:
        """(True, a sentence) once enabled and started; else (False, why, in words).
        Without a running systemd nothing is run (``systemctl enable`` offline would write
        half an install, as far as the account may)."""
        if not os.path.isdir(self._booted):
            return False, ("Not turned on: this computer does not run systemd, which starts "
                           "the service. Nothing was changed.")
        if not self.installed():
            return False, ("Not turned on: the service is not installed (it comes with the "
                           "camguard package). Nothing was changed.")
        try:
            proc = subprocess.run([self._systemctl, "enable", "--now", UNIT],
                                  capture_output=True, timeout=self._timeout, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"Not turned on: systemctl could not run ({exc})."
        if proc.returncode == 0:
            return True, ("The camguard service is on: it watches, records and enforces for "
                          "every account, now and after each restart.")
        said = proc.stderr.decode("utf-8", "replace").strip()
        lowered = said.lower()
        if "access denied" in lowered or "interactive authentication" in lowered \
                or "not authorized" in lowered:
            return False, ("Not turned on: an administrator's password is needed and was not "
                           "given. Nothing was changed.")
        why = said.splitlines()[-1][:300] if said else f"systemctl exit {proc.returncode}"
        return False, f"Not turned on: {why}."
