"""Camera probes for the selftest: OpenCV opens and frames, node permissions, unprivileged opens.

OpenCV is imported here only, inside :func:`load_opencv`: it costs ~240 ms and ~32 MiB, and
it may fail to load at all (a missing libGL), which must become a finding, not a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from camguard.core.text import literal

log = logging.getLogger(__name__)

# Major number of video4linux nodes (Documentation/admin-guide/devices.txt). Anything else
# (the null driver's 1:3 that tests use, a regular file) opens but is not a camera.
V4L2_MAJOR = 81
ACL_XATTR = "system.posix_acl_access"
NOBODY_UID = 65534
FRAME_TIMEOUT = 5.0  # a real camera may need a few frames to warm up
UNPRIVILEGED_TIMEOUT = 15.0
_SAFE_PATH = "/usr/bin:/bin"
# What to install when a self-test module is missing (pyproject's optional extra).
EXTRA_HINT = " (install it with: pip install 'camguard[selftest]')"


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """A node's access as the kernel enforces it (what a block changes and must restore)."""

    mode: int  # permission bits (stat.S_IMODE)
    uid: int
    gid: int
    acl: bytes | None  # the raw POSIX ACL xattr, None when the node has none

    @property
    def closed(self) -> bool:
        """What a camguard block makes of a node: root:root 0000, no ACL."""
        return self.mode == 0 and self.uid == 0 and self.gid == 0 and self.acl is None

    def text(self) -> str:
        acl = " with an ACL" if self.acl else ""
        return f"{self.mode:04o} {self.uid}:{self.gid}{acl}"


def node_facts(path: str) -> NodeFacts | None:
    """The node's mode, owner, group and ACL; None when it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        acl: bytes | None = os.getxattr(path, ACL_XATTR)
    except OSError:  # ENODATA: no ACL; ENOTSUP: the file system has none
        acl = None
    return NodeFacts(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, acl)


def node_kind(path: str) -> tuple[bool, str]:
    """Whether ``path`` is a real video4linux node, and what it is, in a few words."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return False, f"cannot be looked at ({exc.strerror or exc})"
    if stat.S_ISCHR(st.st_mode):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if major == V4L2_MAJOR:
            return True, f"video4linux node {major}:{minor}"
        return False, f"character device {major}:{minor}, not video4linux ({V4L2_MAJOR}:x)"
    if stat.S_ISREG(st.st_mode):
        return False, "a regular file"
    return False, "not a character device"


# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability), a 104-byte struct
# (include/uapi/linux/videodev2.h): driver[16], card[32], bus_info[32], then u32 version,
# capabilities, device_caps and reserved[3].
VIDIOC_QUERYCAP = (2 << 30) | (104 << 16) | (ord("V") << 8)
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
V4L2_CAP_DEVICE_CAPS = 0x80000000


@dataclass(frozen=True, slots=True)
class V4l2Caps:
    card: str
    driver: str
    captures: bool  # this node delivers video frames (a UVC metadata node does not)


def query_caps(path: str) -> V4l2Caps | None:
    """What the driver says this node is (VIDIOC_QUERYCAP); None for anything that does not
    answer the query (not a V4L2 node, or it cannot be opened)."""
    import fcntl  # V4L2 is Linux's: imported here so that the module imports everywhere

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    caps, device_caps = struct.unpack_from("=II", buf, 84)
    if caps & V4L2_CAP_DEVICE_CAPS:
        caps = device_caps  # the node's own capabilities, not the whole device's
    return V4l2Caps(card=_c_string(buf[16:48]), driver=_c_string(buf[0:16]),
                    captures=bool(caps & (V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE)))


def _c_string(raw: bytes | bytearray) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


# -- OpenCV ------------------------------------------------------------------------------
def load_opencv() -> tuple[Any, str]:
    """The ``cv2`` module, or None and why it cannot be loaded."""
    try:
        # A cv2 that fails to load prints its reason to stdout ("OpenCV bindings requires
        # numpy"), which would corrupt `selftest --json`: send it to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            import cv2
    except Exception as exc:  # ImportError, or OSError/any error from a broken native library
        return None, (f"OpenCV cannot be loaded: {literal(str(exc) or type(exc).__name__, 300)}"
                      f"{EXTRA_HINT if isinstance(exc, ImportError) else ''}")
    try:
        # Its V4L2 warnings ("can't be used to capture by name") would garble the report.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except Exception:  # older builds have no cv2.utils.logging
        log.debug("cannot quieten OpenCV's logging", exc_info=True)
    return cv2, ""


@dataclass(frozen=True, slots=True)
class OpenCvResult:
    opened: bool
    frame: tuple[int, int] | None = None  # width, height of the first frame read
    error: str = ""


