"""The service's microphone switch: every logged-in account's sound server (issue 17).

The root service has no sound server of its own; each account's PulseAudio or PipeWire
(pipewire-pulse) listens at ``/run/user/UID/pulse/native``. For each such account the
service runs a short child *as that account* (its uid, gid and groups; its HOME and
XDG_RUNTIME_DIR) that mutes or restores through the same MicControl a user's camguard uses.

Why a child as the account and not root's own connection with the account's cookie: the
server is the account's program, so whatever it answers is parsed by a process with that
account's rights only, never by root; and the server admits the child as its own user
(PulseAudio's credential check, pipewire-pulse's socket), so no cookie is read by root.
The tray is no answer either: ``panic`` must work when no tray runs.

Each block keeps, per account, what that account's microphones were before (restored
exactly, as a user's own block does). A microphone that appears during the block is not
muted (no watcher runs for another account); the block's note says so.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import selectors
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal
from camguard.store import paths

log = logging.getLogger(__name__)

CHILD_TIMEOUT = 10.0  # per account: a server that does not answer holds the block no longer
# The child runs as the account, which may ptrace it and make it print anything: root reads
# at most this much of what it says.
CHILD_OUTPUT_LIMIT = 64 * 1024
COMMAND = "service-mic"  # the hidden camguard subcommand the child runs (cli/service.py)


def accounts_with_sound(root: Path | None = None) -> Iterator[tuple[int, Path]]:
    """``(uid, socket)`` of each account whose runtime folder (owned by that uid, not
    writable by others) holds a sound server socket."""
    root = root if root is not None else paths.user_runtime_root()
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        uid = int(name)
        folder = root / name
        sock = folder / "pulse" / "native"
        try:
            st = os.stat(folder, follow_symlinks=False)
            sst = os.stat(sock, follow_symlinks=False)
        except OSError:
            continue
        if (uid == 0 or st.st_uid != uid or not stat.S_ISDIR(st.st_mode)
                or st.st_mode & stat.S_IWOTH or not stat.S_ISSOCK(sst.st_mode)):
            continue
        yield uid, sock


SYSTEM_PYTHON = "/usr/bin/python3"


def _open_to_all(path: str) -> bool:
    """Every folder on the way searchable, and the file readable, by any account."""
    real = Path(os.path.realpath(path))
    try:
        if not os.stat(real).st_mode & stat.S_IROTH:
            return False
        return all(os.stat(d).st_mode & stat.S_IXOTH for d in real.parents)
    except OSError:
        return False


def _interpreter() -> tuple[str, list[str]]:
    """The python the child runs and what goes on its PYTHONPATH. Ours when any account
    may run it (a package, /opt/camguard); else (root's private pyenv or venv) the system
    python of the same version with our packages' folders."""
    package_parent = str(Path(__file__).resolve().parents[3])  # the camguard we run
    if _open_to_all(sys.executable) and _open_to_all(os.path.join(sys.base_prefix, "lib")):
        return sys.executable, [package_parent]
    import site
    import sysconfig

    return SYSTEM_PYTHON, [package_parent, sysconfig.get_paths()["purelib"],
                           *site.getsitepackages()]


def _child(entry: pwd.struct_passwd, sock: Path) -> tuple[list[str], dict[str, str]]:
    return child_command(entry, sock.parent.parent, COMMAND,
                         {"PULSE_SERVER": f"unix:{sock}"})


def child_command(entry: pwd.struct_passwd, runtime: Path, command: str,
                  extra: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a hidden camguard ``command`` run as ``entry``'s
    account (its HOME and XDG_RUNTIME_DIR ``runtime``, plus ``extra``)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": entry.pw_dir,
           "USER": entry.pw_name, "XDG_RUNTIME_DIR": str(runtime),
           "PYTHONDONTWRITEBYTECODE": "1", **extra}
    # A service measured by coverage.py (`make coverage`) has its children measured too; for
    # a service started without it this adds nothing.
    env.update({k: v for k, v in os.environ.items() if k == "COVERAGE_PROCESS_CONFIG"})
    if getattr(sys, "frozen", False):  # the bundle: its executable is the camguard command
        return [sys.executable, command], env
    python, path = _interpreter()
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    # -s: not the account's own site-packages (its ~/.local is not camguard)
    return [python, "-s", "-m", "camguard", command], env


def run_as(uid: int, sock: Path, op: str, state: Any = None) -> dict[str, Any]:
    """Run the child for ``op`` ("off" or "on") as ``uid``; its answer, or why it failed."""
    try:
        entry = pwd.getpwuid(uid)
        groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    except (KeyError, OSError) as exc:
        return {"ok": False, "message": f"uid {uid}: no such account ({exc})"}
    try:
        argv, env = _child(entry, sock)
        proc = subprocess.Popen(
            [*argv, op], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, user=uid, group=entry.pw_gid, extra_groups=groups,
            env=env, cwd="/")
        out, err = bounded_output(proc, json.dumps(state).encode(), CHILD_OUTPUT_LIMIT,
                                  CHILD_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"ok": False, "message": f"cannot reach the sound server of "
                                        f"{literal(entry.pw_name, 40)}: {exc}"}
    try:
        answer = json.loads(out.decode("utf-8", "replace").strip().splitlines()[-1])
        if not isinstance(answer, dict):
            raise ValueError("not an object")
    except (ValueError, IndexError, RecursionError):
        why = (err.decode("utf-8", "replace").strip().splitlines()
               or [f"exit status {proc.returncode}"])[-1]
        return {"ok": False, "message": literal(why, 300)}
    answer["user"] = entry.pw_name
    return answer


def bounded_output(proc: subprocess.Popen[bytes], data: bytes, limit: int,
                   timeout: float) -> tuple[bytes, bytes]:
    """Give ``proc`` ``data`` on stdin, then read its stdout and stderr: at most ``limit``
    bytes of each and for at most ``timeout`` seconds; past either it is killed. Waits for
    it to end; raises subprocess.TimeoutExpired when it ran out of time."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None  # noqa: S101
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:
        pass  # it did not read its input: its answer (or exit) says the rest
    got = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    deadline = time.monotonic() + timeout
    over = False
    with selectors.DefaultSelector() as sel:
        for stream in got:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map() and not over:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                chunk = os.read(key.fd, 65536)
                buf = got[key.fileobj]  # type: ignore[index]
                if not chunk:
                    sel.unregister(key.fileobj)
                elif len(buf) + len(chunk) > limit:
                    over = True
                else:
                    buf += chunk
    timed_out = False
    if not over:
        try:  # its output is closed; it must also end in time
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if over or timed_out:
        proc.kill()
    proc.wait()
    for stream in got:
        stream.close()
    if timed_out and not over:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    if over:
        return b"", f"said more than {limit} bytes; stopped".encode()
    return bytes(got[proc.stdout]), bytes(got[proc.stderr])


class EachUserMicSwitch:
    """A :class:`~camguard.platform.linux.block.MicSwitch` over every logged-in account's
    sound server (module note)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    def mute_all(self) -> tuple[ActionResult, str]:
        saved: dict[str, Any] = {}
        said: list[str] = []
        failed: list[str] = []
        for uid, sock in accounts_with_sound(self._root):
            answer = run_as(uid, sock, "off")
            who = literal(str(answer.get("user", uid)), 40)
            if answer.get("ok") is True:
                saved[str(uid)] = answer.get("state")
                said.append(f"{who}: {literal(str(answer.get('message')), 300)}")
            else:
                failed.append(f"{who}: {literal(str(answer.get('message')), 300)}")
        data = json.dumps(saved, sort_keys=True)
        if not saved and not failed:  # nothing to mute: not a failure of the block
            return ActionResult(Outcome.NOT_FOUND, "no logged-in account has a sound server "
                                "running: no microphone to mute there"), data
        if not saved:
            return ActionResult(Outcome.FAILED, "microphones not muted: "
                                + "; ".join(failed)), data
        text = "; ".join(said)
        if failed:
            text += "; NOT muted: " + "; ".join(failed)
        text += " (a microphone plugged in during the block is not muted)"
        return ActionResult(Outcome.DONE, text), data

    def restore(self, data: str) -> ActionResult:
        try:
            saved = json.loads(data)
        except ValueError:
            saved = {}
        if not isinstance(saved, dict):
            saved = {}
        sockets = dict(accounts_with_sound(self._root))
        said: list[str] = []
        failed: list[str] = []
        for key, state in saved.items():
            uid = int(key) if str(key).isdigit() else -1
            sock = sockets.get(uid)
            if sock is None:
                failed.append(f"uid {literal(str(key), 20)}: its sound server is gone "
                              "(nothing to switch back on)")
                continue
            answer = run_as(uid, sock, "on", state)
            who = literal(str(answer.get("user", uid)), 40)
            (said if answer.get("ok") is True else failed).append(
                f"{who}: {literal(str(answer.get('message')), 300)}")
        if failed and not said:
            return ActionResult(Outcome.FAILED, "; ".join(failed))
        return ActionResult(Outcome.DONE, "; ".join(said + failed) or "nothing was muted")


def child_main(op: str) -> int:
    """The child (run as the account): mute or restore its sound server's microphones;
    one JSON line on stdout."""
    from camguard.platform.linux.mic_control import MicControl

    server = os.environ.get("PULSE_SERVER")
    try:
        if op == "off":
            mc = MicControl(server)
            try:
                r = mc.all_off()
                state = mc.state_dict()
            finally:
                mc.close()
            message = r.message.split("; all-off stays armed")[0]
            print(json.dumps({"ok": r.ok, "message": message, "state": state}))
            return 0 if r.ok else 1
        state_in = json.loads(sys.stdin.read() or "null")
        mc = MicControl.from_state(state_in, server)
        try:
            r = mc.all_on()
        finally:
            mc.close()
        print(json.dumps({"ok": r.ok, "message": r.message}))
        return 0 if r.ok else 1
    except Exception as exc:  # one line for the service, whatever went wrong
        print(json.dumps({"ok": False, "message": f"{type(exc).__name__}: {exc}"}))
        return 1
