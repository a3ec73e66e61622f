#!/usr/bin/python3 -I
"""camguard's privileged helper: a fixed whitelist of device-level kill-switch actions as root.

Installed as root-owned 0755 ``/usr/libexec/camguard/camguard-helper`` and run through
``pkexec`` (polkit action ``org.camguard.helper.camera``), or imported by camguard itself when
camguard already runs as root (:func:`run` with a :class:`Context`). Standard library only and
self-contained: it is copied out of the package, and ``-I`` (isolated mode) ignores PYTHON*
variables and the user's site-packages.

Usage: ``camguard-helper ACTION [ARG...]``

=====================  ===============================================================
``status``             what this helper has blocked (saved node states, unbound USB
                       interfaces, whether the udev rule is installed)
``block-node PATH``    save PATH's exact mode, owner, group and POSIX ACL, then make it
                       root:root 0000 with no ACL; answer the processes still holding it
``unblock-node PATH``  restore exactly what ``block-node`` saved, only onto the same
                       device (device number and inode unchanged)
``kill PID CTIME``     SIGTERM, wait up to 3 s, SIGKILL; only while PID still has start
                       time CTIME (seconds since the epoch, as psutil reports it) and
                       holds a camera or microphone node open
``unbind-usb IFACE``   detach a USB interface (``1-2:1.0``) from the uvcvideo driver
``bind-usb IFACE``     attach it again
``install-udev-rule``  write /etc/udev/rules.d/72-camguard-block.rules (keeps new camera
                       nodes closed across replug and reboot) and reload udev
``remove-udev-rule``   remove that file and reload udev
=====================  ===============================================================

Output: exactly one JSON object on one line on stdout, always with ``ok`` (bool) and
``action``; on failure also ``error`` (text for a person).

Exit codes: 0 done; 1 failed (an OS error; the JSON says which); 2 bad usage or a rejected
argument (nothing was done); 3 refused (protected process, not root, unsafe state folder);
4 not found (no such node, process, interface or saved state).

Security (``man pkexec``: "pkexec does no validation of the ARGUMENTS"): every argument is
checked against a strict regular expression before anything else; node paths are opened
with ``O_PATH | O_NOFOLLOW`` and must be character devices whose folder is not reached
through a symlink; every change goes through that fd (``/proc/self/fd/N``), so a path
swapped after the check is never followed; the state file lives in a root-owned 0700
folder; no shell, no caller-chosen path is ever written. Each call is logged with the
caller's uid (``PKEXEC_UID``) to syslog (``/dev/log``), or to stderr when there is none.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

VERSION = 1

OK, FAILED, BAD_ARGS, REFUSED, NOT_FOUND = 0, 1, 2, 3, 4

# Always used with fullmatch(): "$" alone would also accept a trailing newline.
NODE_PATH_RES = (
    re.compile(r"^/dev/video[0-9]{1,3}$"),
    re.compile(r"^/dev/snd/pcmC[0-9]{1,2}D[0-9]{1,2}c$"),
)
USB_IFACE_RE = re.compile(r"^[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}:[0-9]{1,3}\.[0-9]{1,3}$")
PID_RE = re.compile(r"^[1-9][0-9]{0,9}$")
CTIME_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,9})?$")
# Printable ASCII without space: no control characters, no NUL, no shell-ish whitespace.
ARG_RE = re.compile(r"^[\x21-\x7e]+$")
MAX_ARG = 4096  # injected (in-process) node paths may be long; the regexes bound the rest
MAX_ARGS = 3

DEFAULT_STATE_FILE = "/var/lib/camguard/helper-nodes.json"
UDEV_RULES_DIR = "/etc/udev/rules.d"
UDEV_RULE_NAME = "72-camguard-block.rules"
UVC_DRIVER_DIR = "/sys/bus/usb/drivers/uvcvideo"
USB_DEVICES_DIR = "/sys/bus/usb/devices"
UDEVADM_CANDIDATES = ("/usr/bin/udevadm", "/bin/udevadm", "/sbin/udevadm", "/usr/sbin/udevadm")
ACL_XATTR = "system.posix_acl_access"
PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
# Killing one of these silences the whole desktop; the sound-server mute exists for that.
SOUND_SERVER_EXES = frozenset({"/usr/bin/pulseaudio", "/usr/bin/pipewire",
                               "/usr/bin/pipewire-pulse", "/usr/bin/wireplumber",
                               "/usr/bin/jackd"})
# The udev rule (same text as resources/udev/72-camguard-block.rules; a test keeps them equal).
# It must sort after 70-uaccess.rules (which tags video4linux for the seat ACL) and before
# 73-seat-late.rules (which applies that ACL): a 72- file removes the tag in between.
UDEV_RULE = (
    "# camguard: camera switched off until turned back on (remove with "
    "`camguard unblock camera`).\n"
    "# Sorted between 70-uaccess.rules and 73-seat-late.rules so the seat ACL is never "
    "applied.\n"
    'SUBSYSTEM=="video4linux", KERNEL=="video*", TAG-="uaccess", OWNER="root", '
    'GROUP="root", MODE="0000"\n'
)


class HelperError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    """Where the helper acts and whom it reports to; tests and in-process callers adjust it.

    ``allowed_nodes``: extra node paths accepted besides :data:`NODE_PATH_RES` (only for an
    in-process caller that is already root: the nodes its configured globs match). Every
    other check (character device, no symlink, no ``..``) still applies to them.
    """

    caller_uid: int = -1
    state_file: str = DEFAULT_STATE_FILE
    allowed_nodes: frozenset[str] = frozenset()
    rules_dir: str = UDEV_RULES_DIR
    uvc_driver_dir: str = UVC_DRIVER_DIR
    usb_devices_dir: str = USB_DEVICES_DIR
    proc_root: str = "/proc"
    run_udevadm: bool = True
    udevadm_candidates: tuple[str, ...] = UDEVADM_CANDIDATES  # the first that exists is run
    grace: float = 3.0
    protected_pids: frozenset[int] = frozenset()
    audit: Callable[[str], None] = field(default=lambda _msg: None)


# -- entry points ------------------------------------------------------------------------------
def run(argv: Sequence[str], ctx: Context) -> tuple[int, dict[str, Any]]:
    """Validate and perform one action; returns ``(exit code, JSON object)``. Never raises."""
    action = argv[0] if argv and isinstance(argv[0], str) else ""
    try:
        _check_shape(argv)
        handler = ACTIONS.get(action)
        if handler is None:
            raise HelperError(BAD_ARGS, "unknown action")
        arity, fn = handler
        if len(argv) - 1 != arity:
            raise HelperError(BAD_ARGS, f"{action} takes {arity} argument(s)")
        result = fn(list(argv[1:]), ctx)
        out: dict[str, Any] = {"ok": True, "action": action, **result}
        code = OK
    except HelperError as exc:
        code = exc.code
        out = {"ok": False, "action": _show(action), "error": str(exc)}
    except OSError as exc:
        code = FAILED
        out = {"ok": False, "action": _show(action), "error": f"{exc.strerror or exc}"}
    except Exception as exc:  # the caller must always get its JSON line, never a traceback
        code = FAILED
        out = {"ok": False, "action": _show(action), "error": f"internal error: {exc!r}"}
    ctx.audit(f"uid={ctx.caller_uid} action={_show(action)} "
              f"args={' '.join(_show(a) for a in argv[1:MAX_ARGS + 2])} rc={code}"
              + ("" if code == OK else f" error={_show(str(out.get('error', '')))}"))
    return code, out


def main() -> int:
    caller = os.environ.get("PKEXEC_UID", "")
    caller_uid = int(caller) if caller.isdigit() else os.getuid()
    ctx = Context(caller_uid=caller_uid, audit=_syslog,
                  protected_pids=frozenset(_ancestors(os.getpid(), "/proc")))
    if os.geteuid() != 0:
        code, out = REFUSED, {"ok": False, "action": _show(sys.argv[1] if len(sys.argv) > 1
                                                            else ""),
                              "error": "the helper must run as root (through pkexec)"}
    else:
        code, out = run(sys.argv[1:], ctx)
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    sys.stdout.flush()
    return code


def _check_shape(argv: Sequence[str]) -> None:
    if not argv:
        raise HelperError(BAD_ARGS, "no action given")
    if len(argv) > MAX_ARGS + 1:
        raise HelperError(BAD_ARGS, "too many arguments")
    for arg in argv:
        if not isinstance(arg, str) or not arg or len(arg) > MAX_ARG or not ARG_RE.fullmatch(arg):
            raise HelperError(BAD_ARGS, "arguments must be short printable ASCII words")


def _show(text: str) -> str:
    """An argument as it may appear in a log line: escaped, short."""
    return ascii(text[:120])[1:-1] if isinstance(text, str) else "?"


def _syslog(message: str) -> None:
    if os.path.exists("/dev/log"):
        import syslog

        syslog.openlog("camguard-helper", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
        syslog.syslog(syslog.LOG_NOTICE, message)
        syslog.closelog()
    else:
        sys.stderr.write(f"camguard-helper[{os.getpid()}]: {message}\n")


# -- argument checks --------------------------------------------------------------------------
def check_node_path(path: str, ctx: Context) -> str:
    if "\x00" in path or ".." in path.split("/") or "//" in path or not path.startswith("/"):
        raise HelperError(BAD_ARGS, "not an allowed device path")
    if not any(r.fullmatch(path) for r in NODE_PATH_RES) and path not in ctx.allowed_nodes:
        raise HelperError(BAD_ARGS, "not an allowed device path")
    return path


def check_iface(iface: str) -> str:
    if not USB_IFACE_RE.fullmatch(iface):
        raise HelperError(BAD_ARGS, "bad interface id")
    return iface


def check_pid(text: str) -> int:
    if not PID_RE.fullmatch(text):
        raise HelperError(BAD_ARGS, "bad pid")
    return int(text)


def check_ctime(text: str) -> float:
    if not CTIME_RE.fullmatch(text):
        raise HelperError(BAD_ARGS, "bad create time")
    return float(text)


# -- device nodes ------------------------------------------------------------------------------
@contextlib.contextmanager
def _node(path: str) -> Iterator[tuple[int, str]]:
    """An O_PATH fd on the character device at ``path`` and the magic path that reaches it."""
    parent = os.path.dirname(path)
    if os.path.realpath(parent) != parent:
        raise HelperError(BAD_ARGS, "a folder above the node is a symlink")
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise HelperError(NOT_FOUND, "no such device node") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            raise HelperError(BAD_ARGS, "the node is a symlink")
        if not stat.S_ISCHR(st.st_mode):
            raise HelperError(BAD_ARGS, "not a character device")
        # chmod/chown/xattr calls have no fd form for an O_PATH fd; this magic link resolves
        # to the very inode we checked, whatever happens to the name meanwhile (proc(5)).
        yield fd, f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _read_acl(magic: str) -> bytes | None:
    try:
        return os.getxattr(magic, ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
        raise


def _node_state(fd: int, magic: str) -> dict[str, Any]:
    st = os.fstat(fd)
    acl = _read_acl(magic)
    return {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "acl": None if acl is None else acl.hex(), "rdev": st.st_rdev, "ino": st.st_ino}


def _is_blocked(cur: dict[str, Any]) -> bool:
    """Mode and owner as block-node leaves them (an ACL re-added by logind does not count)."""
    return bool(cur["mode"] == 0 and cur["uid"] == 0 and cur["gid"] == 0)


def _apply_block(magic: str) -> None:
    os.chown(magic, 0, 0)
    try:
        os.removexattr(magic, ACL_XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise
    os.chmod(magic, 0)


def _restore(magic: str, saved: dict[str, Any]) -> None:
    os.chown(magic, int(saved["uid"]), int(saved["gid"]))
    os.chmod(magic, int(saved["mode"]) & 0o7777)
    acl = saved.get("acl")
    if acl is not None:
        # Written after chmod: setting the ACL sets the group bits from its mask, which is
        # how the node looked when it was saved (acl(5), "ACL_MASK").
        os.setxattr(magic, ACL_XATTR, bytes.fromhex(str(acl)))
    else:
        try:
            os.removexattr(magic, ACL_XATTR)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                raise


def act_block_node(args: list[str], ctx: Context) -> dict[str, Any]:
    path = check_node_path(args[0], ctx)
    with _node(path) as (fd, magic), _state(ctx) as state:
        cur = _node_state(fd, magic)
        saved = state["nodes"].get(path)
        if saved is None or not _is_blocked(cur) or _other_device(saved, cur):
            # First block, or the node was recreated since (replug) or is another device now:
            # what is there now is what must come back. The same node still at 0000
            # root:root keeps its first saved state.
            saved = cur
            state["nodes"][path] = saved
            _write_state(ctx, state)  # saved before anything changes: a crash loses nothing
        _apply_block(magic)
        after = _node_state(fd, magic)
    return {"path": path, "saved": _public(saved), "now": _public(after),
            "holders": holders_of(path, ctx)}


def act_unblock_node(args: list[str], ctx: Context) -> dict[str, Any]:
    path = check_node_path(args[0], ctx)
    applied = False
    with _state(ctx) as state:
        saved = state["nodes"].get(path)
        if saved is None:
            raise HelperError(NOT_FOUND, "this node was not blocked by camguard")
        try:
            with _node(path) as (fd, magic):
                cur = _node_state(fd, magic)
                note = _other_device(saved, cur)
                if not note and not _is_blocked(cur):
                    note = "the node changed since it was blocked (recreated?); left as it is"
                if not note:
                    _restore(magic, saved)
                    applied = True
                after = _node_state(fd, magic)
        except HelperError as exc:
            if exc.code != NOT_FOUND:
                raise
            note, after = "the node is gone (unplugged?); nothing to restore", None
        del state["nodes"][path]
        _write_state(ctx, state)
    out: dict[str, Any] = {"path": path, "restored": _public(saved), "applied": applied,
                           "now": None if after is None else _public(after)}
    if note:
        out["note"] = note
    return out


def _other_device(saved: dict[str, Any], cur: dict[str, Any]) -> str:
    """Why the node at the saved path is not the device that was blocked, or ``""``.

    A node replaced meanwhile (another camera plugged in, a node made by hand) must not get
    the old one's mode, owner and ACL. State files written before the inode was saved carry
    only the device number; that is still compared.
    """
    rdev, ino = saved.get("rdev"), saved.get("ino")
    if isinstance(rdev, int) and rdev != cur["rdev"]:
        return (f"the node is now a different device ({_devno(cur['rdev'])}, was "
                f"{_devno(rdev)}); its old mode, owner and ACL were not applied; left as it is")
    if isinstance(ino, int) and ino != cur["ino"]:
        return ("the node was recreated since it was blocked (another inode); its old mode, "
                "owner and ACL were not applied; left as it is")
    return ""


def _devno(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def _public(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in ("mode", "uid", "gid", "acl")}


def holders_of(path: str, ctx: Context) -> list[dict[str, Any]]:
    """Processes holding ``path`` open: ``{"pid", "create_time", "name"}`` (not this one)."""
    me = os.getpid()
    found: dict[int, dict[str, Any]] = {}
    try:
        entries = os.listdir(ctx.proc_root)
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        fd_dir = f"{ctx.proc_root}/{entry}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # vanished, or a kernel thread
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target in (path, path + " (deleted)"):
                pid = int(entry)
                info = _proc_stat(pid, ctx.proc_root)
                if info is not None:
                    found[pid] = {"pid": pid, "create_time": info["create_time"],
                                  "name": info["comm"]}
                break
    return [found[p] for p in sorted(found)]


# -- processes ---------------------------------------------------------------------------------
def _boot_time(proc_root: str) -> float:
    with open(f"{proc_root}/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError(errno.EIO, "no btime in /proc/stat")


def _proc_stat(pid: int, proc_root: str) -> dict[str, Any] | None:
    """comm, ppid, flags and create time (computed exactly as psutil does) of ``pid``."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: it ends at the LAST ')' (proc(5)).
    head, _, rest = raw.rpartition(b")")
    comm = head.partition(b"(")[2].decode("utf-8", "replace")
    fields = rest.split()
    try:
        ticks = float(fields[19])  # field 22, starttime, in clock ticks since boot
        ctime = ticks / os.sysconf("SC_CLK_TCK") + _boot_time(proc_root)
        return {"comm": comm, "state": fields[0].decode("ascii", "replace"),
                "ppid": int(fields[1]), "flags": int(fields[6]), "create_time": ctime}
    except (IndexError, ValueError, OSError):
        return None


