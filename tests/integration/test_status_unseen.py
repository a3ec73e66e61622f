"""``camguard status`` without privileges, while another account holds the camera.

One look cannot see it (another account's fd table is unreadable, and an fd opened before
the look leaves nothing to see); the tray that was watching at the open can, and records
the use in this user's history. ``status`` must say what the tray says, with since when.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.core.models import UNSEEN_PROCESS_NOTE
from tests.conftest import make_standin, need_root, nobody_python
from tests.integration.test_hidden_holders import OPENER, Child, as_account
from tests.service_env import Accounts

# The tray's recording half, without Qt: a Monitor over the procfs source whose events go
# to this user's history (HistorySink), as ui/shell.py wires it. Runs as the account.
RECORDER = """
import json, sys
sys.path[:0] = sys.argv[2:]
from camguard.platform.clock import SystemClock
from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from camguard.store.db import default_path
from camguard.store.history import HistorySink, HistoryStore
from tests.watching import started, watching
store = HistoryStore(default_path(), SystemClock(), hash_exes=False)
src = ProcfsSource([sys.argv[1]], [], describer=ProcessDescriber())
with watching([src]) as (monitor, rec):
    monitor.add_sink(HistorySink(store))
    print(json.dumps("ready"), flush=True)
    sys.stdin.readline()
    rec.wait_for(started(None), timeout=20)
    print(json.dumps("seen"), flush=True)
    sys.stdin.readline()
"""

STATUS = ("import runpy, sys; sys.path[:0] = sys.argv[1:3]; "
          "sys.argv = ['camguard', *sys.argv[3:]]; "
          "runpy.run_module('camguard', run_name='__main__')")


@pytest.fixture
def opendir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="camguard-status-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_status_says_what_the_watching_tray_saw(opendir: Path, accounts: Accounts) -> None:
    need_root()
    cam = make_standin(opendir / "video0")
    user = accounts.user()
    prefix, paths = as_account(opendir, user.uid, user.gid)
    run_as_nobody, _ = nobody_python(opendir)
    home = opendir / "home"
    home.mkdir()
    shutil.chown(home, user.uid, user.gid)
    env = {"CAMGUARD_CONFIG_DIR": str(home / "c"), "CAMGUARD_DATA_DIR": str(home / "d"),
           "CAMGUARD_STATE_DIR": str(home / "s"), "PULSE_SERVER": f"unix:{home}/none",
           "PATH": "/usr/bin:/bin", "HOME": str(home)}
    hidden = Child([*run_as_nobody, "-c", OPENER, str(cam)])
    recorder = Child(["env", *(f"{k}={v}" for k, v in env.items()), *prefix, "-c",
                      RECORDER, str(cam), *paths])
    try:
        assert json.loads(recorder.read()) == "ready"
        assert hidden.ask("open") == "done\n"
        assert json.loads(recorder.ask("go")) == "seen"

        def status(*args: str) -> str:
            out = subprocess.run(["env", *(f"{k}={v}" for k, v in env.items()), *prefix,
                                  "-c", STATUS, *paths, "status", *args, "--camera-glob",
                                  str(cam), "--mic-glob", f"{opendir}/pcmC*D*c"],
                                 capture_output=True, text=True, timeout=60, cwd="/",
                                 check=False)
            assert out.returncode == 0, out.stderr
            return out.stdout

        assert f"    {UNSEEN_PROCESS_NOTE}" in status().splitlines()
        (device,) = json.loads(status("--json"))["devices"]
        (used,) = device["users"]
        assert used["pid"] is None and used["note"] == UNSEEN_PROCESS_NOTE
        since = _dt.datetime.fromisoformat(used["since"].replace("Z", "+00:00"))
        assert since <= _dt.datetime.now(_dt.UTC)
    finally:
        for c in (recorder, hidden):
            c.end()
