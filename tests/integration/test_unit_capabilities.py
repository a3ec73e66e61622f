"""Detection under the shipped systemd unit's own capability bounding set (as root).

The unit's ``CapabilityBoundingSet`` is what the service really holds; a capability missing
there silently turns fanotify off and 1-5 ms opens are then missed. So the set is read from
the unit file itself and ``camguard watch`` runs with exactly it (setpriv).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.conftest import make_standin, need, need_root

UNIT = Path(__file__).resolve().parents[2] / "resources" / "systemd" / "camguard.service"
REPO = Path(__file__).resolve().parents[2]

BLINKS = 10
# Opens the node, holds it 1-5 ms, closes it; one blink per line the test writes.
BLINKER = """
import os, sys, time
for i in range(int(sys.argv[2])):
    sys.stdin.readline()
    fd = os.open(sys.argv[1], os.O_RDONLY)
    time.sleep(0.001 + 0.004 * i / max(1, int(sys.argv[2]) - 1))
    os.close(fd)
    print("blinked", flush=True)
sys.stdin.readline()
"""


def bounding_set() -> list[str]:
    """The unit's CapabilityBoundingSet as setpriv names (``sys_admin``, ...)."""
    caps: list[str] = []
    for line in UNIT.read_text().splitlines():
        if line.startswith("CapabilityBoundingSet="):
            caps += [c.lower().removeprefix("cap_") for c in line.partition("=")[2].split()]
    assert caps, "the unit sets no CapabilityBoundingSet"
    return caps


def test_the_unit_keeps_what_fanotify_needs() -> None:
    assert "sys_admin" in bounding_set()


class Lines:
    """A reader thread over a pipe, so the test waits on lines with a deadline."""

    def __init__(self, stream: Any) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self.q.put(line)
        self.q.put("")

    def next(self, timeout: float = 20) -> str:
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None


def test_short_opens_are_seen_under_the_units_bounding_set(devdir: Path, tmp_path: Path
                                                          ) -> None:
    need_root()
    need(Path("/usr/bin/setpriv").exists(), "setpriv (util-linux)")
    cam = make_standin(devdir / "video0")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CAMGUARD_CONFIG_DIR": str(tmp_path / "c"),
           "CAMGUARD_DATA_DIR": str(tmp_path / "d"), "CAMGUARD_STATE_DIR": str(tmp_path / "s"),
           "PULSE_SERVER": f"unix:{tmp_path}/no-such-socket"}
    caps = ",".join(["-all", *(f"+{c}" for c in bounding_set())])
    watch = subprocess.Popen(
        ["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", sys.executable, "-m",
         "camguard", "watch", "--json", "-v", "--camera-glob", f"{devdir}/video*",
         "--mic-glob", f"{devdir}/snd/pcmC*D*c"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    blinker = subprocess.Popen([sys.executable, "-c", BLINKER, str(cam), str(BLINKS)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None and watch.stderr is not None
        assert blinker.stdin is not None and blinker.stdout is not None
        out, err = Lines(watch.stdout), Lines(watch.stderr)
        # The log says which mechanism runs before the first look ends.
        said = []
        while not any("fanotify" in ln for ln in said):
            said.append(err.next())
            assert said[-1], "watch ended: " + "".join(said)
        assert any("fanotify in use" in ln for ln in said), "".join(said)
        assert json.loads(out.next())["event"] == "degraded"  # no sound server: running
        seen = []
        for _ in range(BLINKS):
            blinker.stdin.write("\n")
            blinker.stdin.flush()
            assert blinker.stdout.readline() == "blinked\n"
            # Each blink is one session: started, then stopped, for the blinker's pid.
            got = [json.loads(out.next()) for _ in range(2)]
            assert [(e["event"], e["pid"], e["device"]) for e in got] == [
                ("started", blinker.pid, str(cam)), ("stopped", blinker.pid, str(cam))]
            seen.append(got[0]["via"])
        assert set(seen) <= {"fanotify", "fd"}
    finally:
        for p in (blinker, watch):
            p.kill()
            p.wait()
