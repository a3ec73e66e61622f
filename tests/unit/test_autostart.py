"""Start at login: the real XDG autostart file under a temporary XDG_CONFIG_HOME."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from camguard.store.autostart import Autostart, quote_exec, read_entry, running_command


def env(tmp_path: Path) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CONFIG_DIRS": str(tmp_path / "system-a") + ":" + str(tmp_path / "system-b"),
            "HOME": str(tmp_path / "home")}


def unquote_exec(value: str) -> list[str]:
    """The Desktop Entry spec's reading of an Exec value, independent of the writer."""
    # 1. The value is a "string": \\s \\n \\t \\r \\\\ escapes.
    text, i = "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            text += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}[value[i + 1]]
            i += 2
        else:
            text += value[i]
            i += 1
    # 2. Split on spaces outside double quotes; inside, a backslash escapes " ` $ \\.
    args, cur, quoted, i, started = [], "", False, 0, False
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            assert text[i + 1] in '"`$\\'
            cur += text[i + 1]
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if started or cur:
                args.append(cur)
            cur, started = "", False
        else:
            cur += c
            started = True
        i += 1
    if started or cur:
        args.append(cur)
    return [a.replace("%%", "%") for a in args]


def test_enable_writes_a_valid_entry_and_disable_removes_it(tmp_path: Path) -> None:
    auto = Autostart(env(tmp_path))
    assert auto.path == tmp_path / "config" / "autostart" / "camguard.desktop"
    assert not auto.is_enabled()
    auto.enable()
    assert auto.is_enabled()
    assert stat.S_IMODE(auto.path.stat().st_mode) == 0o600
    lines = auto.path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "[Desktop Entry]"
    for line in ("Type=Application", "Name=camguard",
                 "X-GNOME-Autostart-enabled=true", "Terminal=false"):
        assert line in lines
    for line in lines[2:]:  # every line after the group header is Key=Value
        key, sep, _value = line.partition("=")
        assert sep and key.replace("-", "").isalnum(), line
    validator = shutil.which("desktop-file-validate")
    if validator is not None:  # Debian's desktop-file-utils
        result = subprocess.run([validator, str(auto.path)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    auto.disable()
    assert not auto.path.exists() and not auto.is_enabled()
    auto.disable()  # idempotent


def test_a_system_entry_is_hidden_not_ignored(tmp_path: Path) -> None:
    system = tmp_path / "system-b" / "autostart" / "camguard.desktop"
    system.parent.mkdir(parents=True)
    system.write_text("[Desktop Entry]\nType=Application\nName=camguard\n"
                      "Exec=camguard --autostart\n")
    auto = Autostart(env(tmp_path))
    assert auto.is_enabled()  # the package's all-users entry starts it
    auto.disable()
    keys = read_entry(auto.path)
    assert keys is not None and keys["Hidden"] == "true"  # overrides the system entry
    assert not auto.is_enabled()
    assert system.exists()  # never touched
    auto.enable()
    keys = read_entry(auto.path)
    assert auto.is_enabled() and keys is not None
    assert unquote_exec(keys["Exec"]) == [os.path.abspath(sys.executable), "-m", "camguard",
                                          "tray"]
    assert "Hidden" not in keys
    # The first system folder in XDG_CONFIG_DIRS wins: a disabled entry there hides b's.
    first = tmp_path / "system-a" / "autostart" / "camguard.desktop"
    first.parent.mkdir(parents=True)
    first.write_text("[Desktop Entry]\nType=Application\nName=camguard\nExec=x\n"
                     "X-GNOME-Autostart-enabled=false\n")
    auto.disable()
    assert not auto.path.exists() and not auto.is_enabled()


def test_relative_config_home_is_ignored(tmp_path: Path) -> None:
    auto = Autostart({"XDG_CONFIG_HOME": "relative/dir", "HOME": str(tmp_path)})
    assert auto.path == tmp_path / ".config" / "autostart" / "camguard.desktop"


@pytest.mark.parametrize("argv", [
    ("camguard", "tray"),
    ("/opt/My Apps/camguard", "tray"),
    ("/opt/x/camguard", 'say "hi"', "$HOME", "`id`", "back\\slash", "100%", "a'b"),
])
def test_exec_quoting_round_trips(argv: tuple[str, ...], tmp_path: Path) -> None:
    assert unquote_exec(quote_exec(argv)) == list(argv)
    auto = Autostart(env(tmp_path), command=argv)
    auto.enable()
    keys = read_entry(auto.path)
    assert keys is not None and unquote_exec(keys["Exec"]) == list(argv)


@pytest.mark.parametrize("argv", [(), ("camguard", "a\nb"), ("camguard", ""),
                                  ("camguard", "\x1b[2J")])
def test_unwritable_commands_are_refused(argv: tuple[str, ...], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"empty command|cannot start at login"):
        Autostart(env(tmp_path), command=argv)


def test_the_entry_starts_this_camguard_from_a_bare_login_environment(tmp_path: Path) -> None:
    """A venv or `make run` camguard is not on the login session's PATH: the entry names the
    running interpreter by absolute path, and that command runs camguard from an environment
    with nothing but a system PATH and a HOME (what a desktop's autostart gives it)."""
    auto = Autostart(env(tmp_path))
    auto.enable()
    keys = read_entry(auto.path)
    assert keys is not None
    argv = unquote_exec(keys["Exec"])
    assert os.path.isabs(argv[0]) and argv[-1] == "tray"
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    repo = str(Path(__file__).resolve().parents[2])
    if os.environ.get("PYTHONPATH"):  # a worktree run: the worktree's camguard, as tested
        bare["PYTHONPATH"] = repo
    out = subprocess.run([*argv[:-1], "--version"], env=bare, capture_output=True, text=True,
                         timeout=120, check=False, cwd="/")
    assert out.returncode == 0 and out.stdout.startswith("camguard "), out.stderr
    # A frozen bundle is its own program: the bundle and the subcommand.
    assert running_command("/opt/camguard/camguard", frozen=True) == (
        "/opt/camguard/camguard", "tray")
