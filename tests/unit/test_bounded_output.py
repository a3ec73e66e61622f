"""The root service reads a child run as an account (which may ptrace it and make it say
anything) only up to a bound, and only for so long: real child processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from camguard.platform.linux.user_mic import bounded_output


def child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_normal_answer_is_read_whole_with_its_input_passed() -> None:
    proc = child("import sys; print(sys.stdin.read().upper()); print('warn', file=sys.stderr)")
    out, err = bounded_output(proc, b'{"x": 1}', 1024, 30)
    assert out == b'{"X": 1}\n' and err == b"warn\n" and proc.returncode == 0


def test_a_flood_is_cut_at_the_limit_and_the_child_ended() -> None:
    proc = child("import sys\nwhile True: sys.stdout.write('x' * 65536)")
    out, err = bounded_output(proc, b"", 64 * 1024, 30)
    assert out == b"" and b"said more than 65536 bytes" in err
    assert proc.returncode is not None and proc.returncode < 0  # killed


def test_a_child_that_hangs_after_closing_its_output_is_ended_in_time() -> None:
    proc = child("import os, time; os.close(1); os.close(2); time.sleep(600)")
    with pytest.raises(subprocess.TimeoutExpired, match="timed out after 1"):
        bounded_output(proc, b"", 1024, 1)
    assert proc.returncode is not None and proc.returncode < 0
