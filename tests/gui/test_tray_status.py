"""``camguard status`` and ``status --json`` answered by the running tray (cli/tray_status.py,
issue 16): the real ``camguard`` tray on Xvfb sees a real child open a stand-in camera; the
real command, with no service and no options of its own, prints the tray's document (or, as
text, the state read from it), which names the child as one look does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import realenv
from tests.conftest import Holder, make_standin
from tests.gui.test_tray_launch import REPO, tray_env


def status(env: dict[str, str], *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "camguard", "status", "--json", *extra],
                         env=env, capture_output=True, text=True, timeout=60, cwd=REPO,
                         check=True)
    doc = json.loads(out.stdout)
    assert isinstance(doc, dict)
    return doc


def status_text(env: dict[str, str], *extra: str) -> str:
    return subprocess.run([sys.executable, "-m", "camguard", "status", *extra], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          check=True).stdout


def users(doc: dict[str, Any]) -> dict[str, list[int]]:
    return {d["id"]: sorted(u["pid"] for u in d["users"]) for d in doc["devices"]}


def test_status_is_answered_by_the_running_tray_with_the_one_document(
        x_session: realenv.XSession, tmp_path: Path, devdir: Path,
        holders: list[Holder]) -> None:
    env = tray_env(tmp_path, x_session.env)
    node = make_standin(devdir / "video0")
    globs = ["--camera-glob", str(devdir / "video*"), "--mic-glob",
             str(devdir / "snd" / "pcmC*D*c")]
    log = tmp_path / "tray.log"

    def answered() -> int:
        return len(re.findall(r"answered a status request \((\d+) bytes\)",
                              log.read_text(errors="replace")))

    with log.open("w") as out:
        tray = subprocess.Popen([sys.executable, "-m", "camguard", "-v", "tray", *globs],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        realenv.wait_until(lambda: "tray ready" in log.read_text(errors="replace"), 60,
                           "the tray")
        child = Holder([node])
        holders.append(child)
        realenv.wait_until(lambda: f"alert shown: pid={child.pid}" in
                           log.read_text(errors="replace"), 30, "the tray to see the child")
        asked = status(env)  # no options: the running tray answers
        assert answered() == 1
        looked = status(env, *globs)  # options of its own: it looks itself
        assert answered() == 1
        assert users(asked) == users(looked) == {str(node): [child.pid]}
        [mine] = [u for d in asked["devices"] for u in d["users"]]
        assert mine["pid"] == child.pid and mine["since"] and mine["exe"]
        assert asked["degraded"] == looked["degraded"] == []
        assert {c["sensor"] for c in asked["coverage"]} == {c["sensor"] for c in
                                                            looked["coverage"]}
        assert set(asked) == set(looked)  # the same document, key for key
        # The text form is answered by the tray too (the same as `--json`), read into
        # the state it prints as the service's answer is; with options it looks itself.
        told = status_text(env)
        assert answered() == 2
        assert str(node) in told and f"(pid {child.pid}," in told
        assert status_text(env, *globs).count(f"(pid {child.pid},") == 1
        assert answered() == 2
    finally:
        tray.terminate()
        tray.wait(30)
    # No tray: the command looks itself (the socket file left behind is not answered).
    alone = status(env)
    assert answered() == 2
    # Its own look, with the default globs: the stand-in node is not among them.
    assert child.pid not in [pid for pids in users(alone).values() for pid in pids]
