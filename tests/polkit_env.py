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


def _pkaction_ok() -> bool:
    return subprocess.run(["pkaction", "--action-id", "org.camguard.helper.camera"],
                          capture_output=True, check=False).returncode == 0


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    for path in ("/run/dbus", ACTIONS, RULES, "/usr/libexec"):
        _tmpfs(path)
    shutil.copy(cfg["policy"], os.path.join(ACTIONS, "org.camguard.helper.policy"))
    with open(os.path.join(RULES, "50-camguard.rules"), "w", encoding="ascii") as f:
        f.write(cfg["rule"])
    os.mkdir("/usr/libexec/camguard", 0o755)
    shutil.copy(cfg["helper"], HELPER)
    os.chmod(HELPER, 0o755)  # noqa: S103 - root-owned 0755, as the package installs it
    log = open(cfg["log"], "ab")  # noqa: SIM115 - kept open for the daemons' lifetime
    daemons = [subprocess.Popen(["dbus-daemon", "--system", "--nofork", "--nopidfile"],
                                stdout=log, stderr=log)]
    try:
        _wait(lambda: os.path.exists(BUS), 15, "the system bus")
        daemons.append(subprocess.Popen([POLKITD, "--no-debug"], stdout=log, stderr=log))
        _wait(_pkaction_ok, 20, "polkitd to know the camguard action")
        answers = []
        for call in cfg["calls"]:
            proc = subprocess.run(call["argv"], capture_output=True, text=True, timeout=60,
                                  check=False, env=call["env"], cwd="/")
            answers.append({"rc": proc.returncode, "stdout": proc.stdout,
                            "stderr": proc.stderr})
        return {"answers": answers}
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
