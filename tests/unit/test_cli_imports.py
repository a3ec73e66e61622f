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
import os
import subprocess
import sys
from pathlib import Path

import pytest

import camguard
from camguard import cli
from camguard.core.text import json_text
from tests.conftest import make_standin

ROOT = Path(camguard.__file__).resolve().parents[1]
HEAVY = ("psutil", "pulsectl", "sqlite3", "camguard.store", "camguard.service",
         "camguard.core.rules", "camguard.monitor", "camguard.platform.linux", "PySide6")


def loaded_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = ("import json, sys\n" + code +
             "\nprint(json.dumps(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})})
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
    for name in cli.COMMANDS:  # a command named first is found without the stub parser
        argv = [name, "--json", "history"]
        assert cli.chosen_command(argv) == name == \
            cli.build_parser(()).parse_known_args(argv)[0].command


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


# ---- what a command's run loads (issue 16): status and history as scripts call them ----
# A command's own output goes to a file, so the probe's last line is the module list.
RUN = ("from camguard.cli import main\n"
       "with open(sys.argv[1], 'w') as out:\n"
       "    sys.stdout, real = out, sys.stdout\n"
       "    code = main(sys.argv[2:])\n"
       "    sys.stdout = real\n"
       "assert code == 0, code\n")


def run_loaded(tmp_path: Path, argv: list[str], env: dict[str, str]) -> tuple[list[str], str]:
    """(modules loaded, what the command printed) for ``camguard ARGV`` in a fresh
    interpreter."""
    printed = tmp_path / "printed.txt"
    probe = "import json, sys\n" + RUN + "\nprint(json.dumps(sorted(sys.modules)))\n"
    res = subprocess.run([sys.executable, "-c", probe, str(printed), *argv],
                         capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})
    assert res.returncode == 0, res.stderr
    modules: list[str] = json.loads(res.stdout.splitlines()[-1])
    return modules, printed.read_text()


def private_env(tmp_path: Path) -> dict[str, str]:
    """Private folders, no service at CAMGUARD_SOCKET, no sound server."""
    env = {f"CAMGUARD_{w.upper()}_DIR": str(tmp_path / w) for w in ("config", "data", "state")}
    return {**env, "HOME": str(tmp_path), "CAMGUARD_SOCKET": str(tmp_path / "no.sock"),
            "PULSE_SERVER": f"unix:{tmp_path}/no-pulse", "CAMGUARD_POLICY_FILE":
            str(tmp_path / "no-policy.toml")}


