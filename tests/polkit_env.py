"""Run pkexec against a real, private polkitd: the helper's authorization as installed.

pkexec is setuid root, so GLib ignores ``DBUS_SYSTEM_BUS_ADDRESS`` for it (gdbusaddress.c,
``g_check_setuid``): it always asks the system bus at ``/run/dbus/system_bus_socket``, and
polkitd reads its actions and rules from fixed folders. So the whole scene runs in a private
mount namespace (``unshare --mount``), where tmpfs mounts hold a private system bus, our
policy file, the caller's rule (``50-camguard.rules``) and the helper at
``/usr/libexec/camguard/camguard-helper``; nothing of the machine's is changed. Run as a
script (root, inside that namespace) with one JSON argument; it prints one JSON object:
what each pkexec call answered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

BUS = "/run/dbus/system_bus_socket"
HELPER = "/usr/libexec/camguard/camguard-helper"
ACTIONS = "/usr/share/polkit-1/actions"
RULES = "/etc/polkit-1/rules.d"
POLKITD = "/usr/lib/polkit-1/polkitd"

def _tmpfs(path: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", path], check=True)


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _pkaction_ok(action: str = "org.camguard.helper.camera") -> bool:
    return subprocess.run(["pkaction", "--action-id", action],
                          capture_output=True, check=False).returncode == 0


# pkexec's own action (org.freedesktop.policykit.exec), for a scene without the helper:
# read before the actions folder is covered, written into the private one.
PKEXEC_POLICY = "org.freedesktop.policykit.policy"


# A private /dev (optional): what processes here need, plus stand-in device nodes (the null
# driver's 1:3) at the installed helper's own paths, /dev/videoN and /dev/snd/pcmC0D0c.
DEV_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
             "urandom": (1, 9), "tty": (5, 0)}


def _private_dev(standins: list[str]) -> None:
    _tmpfs("/dev")
    for name, (major, minor) in DEV_NODES.items():
        os.mknod(f"/dev/{name}", 0o666 | 0o020000, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)  # noqa: S103 - as devtmpfs has them
    os.mkdir("/dev/shm", 0o1777)
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", f"/dev/{name}")
    os.symlink("/proc/self/fd", "/dev/fd")
    os.mkdir("/dev/snd", 0o755)
    for name in standins:
        os.mknod(f"/dev/{name}", 0o666 | 0o020000, os.makedev(1, 3))
        os.chmod(f"/dev/{name}", 0o666)  # noqa: S103 - a camera any seat user may open


def _started(spec: dict[str, Any]) -> subprocess.Popen[str]:
    """A process that runs during the calls; it prints one line once it is ready."""
    proc = subprocess.Popen(spec["argv"], env=spec["env"], cwd="/", text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != spec["ready"]:
        raise RuntimeError(f"{spec['argv'][:3]} did not start: {line!r}")
    return proc


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    with open(os.path.join(ACTIONS, PKEXEC_POLICY), "rb") as f:
        pkexec_policy = f.read()
    for path in ("/run/dbus", ACTIONS, RULES, "/usr/libexec"):
        _tmpfs(path)
    if "dev" in cfg:
        _private_dev(cfg["dev"])
        # The installed helper keeps what it changed in /var/lib/camguard.
        _tmpfs("/var/lib")
        os.mkdir("/var/lib/polkit-1", 0o700)
    with open(os.path.join(ACTIONS, PKEXEC_POLICY), "wb") as f:
        f.write(pkexec_policy)
    with open(os.path.join(RULES, "50-camguard.rules"), "w", encoding="ascii") as f:
        f.write(cfg["rule"])
    if cfg.get("helper"):  # None: the helper is not installed (its installer's tests)
        shutil.copy(cfg["policy"], os.path.join(ACTIONS, "org.camguard.helper.policy"))
        os.mkdir("/usr/libexec/camguard", 0o755)
        shutil.copy(cfg["helper"], HELPER)
        os.chmod(HELPER, 0o755)  # noqa: S103 - root-owned 0755, as the package installs it
    log = open(cfg["log"], "ab")  # noqa: SIM115 - kept open for the daemons' lifetime
    daemons = [subprocess.Popen(["dbus-daemon", "--system", "--nofork", "--nopidfile"],
                                stdout=log, stderr=log)]
    try:
        _wait(lambda: os.path.exists(BUS), 15, "the system bus")
        daemons.append(subprocess.Popen([POLKITD, "--no-debug"], stdout=log, stderr=log))
        action = "org.camguard.helper.camera" if cfg.get("helper") \
            else "org.freedesktop.policykit.exec"
        _wait(lambda: _pkaction_ok(action), 20, f"polkitd to know {action}")
        answers = []
        daemons += [_started(spec) for spec in cfg.get("background", [])]
        pids = {f"{{bg{i}}}": str(d.pid) for i, d in enumerate(daemons[2:])}
        for call in cfg["calls"]:
            argv = [pids.get(a, a) for a in call["argv"]]  # "{bg0}": that process's pid
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                                  check=False, env=call["env"], cwd="/")
            answers.append({"rc": proc.returncode, "stdout": proc.stdout,
                            "stderr": proc.stderr})
        return {"answers": answers,
                "background": [d.poll() for d in daemons[2:]]}
    finally:
        for d in reversed(daemons):
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(10)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait(10)
        log.close()


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(json.loads(sys.argv[1]))) + "\n")
