"""How camguard reaches the helper: in this process as root; an answer from pkexec that is
JSON but not an object is 'unexpected', never trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from camguard.platform.linux import helper, helper_runner
from tests.conftest import need_root

pytestmark = pytest.mark.real


def test_root_runs_the_helper_in_its_own_process(tmp_path: Path) -> None:
    need_root()
    runner = helper_runner.privileged_helper([str(tmp_path / "video*")],
                                             str(tmp_path / "state" / "nodes.json"))
    assert isinstance(runner, helper_runner.InProcessHelper)
    code, reply = runner.call("status")
    assert (code, reply["ok"], reply["euid"], reply["nodes"]) == (helper.OK, True, 0, {})


def test_an_answer_that_is_not_a_json_object_is_unexpected(tmp_path: Path) -> None:
    stand_in = tmp_path / "pkexec"  # no polkitd here: this stands in for pkexec's output
    stand_in.write_text('#!/bin/sh\necho \'["ok", true]\'\nexit 0\n')
    stand_in.chmod(0o755)
    code, reply = helper_runner.PkexecHelper(str(tmp_path / "helper"),
                                             pkexec=str(stand_in)).call("status")
    assert code == helper.FAILED
    assert str(reply["error"]).startswith("unexpected answer from the helper (exit 0)")