def among(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


# Neither reading history nor asking who uses a device needs these; each was on the path
# before issue 16's second pass (the service client and transport to find no service, the
# rules and hashlib through the stores, csv, zoneinfo, platformdirs with the folders given,
# secrets through the sound-server client, the null platform; and the policy's TOML parser
# with no policy file).
NOT_FOR_STATUS = ("psutil", "PySide6", "camguard.app.guard_service", "camguard.service",
                  "camguard.platform.null", "secrets", "hashlib", "csv", "zoneinfo",
                  "platformdirs", "camguard.store.hashing", "tomllib")
NOT_FOR_HISTORY = (*NOT_FOR_STATUS, "pulsectl", "jeepney", "camguard.core.rules",
                   "camguard.monitor", "camguard.platform.linux", "camguard.app.detection",
                   "tomllib")
# history --json without a service reads the rows straight into the text
# (store/history_json.py): no Guard, no store class, no model (their ~30 dataclasses), no
# typing, getpass, platform or logging (nothing on it logs) either.
NOT_FOR_HISTORY_JSON = (*NOT_FOR_HISTORY, "camguard.app", "camguard.platform",
                        "camguard.core.models", "camguard.core.origin",
                        "camguard.core.serialize", "camguard.store.db",
                        "camguard.store.history", "camguard.store.history_record",
                        "camguard.store.history_query", "camguard.store.tamper",
                        "camguard.store.export", "camguard.store.migrations", "dataclasses",
                        "typing", "getpass", "logging", "shutil")


def test_history_json_reads_the_store_and_nothing_else(tmp_path: Path) -> None:
    from camguard.core.models import Device, DeviceKind, ProcessRef, Usage
    from camguard.platform.clock import SystemClock
    from camguard.store.history import HistoryStore

    env = private_env(tmp_path)
    (tmp_path / "data").mkdir()
    store = HistoryStore(tmp_path / "data" / "history.sqlite3", SystemClock(), hash_exes=False)
    cam = Device(DeviceKind.CAMERA, "/dev/video0", "cam")
    sid = store.open_session(Usage(cam, ProcessRef(42, 1.0, "zoom\u202e", "/usr/bin/zoom",
                                                   ("zoom", "--x"), "alice")), 100.0)
    store.close_session(sid, 101.0)
    store.close()
    modules, printed = run_loaded(tmp_path, ["history", "--json"], env)
    assert "camguard.store.history_json" in modules and "sqlite3" in modules  # it did read
    assert among(modules, NOT_FOR_HISTORY_JSON) == []
    [entry] = json.loads(printed)
    assert (entry["pid"], entry["name"], entry["cmdline"]) == (42, "zoom\u202e", ["zoom", "--x"])
    assert "\\u202e" in printed  # the unsafe character escaped, as json_text always did
    # The filters are the lean reader's too.
    modules, filtered = run_loaded(tmp_path, ["history", "--json", "--until", "1970-01-02",
                                              "--kind", "camera", "--app", "ZOOM\u202e",
                                              "--limit", "5"], env)
    assert among(modules, NOT_FOR_HISTORY_JSON) == [] and filtered == printed


def test_status_json_without_a_service_loads_no_service_client(tmp_path: Path) -> None:
    env = private_env(tmp_path)
    node = make_standin(tmp_path / "dev" / "video0")
    modules, printed = run_loaded(
        tmp_path, ["status", "--json", "--camera-glob", str(node.parent / "video*"),
                   "--mic-glob", str(tmp_path / "dev" / "pcmC*D*c")], env)
    assert "camguard.platform.linux.procfs" in modules  # it did look itself
    assert among(modules, NOT_FOR_STATUS) == []
    doc = json.loads(printed)
    assert set(doc) == {"devices", "degraded", "coverage"}
    assert [d["id"] for d in doc["devices"]] == [str(node)]


# The service's answer is the document: no scan, no sound server, no rules, no database; and
# it is printed as it came, so neither the Guard's answer types nor the models that would
# read it (no dataclass at all), nor the service's request checks, nor the platform beyond
# its socket transport.
NOT_THROUGH_SERVICE = ("psutil", "PySide6", "pulsectl", "jeepney", "sqlite3", "tomllib",
                       "camguard.core.rules", "camguard.store.history", "camguard.store.policy",
                       "camguard.monitor", "camguard.app.guard_local", "camguard.app.detection",
                       "camguard.platform.linux.procfs", "camguard.platform.linux.pulse",
                       "hashlib", "secrets", "dataclasses", "inspect", "camguard.app.guard",
                       "camguard.app.service_decode", "camguard.core.blocks",
                       "camguard.core.models", "camguard.core.state", "camguard.core.origin",
                       "camguard.service.protocol", "camguard.service.authorization",
                       "camguard.platform.base", "camguard.platform.linux.backend")


@pytest.mark.real
def test_status_json_through_the_service_is_a_round_trip(tmp_path: Path) -> None:
    from tests.service_env import Service, box

    with box() as b:
        node = str(b.node("video0"))
        holder = open(node, "rb")  # noqa: SIM115  # in use by this process: a user to report
        try:
            service = Service(b).start()
            modules, printed = run_loaded(tmp_path, ["status", "--json"],
                                          {**private_env(tmp_path),
                                           "CAMGUARD_SOCKET": str(b.sock)})
            answer = service.client.status()
        finally:
            holder.close()
    assert "camguard.service.client" in modules  # it did ask the service
    assert among(modules, NOT_THROUGH_SERVICE) == []
    doc = json.loads(printed)
    [camera] = [d for d in doc["devices"] if d["id"] == node]
    assert os.getpid() in {u["pid"] for u in camera["users"]}
    # The service's answer without "ok", indented as the decoded document always was.
    assert answer.pop("ok") is True
    assert printed == json_text(answer, indent=2) + "\n"


def test_the_service_transport_is_the_platforms() -> None:
    """platform.service_transport() skips building the platform; it is the same transport."""
    from camguard import platform

    assert type(platform.service_transport()) is type(platform.current().service_transport())


# A running tray's answer is the document too (cli/tray_status.py): the same round trip as
# the service's, over this account's tray socket, so the same nothing-else.
NOT_THROUGH_THE_TRAY = (*NOT_THROUGH_SERVICE, "camguard.service.client")


def test_status_json_answered_by_the_running_tray_is_a_round_trip(tmp_path: Path) -> None:
    """A real Unix socket where this account's tray listens (the tray's side is
    tests/gui/test_tray_status.py) answers a document: printed as the one-look output is."""
    import socket
    import threading

    from camguard.core.text import json_text
    from camguard.store.paths import tray_socket

    env = private_env(tmp_path)
    (tmp_path / "state").mkdir(mode=0o700)
    path = str(tmp_path / "state" / Path(tray_socket()).name)
    doc = {"devices": [{"id": "/dev/video0", "kind": "camera", "users": [{"pid": 42}]}],
           "degraded": [], "coverage": [{"sensor": "camera", "source": "procfs"}]}
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"status\n"
            conn.sendall(json_text(doc, separators=(",", ":")).encode() + b"\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        modules, printed = run_loaded(tmp_path, ["status", "--json"], env)
    finally:
        t.join(10)
        server.close()
    assert "camguard.cli.tray_status" in modules  # it did ask the tray
    assert among(modules, NOT_THROUGH_THE_TRAY) == []
    assert printed == json_text(doc, indent=2) + "\n"


@pytest.mark.parametrize("columns", ["60", "120"])
def test_help_is_argparses_own_without_shutil(columns: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser's help formatter learns the terminal's width itself (cli._columns, as
    argparse asks shutil.get_terminal_size): every help text is argparse's own."""
    import argparse

    from camguard import cli

    monkeypatch.setenv("COLUMNS", columns)

    def helps() -> list[str]:
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return [parser.format_help(), *(p.format_help() for p in sub.choices.values())]

    ours = helps()
    monkeypatch.setattr(cli, "_parser_class", lambda: argparse.ArgumentParser)
    assert ours == helps()
    assert max(len(line) for text in ours for line in text.splitlines()) > (
        80 if columns == "120" else 0)
