"""The command line loads only what the command asked for (issue 16).

Not a timing test: it reads ``sys.modules`` of a fresh interpreter. ``--version`` and
``--help`` import no subcommand module at all; choosing a command imports that command's
module only, and registering it imports no store, service client, rules, psutil, pulsectl
or sqlite3 (those load when the command runs). And the table of commands the first parse
uses says exactly what the modules register.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import camguard
from camguard import cli

ROOT = Path(camguard.__file__).resolve().parents[1]
HEAVY = ("psutil", "pulsectl", "sqlite3", "camguard.store", "camguard.service",
         "camguard.core.rules", "camguard.monitor", "camguard.platform.linux", "PySide6")


def loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = ("import json, sys\n" + code +
             "\nprint(json.dumps(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    modules: list[str] = json.loads(res.stdout.splitlines()[-1])
    return modules


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_command(flag: str) -> None:
    modules = loaded_after(
        "from camguard.cli import main\n"
        f"try:\n    main([{flag!r}])\nexcept SystemExit:\n    pass")
    assert "camguard.cli" in modules  # the probe did run the parser
    assert heavy(modules) == []
    assert [m for m in modules if m.startswith("camguard.cli.")] == \
        ([] if flag == "--version" else ["camguard.cli.argtypes", "camguard.cli.common"])
    assert not [m for m in modules if m.startswith(("camguard.app", "camguard.platform"))]
    # --version alone is answered before argparse (which costs about Python's own start)
    assert ("argparse" in modules) is (flag == "--help")


def test_version_prints_what_argparse_would(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    fast = capsys.readouterr().out
    with pytest.raises(SystemExit, match="0"):
        cli.main(["-v", "--version"])  # not the exact argv: argparse's version action
    assert capsys.readouterr().out == fast == f"camguard {camguard.__version__}\n"


# The tray module is the tray's wiring (its parts are imported by the GUI tests); it is
# imported only when the tray starts, whose start-up is Qt's.
@pytest.mark.parametrize("module", [m for m in cli.MODULE_NAMES if m != "tray"])
def test_registering_a_command_imports_nothing_heavy(module: str) -> None:
    modules = loaded_after(f"from camguard.cli import build_parser\nbuild_parser([{module!r}])")
    assert f"camguard.cli.{module}" in modules
    # The rule vocabulary (Verdict, Duration, Mode) is the rules command's own argument types.
    own = {"camguard.core.rules"} if module in ("rules", "policy") else set()
    assert set(heavy(modules)) - own == set()
    others = {f"camguard.cli.{m}" for m in cli.MODULE_NAMES} - {f"camguard.cli.{module}"}
    # Siblings that share code: block and panic start the keeper, pause/resume print with
    # actions' exit codes, policy show reads what rules reads.
    allowed = {"actions": {"keeper"}, "service": {"actions", "keeper"},
               "policy": {"rules"}}.get(module, set())
    assert others & set(modules) == {f"camguard.cli.{m}" for m in allowed}


def test_choosing_a_command_finds_it_behind_options_with_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "status").write_text("{}")  # a settings file named like a command
    assert cli.chosen_command(["--config", "status", "history", "--json"]) == "history"
    assert cli.chosen_command(["-v", "status", "--camera-glob", "/x/history"]) == "status"
    assert cli.chosen_command(["--socket=/x", "block", "camera", "--for=-5m"]) == "block"
    assert cli.chosen_command(["-v"]) is None


def test_the_table_is_what_the_modules_register() -> None:
    registered: dict[str, tuple[str, str]] = {}
    for module in cli.MODULE_NAMES:
        sub = argparse.ArgumentParser().add_subparsers()
        cli.command_module(module).register(sub, argparse.ArgumentParser(add_help=False))
        registered |= {a.dest: (module, str(a.help)) for a in sub._choices_actions}
    assert list(registered.items()) == list(cli.COMMANDS.items())


def test_the_full_parser_lists_every_command_in_table_order() -> None:
    sub = next(a for a in cli.build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.COMMANDS)
    assert all(p.add_help for p in sub.choices.values())  # no stub left


def test_the_rules_lock_name_is_the_policys() -> None:
    from camguard.cli import rules
    from camguard.store import policy

    assert rules.RULES == policy.RULES
