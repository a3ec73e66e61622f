"""One command, two sides: the same command run by root against a real root service
(``--socket``) and locally on the service's own folders prints the same lines (app/guard.py
chooses the side once; one printer prints both); and ``rules list`` says what the service
enforces."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from camguard.core.rules import make_rule
from camguard.store.rules import RuleFile
from tests import realenv
from tests.service_env import (
    ROOT,
    Accounts,
    Box,
    Service,
    UserHolder,
    camguard_as,
    pids_in_status,
)

pytestmark = pytest.mark.real


def camguard_root(b: Box, *args: str, served: bool) -> subprocess.CompletedProcess[str]:
    """``camguard ARGS`` as root in the service's folders: through its socket, or locally
    (``CAMGUARD_SOCKET`` then names a socket where nothing answers)."""
    env = {**b.env(), "CAMGUARD_POLICY_FILE": str(b.policy),
           "CAMGUARD_SOCKET": str(b.root / "run" / "nothing.sock")}
    where = ["--socket", str(b.sock)] if served else []
    globs = ["--camera-glob", str(b.dev / "video*"), "--mic-glob",
             str(b.dev / "snd" / "pcmC*D*c")]
    return subprocess.run([sys.executable, "-m", "camguard", *args, *globs, *where],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
                          check=False)


def both(b: Box, *args: str) -> tuple[str, str]:
    served = camguard_root(b, *args, served=True)
    local = camguard_root(b, *args, served=False)
    assert served.returncode == local.returncode == 0, (served, local)
    return served.stdout, local.stdout


def test_status_history_and_blocks_read_the_same_from_either_side(
        sandbox: Box, accounts: Accounts) -> None:
    alice = accounts.user()
    # The service watches device nodes only; so does this program here (no sound server).
    sandbox.config.mkdir(mode=0o700, exist_ok=True)
    (sandbox.config / "settings.json").write_text(
        '{"detection": {"watch_sound_server": false}}\n')
    svc = Service(sandbox).start()
    holder = UserHolder(sandbox, alice, [sandbox.node("video0")])
    realenv.wait_until(lambda: holder.pid in pids_in_status(svc.client.status()), 20,
                       "the service to see the holder")

    served, local = both(sandbox, "status")
    assert f"pid {holder.pid}, user {alice.name}" in served
    assert served == local
    # What camguard can see here, in the service's answer as in a local look.
    served, local = both(sandbox, "status", "--json")
    seen = json.loads(served)["coverage"]
    assert seen == json.loads(local)["coverage"], (served, local)
    assert {"sensor": "camera", "source": "procfs", "state": "watching",
            "reason": "device nodes: inotify, fanotify and /proc"} in seen, seen

    holder.end()
    realenv.wait_until(lambda: not pids_in_status(svc.client.status()), 20,
                       "the service to see the holder go")
    served, local = both(sandbox, "history")
    assert alice.name in served and served.count("\n") >= 2, served
    assert served == local  # local time on both sides, the same rows

    # Open-ended: a timed block's "left" moves between the two looks.
    res = camguard_root(sandbox, "block", "camera", served=True)
    assert res.returncode == 0, res.stderr
    assert "camera: off since " in res.stdout, res.stdout  # as a local block says it
    served, local = both(sandbox, "blocks")
    assert "camera      off since " in served and " closed (0000 root:root)" in served, served
    assert served == local
    res = camguard_root(sandbox, "unblock", "camera", served=True)
    assert res.returncode == 0, res.stderr
    assert both(sandbox, "blocks") == ("nothing is blocked\n", "nothing is blocked\n")


def test_rules_list_says_what_the_service_enforces(sandbox: Box, accounts: Accounts) -> None:
    kid = accounts.user()
    sandbox.config.mkdir(mode=0o700, exist_ok=True)
    # The service's own rules file (root's); this user has no rules of their own.
    RuleFile(sandbox.config / "rules.json").save(
        [make_rule("kill", kind="camera", user=kid.name, label="no camera for the kid")])
    Service(sandbox).start()
    res = camguard_as(sandbox, kid, "rules", "list")
    assert res.returncode == 0, res.stderr
    mine, _, served = res.stdout.partition(f"enforced by the camguard service ({sandbox.sock})")
    assert "no rules" in mine and "no camera for the kid" not in mine, res.stdout
    assert served.startswith(": mode ask") and '"no camera for the kid"' in served, res.stdout
    res = camguard_as(sandbox, kid, "rules", "list", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["rules"] == [] and doc["service"]["mode"] == "ask"
    assert [r["label"] for r in doc["service"]["rules"]] == ["no camera for the kid"]
