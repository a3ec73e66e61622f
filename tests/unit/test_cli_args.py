"""Argument errors speak the user's words, never camguard's internal names (issue 17)."""

from __future__ import annotations

import pytest

from camguard.cli import main
from camguard.cli.argtypes import join_dashed_values


@pytest.mark.parametrize(("argv", "said"), [
    (["block", "nonsense"], "'nonsense' is not one of: camera, microphone, all"),
    (["unblock", "cam"], "'cam' is not one of: camera, microphone, all"),
    (["block", "camera", "--for", "-5m"], "not a duration: '-5m'"),
    (["rules", "mode", "bogus"], "'bogus' is not one of: ask, notify-only, "
                                 "block-all-not-allowed"),
    (["rules", "add", "--exe", "/bin/true", "--verdict", "nope"],
     "'nope' is not one of: allow, ask, kill, block-device"),
    (["rules", "add", "--exe", "/bin/true", "--verdict", "allow", "--duration", "5y"],
     "'5y' is not one of: once, 15m, 1h, until-restart, always"),
])
def test_errors_name_values_not_classes(argv: list[str], said: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="2"):
        main(argv)
    err = capsys.readouterr().err
    assert said in err
    for internal in ("BlockTarget", "Verdict", "Duration", "<Mode.", "expected one argument"):
        assert internal not in err


def test_only_a_dash_digit_value_of_for_is_joined() -> None:
    assert join_dashed_values(["block", "camera", "--for", "-5m"]) == \
        ["block", "camera", "--for=-5m"]
    assert join_dashed_values(["block", "camera", "--for", "-v"]) == \
        ["block", "camera", "--for", "-v"]
    assert join_dashed_values(["--for"]) == ["--for"]
