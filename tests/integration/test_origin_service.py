"""A real root service (tests/service_env.py): an account's packaged Python is ended by a
rule that names its Debian package; another account's use shows its origin in status, and
the history records it."""

from __future__ import annotations

import os

import pytest

from camguard.core.rules import AppMatch, MatchBy, make_rule
from camguard.store.rules import RuleFile
from tests.conftest import need
from tests.integration.test_origin import packaged_python
from tests.realenv import wait_until
from tests.service_env import (
    SYSTEM_PYTHON,
    Accounts,
    Box,
    Service,
    UserHolder,
    pids_in_status,
)

pytestmark = pytest.mark.real


def test_the_root_service_enforces_an_origin_rule_and_reports_origins(
        sandbox: Box, accounts: Accounts) -> None:
    python, package = packaged_python()
    need(os.path.realpath(SYSTEM_PYTHON) == python, f"{SYSTEM_PYTHON} is not {python}")
    kid, other = accounts.user(), accounts.user()
    RuleFile(sandbox.config / "rules.json").save([make_rule(
        "kill", app=AppMatch(MatchBy.ORIGIN, f"deb:{package}"), kind="camera",
        user=kid.name, label="no packaged python")])
    svc = Service(sandbox).start()
    h = UserHolder(sandbox, kid, [sandbox.node("video0")])
    assert h.proc.wait(20) is not None  # ended by the origin rule
    want = {"kind": "deb", "name": package, "verified": True, "detail": None}

    def entry(pid: int) -> dict[str, object] | None:
        return next((e for e in svc.client.history()["entries"]
                     if e.get("pid") == pid and e.get("origin") is not None), None)

    wait_until(lambda: entry(h.pid) is not None, 20, "the killed session's origin")
    killed = entry(h.pid)
    assert killed is not None
    assert (killed["decision"], killed["decided_by"], killed["origin"]) == (
        "killed", "rule:no packaged python", want)
    o = UserHolder(sandbox, other, [sandbox.node("video1")])
    wait_until(lambda: o.pid in pids_in_status(svc.client.status()), 20, "the other's use")
    users = [u for d in svc.client.status()["devices"] for u in d["users"]]
    assert [u["origin"] for u in users if u["pid"] == o.pid] == [want]
    assert o.proc.poll() is None  # the rule is the kid's only
