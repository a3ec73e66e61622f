"""Contract tests (as psutil's test_contracts.py): every platform provides every capability
of the façade, or its null object, which works without raising and says in one sentence why
the capability is missing. The Linux platform is the real one on this machine."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camguard import platform as facade
from camguard.core.blocks import BlockOptions, Outcome
from camguard.core.models import DeviceKind
from camguard.core.settings import DetectionSettings
from camguard.platform import base, null
from camguard.platform.base import Platform
from camguard.platform.process import ProcessDescriber

SETTINGS = DetectionSettings(camera_globs=("/nonexistent/video*",),
                             mic_globs=("/nonexistent/pcmC*D*c",), watch_sound_server=False)
NULLS = (null.NullKiller, null.NullEnforcer, null.NullMicSwitch, null.NullPolicySource,
         null.NullAutostart, null.NullNotifications, null.NullServiceTransport,
         null.NullSystemPaths, null.NullProbes, null.NullOriginResolver, null.NullFreezer)


def capabilities(p: Platform) -> dict[str, tuple[Any, type]]:
    """Each capability the façade hands out, built, with the protocol it must satisfy."""
    killer = p.killer(SETTINGS.sound_server_exes)
    return {
        "killer": (killer, base.ProcessKiller),
        "enforcer": (p.enforcer(SETTINGS, killer), base.DeviceEnforcer),
        "mic_switch": (p.mic_switch(), base.MicSwitch),
        "policy_source": (p.policy_source(), base.PolicySource),
        "autostart": (p.autostart(), base.AutostartEntry),
        "notifications": (p.notifications(), base.Notifications),
        "service_transport": (p.service_transport(), base.ServiceTransport),
        "system_paths": (p.system_paths(), base.SystemPaths),
        "probes": (p.probes(), base.Probes),
        "origin_resolver": (p.origin_resolver(), base.OriginResolver),
        # Made lazily: no watchdog starts until the first freeze (none here).
        "freezer": (p.freezer(Path("/nonexistent/frozen.json")), base.ProcessFreezer),
    }


PLATFORMS: dict[str, Callable[[], Platform]] = {
    "this machine's": facade.current,
    "one without a backend": lambda: null.NullPlatform("plan9"),
}


@pytest.fixture(params=list(PLATFORMS))
def platform(request: pytest.FixtureRequest) -> Platform:
    return PLATFORMS[request.param]()


def test_every_capability_is_provided_or_a_null_object(platform: Platform) -> None:
    assert isinstance(platform, Platform)
    for name, (obj, protocol) in capabilities(platform).items():
        assert obj is not None, name
        assert isinstance(obj, protocol), (name, obj)
        if isinstance(obj, NULLS):
            reason = obj.reason
            # One sentence: said on one line, without a full stop inside it.
            assert reason and "\n" not in reason and ". " not in reason, (name, reason)
    for source in platform.usage_sources(SETTINGS, ProcessDescriber()):
        assert isinstance(source, base.UsageSource)


def test_the_facade_chooses_once_and_linux_is_real_here() -> None:
    here = facade.current()
    assert facade.current() is here and here.name == "linux"
    built = capabilities(here)
    assert [n for n, (obj, _p) in built.items() if isinstance(obj, NULLS)] == []
    # As root with the sound server not watched (the service), each account's PipeWire,
    # Flatpak grants and sound server are watched through children as the account.
    accounts = (["pipewire-users", "portal-users", "pulse-users"] if os.geteuid() == 0
                else [])
    assert [s.name for s in here.usage_sources(SETTINGS, ProcessDescriber())] == [
        "procfs", *accounts, "rawusb", "geoclue"]


def test_null_objects_work_and_say_why() -> None:
    p = null.NullPlatform("plan9")
    built = {name: obj for name, (obj, _p) in capabilities(p).items()}
    assert all(isinstance(obj, NULLS) for obj in built.values())
    assert p.usage_sources(SETTINGS, ProcessDescriber()) == []
    killed = built["killer"].kill(1, None)
    assert killed.outcome is Outcome.FAILED and "no backend for plan9" in killed.message
    applied = built["enforcer"].apply(DeviceKind.CAMERA, BlockOptions())
    assert applied.steps == () and applied.result.outcome is Outcome.FAILED
    assert built["enforcer"].undo(DeviceKind.CAMERA, ()).outcome is Outcome.FAILED
    assert built["mic_switch"].mute_all()[0].outcome is Outcome.FAILED
    assert built["policy_source"].read() is None
    assert built["autostart"].is_enabled() is False
    built["autostart"].set(False)  # switching off what is off is not a failure
    with pytest.raises(OSError, match="starting at login: camguard has no backend"):
        built["autostart"].set(True)
    assert built["notifications"].available is False
    assert "no backend" in built["notifications"].describe()
    a, b = socket.socketpair()
    with a, b, pytest.raises(OSError, match="the system service"):
        built["service_transport"].peer_credentials(a)
    assert built["probes"].open_holders(["/dev/null"]) == {}
    facts = built["probes"].sound_server_facts()
    assert not facts.reachable and "no backend" in facts.why
    assert built["origin_resolver"].origin(1, "/bin/sh") is None
    assert built["origin_resolver"].cached(None, "/bin/sh") is None
    built["origin_resolver"].warm()
    # No journal and no watchdog here: nothing is ever stopped, and it says why.
    import os

    frozen = built["freezer"].freeze(os.getpid(), 1.0)
    assert frozen.outcome is Outcome.REFUSED and "watchdog" in frozen.message
    assert built["freezer"].thaw(os.getpid(), 1.0).outcome is Outcome.NOT_FOUND
    built["freezer"].close()


def test_linux_transport_names_the_real_peer() -> None:
    import os

    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        got = facade.current().service_transport().peer_credentials(a)
    assert got == (os.getpid(), os.geteuid(), os.getegid())


def test_a_command_on_a_platform_without_a_backend_says_why(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Any) -> None:
    from camguard.app import killswitch
    from camguard.cli import main

    monkeypatch.setenv("CAMGUARD_SOCKET", str(tmp_path / "no-service.sock"))
    monkeypatch.setenv("CAMGUARD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("CAMGUARD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr(killswitch, "current", lambda: null.NullPlatform("plan9"))
    assert main(["kill", "12345"]) == 1
    assert "ending a process: camguard has no backend for plan9 yet" in capsys.readouterr().err
    assert main(["block", "camera"]) == 1
    assert "the kill switch: camguard has no backend for plan9 yet" in capsys.readouterr().err
