"""Things defined once: the exit codes (cli/common.py) and the environment variables that
move camguard's folders and files (store/paths.py). Read from the source, as a reviewer
would, so that a second definition cannot creep back in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from camguard.cli import common
from camguard.store import paths

PACKAGE = Path(common.__file__).resolve().parents[1]
MOVES_FILES = re.compile(r"CAMGUARD_[A-Z_]+_(DIR|FILE)")


def sources() -> list[tuple[str, ast.Module]]:
    return [(str(p.relative_to(PACKAGE)), ast.parse(p.read_text(), str(p)))
            for p in sorted(PACKAGE.rglob("*.py"))]


def test_exit_codes_are_assigned_only_in_cli_common() -> None:
    where = {name for name, tree in sources() for node in ast.walk(tree)
             if isinstance(node, ast.Assign) for target in node.targets
             for t in ast.walk(target) if isinstance(t, ast.Name) and t.id.startswith("EXIT_")
             and t.id != "EXIT_CODES"}
    assert where == {"cli/common.py"}
    assert (common.EXIT_DONE, common.EXIT_FAILED, common.EXIT_BAD_ARGS, common.EXIT_REFUSED,
            common.EXIT_NOT_FOUND) == (0, 1, 2, 3, 4)  # as the README lists them


def test_folder_variables_are_read_only_in_store_paths() -> None:
    where = {name for name, tree in sources() for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and MOVES_FILES.fullmatch(node.value)}
    assert where == {"store/paths.py"}


def test_the_service_folders_default_to_the_system_ones(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    for env in (paths.CONFIG_ENV, paths.DATA_ENV, paths.STATE_ENV):
        monkeypatch.delenv(env, raising=False)
    assert (paths.service_data_dir(), paths.service_state_dir(),
            paths.service_config_dir()) == (Path("/var/lib/camguard"),
                                            Path("/var/lib/camguard"), Path("/etc/camguard"))
    assert not paths.state_dir_moved()
    monkeypatch.setenv(paths.STATE_ENV, str(tmp_path))
    assert paths.service_state_dir() == paths.state_dir() == tmp_path
    assert paths.state_dir_moved()


# The long-lived objects: stores, the killer and blocker, the lock, the rules file, the
# policy, the event outputs and the hook runner. Only the composition root builds them.
LONG_LIVED = frozenset({"HistoryStore", "Killer", "BlockManager", "JsonBlockStore",
                        "LockGuard", "RuleFile", "ManagedPolicy", "EventLog",
                        "JsonLinesFile", "SyslogOutput", "StderrOutput", "HookRunner",
                        "ServiceRuleFile", "AccountRules", "FreezeWhileAsking",
                        "JournaledFreezer"})
# A platform backend's factories build that OS's pieces when app/ asks the façade
# (platform.current().killer(...)); they are the façade's half of the composition root.
BACKEND_FACTORIES = re.compile(r"platform/[a-z]+/backend\.py")


def built(tree: ast.Module) -> set[str]:
    """The long-lived classes a module calls, or hands to a dataclass as its factory."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
            else ""
        names |= {name} & LONG_LIVED
        names |= {kw.value.id for kw in node.keywords if kw.arg == "default_factory"
                  and isinstance(kw.value, ast.Name) and kw.value.id in LONG_LIVED}
    return names


def test_only_app_constructs_long_lived_objects() -> None:
    outside = sorted((name, cls) for name, tree in sources() for cls in built(tree)
                     if not name.startswith("app/") and not BACKEND_FACTORIES.fullmatch(name))
    assert outside == []
    inside = {cls for name, tree in sources() if name.startswith("app/") for cls in built(tree)}
    # The check reads the source it means to:
    assert {"HistoryStore", "BlockManager", "LockGuard", "RuleFile", "ManagedPolicy",
            "EventLog", "HookRunner", "ServiceRuleFile", "AccountRules",
            "FreezeWhileAsking"} <= inside


def test_one_process_killer_protocol() -> None:
    """The platform's killer, the service's and the tray's are one shape, defined in core."""
    where = {name for name, tree in sources() for node in ast.walk(tree)
             if isinstance(node, ast.ClassDef) and node.name == "ProcessKiller"}
    assert where == {"core/blocks.py"}


def test_peer_identity_is_read_only_by_the_platforms_transport() -> None:
    """The service is handed the platform's ServiceTransport.peer_credentials (app/); it
    never reads SO_PEERCRED (or another OS's peer identity) itself."""
    where = {name for name, tree in sources() for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in ("SO_PEERCRED",
                                                                  "LOCAL_PEERCRED")}
    assert where and all(name.startswith("platform/") for name in where), where
