"""Processes that hold a stand-in capture node: a real PipeWire daemon (the session's sound
server, as it holds ``/dev/snd/pcmC*D*c`` for every app) and an impostor that only calls
itself ``pipewire`` (``prctl(PR_SET_NAME)``, as any process may)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from tests import realenv
from tests.conftest import need_tools

# PR_SET_NAME is 15 (include/uapi/linux/prctl.h): sets comm, what ps and psutil call the name.
RENAMED = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(15, b"pipewire", 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print("ready", flush=True)
    sys.stdin.readline()
""")


@contextlib.contextmanager
def impostor(node: Path) -> Iterator[subprocess.Popen[str]]:
    """A Python process named ``pipewire`` that holds ``node`` open."""
    proc = subprocess.Popen([sys.executable, "-c", RENAMED, str(node)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def pipewire_holding(node: Path, root: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``pipewire`` daemon serving ``pipewire-0`` in a private runtime folder, with
    ``node`` open (inherited: PipeWire keeps the descriptors it is started with)."""
    need_tools(["pipewire"])
    runtime = root / "pw-run"
    runtime.mkdir(mode=0o700)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(runtime), "XDG_RUNTIME_DIR": str(runtime),
           "XDG_STATE_HOME": str(runtime), "XDG_CONFIG_HOME": str(runtime)}
    fd = os.open(node, os.O_RDONLY)
    try:
        with (runtime / "pipewire.log").open("wb") as log:
            proc = subprocess.Popen(["pipewire"], env=env, pass_fds=(fd,),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
    finally:
        os.close(fd)
    try:
        realenv.wait_until((runtime / "pipewire-0").exists, 15, "the pipewire socket")
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
