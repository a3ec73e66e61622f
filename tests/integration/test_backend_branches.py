"""The Linux platform's kill switch is wired only to a killer that knows the sound server:
anything else is a wiring mistake, refused before any device is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from camguard.core.settings import DetectionSettings
from camguard.platform import current

pytestmark = pytest.mark.real


class PlainKiller:
    """Ends processes, but cannot tell the sound server from an app."""

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> Any:
        raise AssertionError("never called")


def test_a_killer_that_cannot_spot_the_sound_server_is_refused(tmp_path: Path) -> None:
    settings = DetectionSettings(camera_globs=(str(tmp_path / "video*"),), mic_globs=())
    with pytest.raises(TypeError, match="a killer that knows the sound server"):
        current().enforcer(settings, cast(Any, PlainKiller()), mute=False,
                           state_file=tmp_path / "helper.json", escalate=False)