def _ancestors(pid: int, proc_root: str) -> list[int]:
    out = [pid]
    for _ in range(64):
        info = _proc_stat(out[-1], proc_root)
        if info is None or info["ppid"] <= 0:
            break
        out.append(info["ppid"])
    return out


def _same_process(pid: int, ctime: float, proc_root: str) -> bool:
    info = _proc_stat(pid, proc_root)
    # Half a clock tick: the same formula gives the same float; a reused pid starts later.
    return info is not None and abs(info["create_time"] - ctime) < 0.005


def _wait_exit(pidfd: int, pid: int, seconds: float, proc_root: str) -> bool:
    """True once the process has exited (a pidfd polls readable then; pidfd_open(2))."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if poller.poll(max(0, int(left * 1000))):
            return True
        info = _proc_stat(pid, proc_root)
        if info is None or info["state"] in ("Z", "X"):
            return True
        if left <= 0:
            return False


def act_kill(args: list[str], ctx: Context) -> dict[str, Any]:
    pid = check_pid(args[0])
    ctime = check_ctime(args[1])
    return kill_process(pid, ctime, ctx)


def kill_process(pid: int, ctime: float, ctx: Context) -> dict[str, Any]:
    if pid <= 1 or pid in ctx.protected_pids:
        raise HelperError(REFUSED, "protected process (init, the helper or its caller)")
    info = _proc_stat(pid, ctx.proc_root)
    if info is None:
        raise HelperError(NOT_FOUND, "no such process")
    if info["flags"] & PF_KTHREAD:
        raise HelperError(REFUSED, "a kernel thread cannot be ended")
    leader = _thread_group(pid, ctx.proc_root)
    if leader is not None and leader != pid:
        # /proc/TID answers for a thread although it is not listed; pidfd_open(2) then fails
        # with ENOENT (kernel/pid.c, pidfd_prepare) and a signal would reach the whole process.
        raise HelperError(NOT_FOUND, f"no such process: {pid} is a thread of process {leader}")
    try:
        exe = os.readlink(f"{ctx.proc_root}/{pid}/exe")
    except OSError:
        exe = ""
    if exe in SOUND_SERVER_EXES:
        raise HelperError(REFUSED, "mute instead: killing the sound server would silence the "
                                   "whole desktop")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise HelperError(NOT_FOUND, "no such process") from exc
    except OSError as exc:  # ENOENT (a thread that was not one a moment ago), EMFILE, ENOSYS
        raise HelperError(FAILED, f"cannot pin the process: {exc.strerror or exc}") from exc
    try:
        # The pidfd pins the process; checking the start time after opening it proves the
        # pidfd names the process the caller meant, so no signal can reach a reused pid.
        if not _same_process(pid, ctime, ctx.proc_root):
            raise HelperError(REFUSED, "the pid now belongs to a different process")
        # Only a process that uses a camera or microphone right now: the helper is a kill
        # switch for devices, not a way for its caller to end any root process.
        if not holds_device(pid, ctx):
            raise HelperError(REFUSED, "it holds no camera or microphone node: the helper only "
                                       "ends processes that use one")
        signalled = "SIGTERM"
        if not _signal(pidfd, signal.SIGTERM):
            return {"pid": pid, "signal": None, "note": "already exited"}
        if not _wait_exit(pidfd, pid, ctx.grace, ctx.proc_root):
            signalled = "SIGKILL"
            _signal(pidfd, signal.SIGKILL)
            if not _wait_exit(pidfd, pid, 5.0, ctx.proc_root):
                raise HelperError(FAILED, "still running after SIGKILL (stuck in the kernel?)")
        return {"pid": pid, "signal": signalled}
    finally:
        os.close(pidfd)


def _thread_group(pid: int, proc_root: str) -> int | None:
    """The process (thread group) ``pid`` belongs to, from ``Tgid:`` in /proc/PID/status."""
    try:
        with open(f"{proc_root}/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def holds_device(pid: int, ctx: Context) -> bool:
    """True when ``pid`` holds open a character device at a path the helper accepts."""
    fd_dir = f"{ctx.proc_root}/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        path = target.removesuffix(" (deleted)")
        try:
            check_node_path(path, ctx)
            # Through the magic link: the very file the process holds, whatever its name.
            held = os.stat(f"{fd_dir}/{fd}")
        except (HelperError, OSError):
            continue
        if stat.S_ISCHR(held.st_mode):
            return True
    return False


def _signal(pidfd: int, sig: int) -> bool:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    return True


# -- USB and udev ------------------------------------------------------------------------------
def act_unbind_usb(args: list[str], ctx: Context) -> dict[str, Any]:
    iface = check_iface(args[0])
    driver = os.path.join(ctx.usb_devices_dir, iface, "driver")
    if not os.path.exists(os.path.join(ctx.usb_devices_dir, iface)):
        raise HelperError(NOT_FOUND, "no such USB interface")
    if os.path.basename(os.path.realpath(driver)) != os.path.basename(ctx.uvc_driver_dir):
        raise HelperError(NOT_FOUND, "the interface is not bound to uvcvideo")
    with _state(ctx) as state:
        if iface not in state["usb"]:
            state["usb"].append(iface)
            _write_state(ctx, state)
        _write_sysfs(os.path.join(ctx.uvc_driver_dir, "unbind"), iface)
    return {"iface": iface}


def act_bind_usb(args: list[str], ctx: Context) -> dict[str, Any]:
    iface = check_iface(args[0])
    if not os.path.exists(os.path.join(ctx.usb_devices_dir, iface)):
        raise HelperError(NOT_FOUND, "no such USB interface")
    with _state(ctx) as state:
        _write_sysfs(os.path.join(ctx.uvc_driver_dir, "bind"), iface)
        if iface in state["usb"]:
            state["usb"].remove(iface)
            _write_state(ctx, state)
    return {"iface": iface}


def _write_sysfs(path: str, value: str) -> None:
    # Fixed sysfs attribute; O_NOFOLLOW so the write can never land anywhere else.
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def act_install_udev_rule(_args: list[str], ctx: Context) -> dict[str, Any]:
    path = os.path.join(ctx.rules_dir, UDEV_RULE_NAME)
    _write_root_file(path, UDEV_RULE.encode("ascii"), 0o644)
    return {"path": path, **_reload_udev(ctx)}


def act_remove_udev_rule(_args: list[str], ctx: Context) -> dict[str, Any]:
    path = os.path.join(ctx.rules_dir, UDEV_RULE_NAME)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"path": path, "note": "the rule was not installed", "reloaded": False}
    if not stat.S_ISREG(st.st_mode):
        raise HelperError(REFUSED, "the rule path is not a regular file; left alone")
    os.unlink(path)
    return {"path": path, **_reload_udev(ctx)}


def _reload_udev(ctx: Context) -> dict[str, Any]:
    udevadm = next((p for p in ctx.udevadm_candidates if os.path.exists(p)), None)
    if not ctx.run_udevadm:
        return {"reloaded": False, "note": "udev not reloaded (asked not to)"}
    if udevadm is None:
        return {"reloaded": False, "note": "udevadm not found: the rule applies from the next "
                                           "device event or reboot"}
    problems = []
    for cmd in ([udevadm, "control", "--reload"], [udevadm, "trigger", "-s", "video4linux"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=20, check=False,
                                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{cmd[1]}: {exc}")
            continue
        if proc.returncode != 0:
            problems.append(f"{cmd[1]}: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}")
    out: dict[str, Any] = {"reloaded": not problems}
    if problems:
        out["note"] = "udev not reloaded (" + "; ".join(problems) + ")"
    return out


def _write_root_file(path: str, data: bytes, mode: int) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def act_status(_args: list[str], ctx: Context) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    usb: list[str] = []
    if os.path.isdir(os.path.dirname(ctx.state_file)):  # a status never creates anything
        with _state(ctx) as state:
            nodes = {p: _public(s) for p, s in state["nodes"].items()}
            usb = list(state["usb"])
    rule = os.path.join(ctx.rules_dir, UDEV_RULE_NAME)
    return {"version": VERSION, "euid": os.geteuid(), "caller_uid": ctx.caller_uid,
            "nodes": nodes, "usb": usb, "udev_rule": os.path.exists(rule)}


# -- state file --------------------------------------------------------------------------------
@contextlib.contextmanager
def _state(ctx: Context) -> Iterator[dict[str, Any]]:
    """The saved node states, locked for the duration (another helper call may race)."""
    folder = os.path.dirname(ctx.state_file)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if (not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid()
            or stat.S_IMODE(st.st_mode) & 0o022):
        raise HelperError(REFUSED, "unsafe state folder (not ours, or writable by others)")
    lock = os.open(ctx.state_file + ".lock",
                   os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _read_state(ctx)
    finally:
        os.close(lock)


def _read_state(ctx: Context) -> dict[str, Any]:
    empty: dict[str, Any] = {"version": VERSION, "nodes": {}, "usb": []}
    try:
        fd = os.open(ctx.state_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return empty
    with os.fdopen(fd, "rb") as f:
        raw = f.read(1 << 20)
    try:
        doc = json.loads(raw)
        if not (isinstance(doc, dict) and isinstance(doc.get("nodes"), dict)
                and isinstance(doc.get("usb"), list)):
            raise ValueError("bad shape")
        for saved in doc["nodes"].values():
            for key in ("mode", "uid", "gid"):
                if not isinstance(saved.get(key), int):
                    raise ValueError("bad node entry")
        return doc
    except (ValueError, AttributeError):
        # Keep the bad file for a person to look at; start empty rather than refuse forever.
        os.replace(ctx.state_file, ctx.state_file + f".corrupt-{int(time.time())}")
        return empty


def _write_state(ctx: Context, state: dict[str, Any]) -> None:
    _write_root_file(ctx.state_file, (json.dumps(state, sort_keys=True) + "\n").encode(), 0o600)


ACTIONS: dict[str, tuple[int, Callable[[list[str], Context], dict[str, Any]]]] = {
    "status": (0, act_status),
    "block-node": (1, act_block_node),
    "unblock-node": (1, act_unblock_node),
    "kill": (2, act_kill),
    "unbind-usb": (1, act_unbind_usb),
    "bind-usb": (1, act_bind_usb),
    "install-udev-rule": (0, act_install_udev_rule),
    "remove-udev-rule": (0, act_remove_udev_rule),
}


if __name__ == "__main__":
    sys.exit(main())
