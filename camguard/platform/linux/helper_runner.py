"""Running the privileged helper (helper.py): in this process when root, else via pkexec."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from camguard.platform.linux import helper
from camguard.platform.linux.kill import HelperCaller

log = logging.getLogger(__name__)

HELPER_PATH = "/usr/libexec/camguard/camguard-helper"
# man pkexec: 126 = the authorization dialog was dismissed, 127 = not authorized.
PKEXEC_DISMISSED = 126
PKEXEC_NOT_AUTHORIZED = 127


class InProcessHelper:
    """The helper's actions run in this process (camguard is root), with the same checks.

    Besides the fixed ``/dev/video*`` and ``/dev/snd/pcmC*D*c`` patterns it accepts exactly
    the nodes the configured globs match right now (stand-in nodes in tests, odd setups).
    """

    def __init__(self, node_globs: Sequence[str], state_file: str = helper.DEFAULT_STATE_FILE,
                 *, rules_dir: str = helper.UDEV_RULES_DIR, run_udevadm: bool = True,
                 sys_root: str = "/sys",
                 udevadm_candidates: Sequence[str] = helper.UDEVADM_CANDIDATES) -> None:
        self._globs = tuple(node_globs)
        self._udevadm = tuple(udevadm_candidates)
        self._state_file = state_file
        self._rules_dir = rules_dir
        self._run_udevadm = run_udevadm
        self._sys = sys_root

    def call(self, *argv: str) -> tuple[int, dict[str, Any]]:
        allowed = frozenset(p for g in self._globs for p in glob.glob(g))
        ctx = helper.Context(
            caller_uid=os.getuid(), state_file=self._state_file, allowed_nodes=allowed,
            rules_dir=self._rules_dir, run_udevadm=self._run_udevadm,
            udevadm_candidates=self._udevadm,
            uvc_driver_dir=f"{self._sys}/bus/usb/drivers/uvcvideo",
            usb_devices_dir=f"{self._sys}/bus/usb/devices",
            protected_pids=frozenset(helper._ancestors(os.getpid(), "/proc")),
            audit=lambda msg: log.info("privileged action: %s", msg))
        return helper.run(list(argv), ctx)


class PkexecHelper:
    """The installed helper, run through pkexec (polkit asks for a password if needed)."""

    def __init__(self, helper_path: str = HELPER_PATH, pkexec: str | None = None,
                 timeout: float = 300.0) -> None:
        self._path = helper_path
        self._pkexec = pkexec or shutil.which("pkexec") or "/usr/bin/pkexec"
        self._timeout = timeout

    @staticmethod
    def available(helper_path: str = HELPER_PATH) -> bool:
        return os.access(helper_path, os.X_OK) and shutil.which("pkexec") is not None

    def call(self, *argv: str) -> tuple[int, dict[str, Any]]:
        try:
            proc = subprocess.run([self._pkexec, self._path, *argv], capture_output=True,
                                  timeout=self._timeout, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return helper.FAILED, {"ok": False, "error": f"cannot run the helper: {exc}"}
        if proc.returncode in (PKEXEC_DISMISSED, PKEXEC_NOT_AUTHORIZED):
            why = "the password dialog was dismissed" if proc.returncode == PKEXEC_DISMISSED \
                else "polkit said no"
            return helper.REFUSED, {"ok": False, "error": f"not authorized ({why})"}
        lines = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
        try:
            reply = json.loads(lines[-1])
            if not isinstance(reply, dict):
                raise ValueError("not an object")
        except (IndexError, ValueError):
            err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
            return helper.FAILED, {"ok": False, "error": f"unexpected answer from the helper "
                                   f"(exit {proc.returncode}): {err}"}
        return proc.returncode, reply


def privileged_helper(node_globs: Sequence[str], state_file: str = helper.DEFAULT_STATE_FILE
                      ) -> HelperCaller | None:
    """In-process when root; pkexec when the helper is installed; else None."""
    if os.geteuid() == 0:
        return InProcessHelper(node_globs, state_file)
    if PkexecHelper.available():
        return PkexecHelper()
    return None


def install_helper(pkexec: str | None = None, python: str | None = None,
                   timeout: float = 300.0) -> tuple[bool, str]:
    """Install the privileged helper from this package (helper_install.py) through pkexec:
    ``pkexec PYTHON -I INSTALLER``, one argv. (True, what was installed) or (False, why not
    in a sentence); a refusal (polkit said no, the password dialog dismissed) changes
    nothing."""
    import sys

    from camguard.platform.linux import helper_install

    argv = [pkexec or shutil.which("pkexec") or "/usr/bin/pkexec",
            python or sys.executable, "-I", os.path.abspath(helper_install.__file__)]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"could not run pkexec: {exc}"
    if proc.returncode == PKEXEC_DISMISSED:
        return False, "Not installed: the password dialog was closed. Nothing was changed."
    if proc.returncode == PKEXEC_NOT_AUTHORIZED:
        return False, ("Not installed: this account may not install it (polkit said no). "
                       "Nothing was changed; an administrator can.")
    lines = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    try:
        reply = json.loads(lines[-1])
        if not isinstance(reply, dict):
            raise ValueError("not an object")
    except (IndexError, ValueError):
        err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        return False, f"The installer failed (exit {proc.returncode}): {err}"
    if reply.get("ok") is True:
        return True, "The helper is installed: Block now switches the device off for every " \
                     "account."
    return False, f"The installer failed: {str(reply.get('error', 'no reason given'))[:300]}"