def opencv_probe(cv2: Any, path: str, while_open: Callable[[], None] | None = None,
                 frame_timeout: float = FRAME_TIMEOUT) -> OpenCvResult:
    """Open ``path`` with OpenCV's V4L2 backend and read one frame.

    ``while_open`` runs while OpenCV holds the camera (to wait for detection). OpenCV opens a
    node that is not a camera, fails its first V4L2 query (VIDIOC_QUERYCAP) and closes it
    again at once, so such a node reports ``opened=False``.
    """
    cap = None
    try:
        cap = cv2.VideoCapture(path, cv2.CAP_V4L2)
        if not cap.isOpened():
            return OpenCvResult(False, error="OpenCV could not open it as a V4L2 camera")
        if while_open is not None:
            while_open()
        deadline = time.monotonic() + frame_timeout
        while True:
            ok, frame = cap.read()
            if ok and frame is not None:
                height, width = frame.shape[:2]
                return OpenCvResult(True, (int(width), int(height)))
            if time.monotonic() >= deadline:
                return OpenCvResult(True, error=f"opened, but no frame within "
                                    f"{frame_timeout:g} s")
    except Exception as exc:  # cv2.error, or a path OpenCV cannot encode
        return OpenCvResult(False, error=f"OpenCV failed: {literal(str(exc), 300)}")
    finally:
        if cap is not None:
            try:
                cap.release()
            except Exception:
                log.debug("releasing the capture failed", exc_info=True)


# -- opens by an unprivileged user ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Account:
    uid: int
    gid: int
    groups: tuple[int, ...]
    name: str


def unprivileged_account() -> Account:
    """Who stands in for "an ordinary program": the desktop user who ran ``sudo`` (the
    person whose apps would open the camera, with their real groups and ACL entries), else
    ``nobody``."""
    import pwd  # Unix only, as fcntl above

    sudo_uid = os.environ.get("SUDO_UID", "")
    uid = int(sudo_uid) if sudo_uid.isascii() and sudo_uid.isdigit() else NOBODY_UID
    if uid == 0:
        uid = NOBODY_UID
    try:
        pw = pwd.getpwuid(uid)
        groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
        return Account(uid, pw.pw_gid, groups, pw.pw_name)
    except (KeyError, OSError):
        return Account(uid, NOBODY_UID, (NOBODY_UID,), str(uid))


def open_as(account: Account, path: str) -> tuple[str, str]:
    """Try to open ``path`` for reading as ``account`` (needs root): ``("opened", "")``,
    ``("denied", why)`` or ``("error", why)``. ``dd count=0`` opens the node and reads
    nothing, and lives where any user may run it (the venv's python may not)."""
    dd = shutil.which("dd", path=_SAFE_PATH)
    if dd is None:
        return "error", "dd is not installed"
    try:
        proc = subprocess.run(
            [dd, f"if={path}", "of=/dev/null", "count=0", "status=none"],
            user=account.uid, group=account.gid, extra_groups=list(account.groups),
            env={"PATH": _SAFE_PATH, "LC_ALL": "C"}, cwd="/", stdin=subprocess.DEVNULL,
            capture_output=True, timeout=UNPRIVILEGED_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return "error", f"cannot run dd as {literal(account.name, 40)}: {literal(str(exc), 200)}"
    if proc.returncode == 0:
        return "opened", ""
    why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    last = why[-1] if why else f"dd exited with {proc.returncode}"
    if last.endswith(("Permission denied", "Operation not permitted")):
        return "denied", "Permission denied"
    return "error", literal(last, 200)


_HOLD_OPEN = ("import os, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)\n"
              "sys.stdout.write('open\\n'); sys.stdout.flush()\n"
              "sys.stdin.readline()\n")


def opener_is_ended(path: str, deadline_s: float) -> tuple[str, str]:
    """Start an app of this account that opens ``path`` and holds it: ``("ended", how
    long)`` when something (the block's guard) ends it within ``deadline_s``, ``("kept",
    ...)`` when it still holds the node then, ``("error", why)`` when it could not open."""
    try:
        proc = subprocess.Popen([sys.executable, "-c", _HOLD_OPEN, path], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError as exc:
        return "error", f"cannot start a test app: {literal(str(exc), 200)}"
    try:
        if proc.stdout is None or proc.stdout.readline() != b"open\n":
            proc.wait(5)
            return "error", "the test app could not open the node (refused before the guard)"
        started = time.monotonic()
        try:
            proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            return "kept", (f"an app of yours (pid {proc.pid}) opened it during the block and "
                            f"still held it after {deadline_s:.0f} s")
        return "ended", (f"an app of yours (pid {proc.pid}) that opened it during the block "
                         f"was closed after {time.monotonic() - started:.2f} s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
