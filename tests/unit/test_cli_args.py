"""Argument errors speak the user's words, never camguard's internal names (issue 17)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from camguard.cli import build_parser, main
from camguard.cli.argtypes import join_dashed_values


@pytest.mark.parametrize(("argv", "said"), [
    (["block", "nonsense"], "'nonsense' is not one of: camera, microphone, all"),
    (["unblock", "cam"], "'cam' is not one of: camera, microphone, all"),
    (["block", "camera", "--for", "-5m"], "not a duration: '-5m'"),
    (["rules", "mode", "bogus"], "'bogus' is not one of: ask, notify-only, "
                                 "block-all-not-allowed"),
    (["rules", "add", "--exe", "/bin/true", "--verdict", "nope"],
     "'nope' is not one of: allow, ask, freeze, kill, block-device"),
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


@pytest.mark.parametrize(("argv", "said"), [
    (["history", "--since", "-1h"], "--since: cannot understand '-1h'"),
    (["history", "--until", "-2d"], "--until: cannot understand '-2d'"),
    (["history", "--limit", "-3"], "--limit must be 0 or more"),
    (["rules", "add", "--exe", "/bin/true", "--verdict", "allow", "--duration", "-5m"],
     "'-5m' is not one of: once, 15m, 1h, until-restart, always"),
])
def test_a_negative_value_gets_its_own_error(argv: list[str], said: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # Was "expected one argument" for every option but --for; --max-clients -1 started a
    # service that refused every connection.
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code in (1, 2) and said in err, err
    assert "expected one argument" not in err


@pytest.mark.parametrize(("argv", "said"), [
    (["service", "--max-clients", "-1"], "--max-clients: must be 1 or more: '-1'"),
    (["service", "--max-per-user", "0"], "--max-per-user: must be 1 or more: '0'"),
    (["service", "--heartbeat", "-1"], "--heartbeat: must be more than 0"),
])
def test_service_numbers_are_checked(argv: list[str], said: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # Parsed only (a parse that succeeds must not start a service here): --max-clients -1
    # used to start one that refused every connection.
    with pytest.raises(SystemExit, match="2"):
        build_parser().parse_args(join_dashed_values(argv))
    err = capsys.readouterr().err
    assert said in err and "expected one argument" not in err


@pytest.mark.parametrize("option", ["--config", "--policy-file"])
def test_a_named_file_that_does_not_exist_is_an_error(option: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    missing = tmp_path / "typo.toml"
    with pytest.raises(SystemExit, match="2"):
        main(["policy", "show", option, str(missing)])
    assert f"argument {option}: no such file: '{missing}'" in capsys.readouterr().err


def test_a_missing_selftest_module_names_the_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 17: "cannot be loaded" did not say what to install.
    from camguard.selftest.camera import load_opencv
    from camguard.selftest.microphone import load_sounddevice

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    for load in (load_opencv, load_sounddevice):
        module, why = load()
        assert module is None
        assert why.endswith("(install it with: pip install 'camguard[selftest]')"), why
