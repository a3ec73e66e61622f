"""app.outputs: which file the event log goes to, and which hook runs, for the tray and
for the root service, from the flag, the managed policy and the defaults (real files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.app.outputs import EventOutputs, service_outputs, tray_outputs
from camguard.app.settings import user_effective
from camguard.core.clock import FrozenClock
from camguard.store.eventlog import JsonLinesFile
from camguard.store.policy import ManagedPolicy, PolicyStatus, TomlPolicyReader
from tests.conftest import need_root

CLOCK = FrozenClock(1795453200.0)


@pytest.fixture
def built() -> Iterator[list[EventOutputs]]:
    made: list[EventOutputs] = []
    yield made
    for outputs in made:
        outputs.log.close()


def status(tmp_path: Path, text: str, mode: int = 0o644) -> PolicyStatus:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    path.chmod(mode)
    return ManagedPolicy(TomlPolicyReader(path)).load()


def log_file(outputs: EventOutputs) -> Path:
    files = [o for o in outputs.log.outputs if isinstance(o, JsonLinesFile)]
    assert len(files) == 1
    return files[0].path


def program(tmp_path: Path, mode: int = 0o755) -> Path:
    path = tmp_path / "hook"
    path.write_text("#!/bin/sh\n")
    path.chmod(mode)
    return path


def test_service_defaults_to_its_state_folder_and_takes_the_flag(
        tmp_path: Path, built: list[EventOutputs]) -> None:
    none = status(tmp_path, "")
    built.append(service_outputs(None, none, CLOCK, tmp_path / "state"))
    assert log_file(built[-1]) == tmp_path / "state" / "events.jsonl"
    built.append(service_outputs(tmp_path / "f.jsonl", none, CLOCK, tmp_path / "state"))
    assert log_file(built[-1]) == tmp_path / "f.jsonl" and built[-1].problems == []


def test_a_locked_events_file_wins_over_the_flag(tmp_path: Path,
                                                 built: list[EventOutputs]) -> None:
    need_root()  # a policy not owned by root is flagged, and the service then ignores it
    policy = status(tmp_path, f'locked = ["events_file"]\n[settings]\n'
                    f'events_file = "{tmp_path / "p.jsonl"}"\n')
    built.append(service_outputs(tmp_path / "f.jsonl", policy, CLOCK, tmp_path))
    assert log_file(built[-1]) == tmp_path / "p.jsonl"
    assert "--events-file ignored: the setting 'events_file' is locked" in \
        built[-1].problems[0]
    built.append(tray_outputs(tmp_path / "f.jsonl", user_effective(tmp_path / "none.json",
                                                                   policy), CLOCK))
    assert log_file(built[-1]) == tmp_path / "p.jsonl"


def test_the_service_runs_only_a_root_owned_hook(tmp_path: Path,
                                                 built: list[EventOutputs]) -> None:
    need_root()
    hook = program(tmp_path)
    policy = status(tmp_path, f'[settings]\nhook = "{hook}"\n')
    built.append(service_outputs(None, policy, CLOCK, tmp_path))
    assert built[-1].hooks is not None and built[-1].problems == []
    hook.chmod(0o775)
    built.append(service_outputs(None, policy, CLOCK, tmp_path))
    assert built[-1].hooks is None
    assert "must be a file owned by root that no one else may write" in built[-1].problems[0]
    hook.chmod(0o755)
    os.chown(hook, 65534, 65534)
    built.append(service_outputs(None, policy, CLOCK, tmp_path))
    assert built[-1].hooks is None and "owner uid 65534" in built[-1].problems[0]
    # The tray runs its user's own hook as that user: no such rule.
    built.append(tray_outputs(None, user_effective(tmp_path / "none.json", policy), CLOCK))
    assert built[-1].hooks is not None


def test_a_policy_others_may_write_chooses_no_file_and_no_hook_for_the_service(
        tmp_path: Path, built: list[EventOutputs]) -> None:
    hook = program(tmp_path)
    policy = status(tmp_path, f'[settings]\nhook = "{hook}"\n'
                    f'events_file = "{tmp_path / "p.jsonl"}"\n', mode=0o666)
    assert policy.policy.writable_by_others
    built.append(service_outputs(None, policy, CLOCK, tmp_path / "state"))
    assert built[-1].hooks is None
    assert log_file(built[-1]) == tmp_path / "state" / "events.jsonl"
    assert "the service ignores its events_file and hook" in built[-1].problems[0]
    built.append(service_outputs(tmp_path / "f.jsonl", policy, CLOCK, tmp_path))
    assert log_file(built[-1]) == tmp_path / "f.jsonl"  # root's own flag still counts
