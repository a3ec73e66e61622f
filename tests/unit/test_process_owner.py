"""The probes' process_owner: the account a process runs as (the user guard's question)."""

from __future__ import annotations

import os
import subprocess
import sys

from camguard.platform import current
from camguard.platform.null import NullPlatform


def test_linux_names_the_owner_of_a_live_process_and_none_for_a_gone_one() -> None:
    probes = current().probes()
    assert probes.process_owner(os.getpid()) == os.geteuid()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert probes.process_owner(child.pid) is None  # reaped: no /proc entry


def test_a_platform_without_a_backend_knows_no_owner() -> None:
    assert NullPlatform("plan9").probes().process_owner(os.getpid()) is None
