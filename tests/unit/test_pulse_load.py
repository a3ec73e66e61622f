"""Loading pulsectl starts no process (issue 16).

pulsectl loads ``find_library("libpulse") or "libpulse.so.0"``; on Linux that search never
finds "liblibpulse" and runs ldconfig, gcc and ld on the way (15-40 ms, and the root
service spawning a compiler). camguard loads it through pulse_conn.load_pulsectl, whichever
module comes first. Checked in fresh interpreters with an audit hook that sees every
``subprocess.Popen``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
spawned = []
sys.addaudithook(lambda ev, args: spawned.append(str(args[0])) if ev == "subprocess.Popen"
                 else None)
import ctypes.util
real = ctypes.util.find_library
{load}
import pulsectl
loaded = list(spawned)
ctypes.util.find_library("c")  # the real search again: it does run ldconfig
print(json.dumps({{"loaded": loaded, "after": spawned[len(loaded):],
                  "restored": ctypes.util.find_library is real,
                  "lib": pulsectl._pulsectl.pa.__class__.__name__}}))
"""


@pytest.mark.parametrize("load", [
    "import camguard.platform.linux.mic_control",
    "from camguard.platform.linux.pulse_conn import load_pulsectl; load_pulsectl()",
    "import camguard.platform.linux.pulse as p; p.load_pulsectl()",
])
def test_loading_pulsectl_runs_no_process(load: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(load=load)], capture_output=True,
                         text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["loaded"] == [], f"{load} spawned {seen['loaded']}"
    assert seen["lib"] == "LibPulse"
    assert seen["restored"], "ctypes.util.find_library was left replaced"
    assert seen["after"], "the audit hook saw no process at all: this test would prove nothing"
