"""Questions answered from /proc, asked of a tmp tree shaped like it: which process is a
camguard instance and which holds a device; and what a half-readable entry (a process that
is exiting) answers."""

from __future__ import annotations

import os
from pathlib import Path

from camguard.platform.linux.instances import camguard_instance, holds_device


def proc_entry(proc: Path, pid: int, exe: str, cmdline: list[str] | None = None,
               status: str | None = None) -> Path:
    d = proc / str(pid)
    (d / "fd").mkdir(parents=True)
    os.symlink(exe, d / "exe")
    if cmdline is not None:
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in cmdline) + b"\0")
    if status is not None:
        (d / "status").write_text(status)
    return d


def test_a_binary_named_camguard_is_an_instance_and_other_binaries_are_not(
        tmp_path: Path) -> None:
    proc_entry(tmp_path, 10, "/usr/bin/camguard", ["camguard", "tray"])
    proc_entry(tmp_path, 11, "/usr/bin/vim", ["vim", "-m", "camguard"])
    proc_entry(tmp_path, 12, "/usr/bin/python3.11", ["python3", "-m", "camguard", "tray"])
    proc_entry(tmp_path, 13, "/usr/bin/camguard")  # no cmdline: exiting, or not readable
    got = {pid: camguard_instance(pid, str(tmp_path)) for pid in (10, 11, 12, 13)}
    assert got == {10: "camguard", 11: None, 12: "camguard", 13: None}


def test_only_a_character_device_at_a_matching_path_counts_as_held(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    d = proc_entry(proc, 20, "/usr/bin/app")
    regular = tmp_path / "video0"
    regular.write_text("")  # matches the glob, but is not a device
    os.symlink(str(regular), d / "fd" / "3")
    os.symlink("/dev/null", d / "fd" / "4")  # a device, but not at a matching path
    assert not holds_device(20, [f"{tmp_path}/video*"], str(proc))
    assert holds_device(20, [f"{tmp_path}/video*", "/dev/null"], str(proc))
