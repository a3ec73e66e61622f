"""Install camguard's privileged helper from this package: run as root through pkexec.

The .deb installs the helper itself; a pip or venv install of camguard has it only as the
source file next to this one. The first-run window's "Install the helper" button runs

    pkexec <this Python> -I <this file>

(no shell: one argv; pkexec asks for an administrator's password under polkit's generic
``org.freedesktop.policykit.exec`` action, since camguard's own action is not installed
yet). Run so, as root, it copies

* ``helper.py`` (beside this file) to ``/usr/libexec/camguard/camguard-helper``,
  root:root 0755, and
* ``org.camguard.helper.policy`` (the package's resources) to
  ``/usr/share/polkit-1/actions/``, root:root 0644,

each written to a new file in the target folder (``O_EXCL | O_NOFOLLOW``), given its owner
and mode through that fd, synced and renamed over the old one, so no half-written or
user-writable helper is ever at the path polkit runs. It refuses a target folder that is a
symlink or that anyone but root may write. Then it reads each installed file back and
checks owner, mode and SHA-256 against what it read from the package, and prints one JSON
object on one line: ``ok``, ``installed`` (path, mode, sha256) or ``error``.

Standard library only and self-contained: ``-I`` ignores PYTHON* variables and the user's
site-packages, so nothing from the caller's environment runs as root. What is installed is
what the package holds at that moment: the administrator who types the password trusts
this camguard's files, as with any installer.

Exit codes: 0 installed and verified; 1 failed (the JSON says why); 3 not root.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
from pathlib import Path

HELPER_TARGET = "/usr/libexec/camguard/camguard-helper"
POLICY_TARGET = "/usr/share/polkit-1/actions/org.camguard.helper.policy"
ACTION_ID = "org.camguard.helper.camera"
HERE = Path(__file__).resolve().parent
POLICY_NAME = "org.camguard.helper.policy"
# A wheel ships resources inside the package (camguard/resources); a source checkout or an
# editable install has them beside it; the .deb's bundle in /usr/share/camguard.
POLICY_CANDIDATES = (HERE.parents[1] / "resources" / POLICY_NAME,
                     HERE.parents[2] / "resources" / POLICY_NAME,
                     Path("/usr/share/camguard/resources") / POLICY_NAME)
OK, FAILED, NOT_ROOT = 0, 1, 3


class InstallError(Exception):
    pass


def _sources() -> list[tuple[bytes, str, int]]:
    """(content, target, mode) for each file, read once: what is checked is what is
    written."""
    helper = (HERE / "helper.py").read_bytes()
    if not helper.startswith(b"#!/usr/bin/python3 -I\n"):
        raise InstallError(f"{HERE / 'helper.py'} is not camguard's helper")
    policy_path = next((p for p in POLICY_CANDIDATES if p.is_file()), None)
    if policy_path is None:
        raise InstallError(f"{POLICY_NAME} is not in this camguard package")
    policy = policy_path.read_bytes()
    if f'<action id="{ACTION_ID}">'.encode() not in policy:
        raise InstallError(f"{policy_path} is not camguard's polkit action")
    return [(helper, HELPER_TARGET, 0o755), (policy, POLICY_TARGET, 0o644)]


def _safe_folder(folder: str) -> None:
    """Create ``folder`` (root 0755) if missing; refuse a symlink, or one others may
    write, anywhere on its path."""
    path = "/"
    for part in Path(folder).parts[1:]:
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            os.chown(path, 0, 0)
            os.chmod(path, 0o755)  # noqa: S103 - root-owned, as dpkg makes it
            st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise InstallError(f"{path} is not a folder (a symlink?): refused")
        if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InstallError(f"{path} may be written by others than root: refused")


def _write(content: bytes, target: str, mode: int) -> None:
    folder, name = os.path.split(target)
    _safe_folder(folder)
    temp = os.path.join(folder, f".{name}.camguard-new")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)  # left by an install that was interrupted
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(content)
            f.flush()
        os.fchown(fd, 0, 0)
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    os.rename(temp, target)


def _verify(content: bytes, target: str, mode: int) -> dict[str, str]:
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_uid, st.st_gid) != (0, 0) \
            or stat.S_IMODE(st.st_mode) != mode:
        raise InstallError(f"{target} is not root:root {mode:04o} after the install")
    digest = hashlib.sha256(data).hexdigest()
    if digest != hashlib.sha256(content).hexdigest():
        raise InstallError(f"{target} differs from the package's file after the install")
    return {"path": target, "mode": f"{mode:04o}", "sha256": digest}


def install() -> tuple[int, dict[str, object]]:
    if os.geteuid() != 0:
        return NOT_ROOT, {"ok": False, "error": "the helper's installer must run as root"}
    try:
        files = _sources()
        for content, target, mode in files:
            _write(content, target, mode)
        done = [_verify(content, target, mode) for content, target, mode in files]
    except (OSError, InstallError) as exc:
        return FAILED, {"ok": False, "error": str(exc)}
    return OK, {"ok": True, "installed": done}


def main() -> int:
    code, reply = install()
    sys.stdout.write(json.dumps(reply) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
