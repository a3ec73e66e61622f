"""The root service hashes the binary a process runs through the kernel's link to it, never
through the path its owner chose: a program started from a user's folder whose path is then
swapped for a symlink to a file only root may read must not make root read that file (its
SHA-256 would land in the user's history and decide their rules)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.platform.process import ProcessDescriber, RunningBinary
from camguard.store.hashing import ExeHasher
from tests.conftest import HOLDER

pytestmark = pytest.mark.real


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_swapped_path_is_not_followed_and_a_gone_process_gives_no_hash(
        tmp_path: Path, devdir: Path) -> None:
    node = devdir / "video0"
    node.write_bytes(b"")
    secret = tmp_path / "secret"
    secret.write_bytes(b"only root may read this\n")
    secret.chmod(0o600)
    own = tmp_path / "python-copy"
    shutil.copy2(os.path.realpath(sys.executable), own)
    proc = subprocess.Popen([str(own), "-c", HOLDER, str(node)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        described = ProcessDescriber().describe(proc.pid)
        assert described is not None and described.exe == str(own)
        binary = sha(own)
        own.unlink()
        own.symlink_to(secret)  # the path now names the secret
        assert ExeHasher()(described) == sha(secret)  # what following the path would read
        assert ExeHasher(source=RunningBinary())(described) == binary
    finally:
        proc.kill()
        proc.wait(10)
    # Gone: no hash (its pid might name another process's binary by now).
    assert ExeHasher(source=RunningBinary())(described) is None
