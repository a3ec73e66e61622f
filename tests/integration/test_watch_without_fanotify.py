"""Root without CAP_SYS_ADMIN (a confined service, a container) gets no fanotify group; the
device-node source then watches with inotify and /proc alone and still names the holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import realenv
from tests.conftest import Holder, make_standin, need_root, need_tools

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
WATCH = """
import json, sys
from camguard.platform.linux.fanotify import open_reader
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.watching import started, stopped, watching
print(json.dumps({"fanotify": open_reader() is not None}), flush=True)
src = ProcfsSource([sys.argv[1]], [], describer=ProcessDescriber())
with watching([src]) as (monitor, rec):
    print("ready", flush=True)
    pid = int(sys.stdin.readline())
    ev = rec.wait_for(started(pid), timeout=20)
    print(json.dumps({"started": ev.usage.process.pid, "via": ev.usage.via}), flush=True)
    sys.stdin.readline()
    rec.wait_for(stopped(pid), timeout=20)
    print(json.dumps({"stopped": pid}), flush=True)
"""


def test_without_cap_sys_admin_inotify_and_proc_still_name_the_holder(
        devdir: Path, holders: list[Holder]) -> None:
    need_root()
    need_tools(["setpriv"])
    cam = make_standin(devdir / "video0")
    watcher = subprocess.Popen(
        realenv.bound_to_tests(["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-all",
                                sys.executable, "-c", WATCH, f"{devdir}/video*"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert watcher.stdout is not None and watcher.stdin is not None
        first = watcher.stdout.readline()
        assert json.loads(first or "null") == {"fanotify": False}
        assert watcher.stdout.readline() == "ready\n"
        h = Holder([cam])
        holders.append(h)
        watcher.stdin.write(f"{h.pid}\n")
        watcher.stdin.flush()
        assert json.loads(watcher.stdout.readline()) == {"started": h.pid, "via": "fd"}
        h.close()
        watcher.stdin.write("\n")
        watcher.stdin.flush()
        assert json.loads(watcher.stdout.readline()) == {"stopped": h.pid}
        assert watcher.wait(30) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
        watcher.wait(10)
