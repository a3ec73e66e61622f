"""Muting every microphone on Windows (Core Audio ``IAudioEndpointVolume`` of each active
capture endpoint) and restoring exactly what camguard changed: platform.base.MicSwitch.

The decisions are pure (:func:`plan_mute`, :func:`plan_unmute`): camguard mutes only what is
not muted yet, remembers those endpoints, and on restore unmutes only those that are still
present and still muted (a microphone the user unmuted or muted meanwhile is theirs). The
endpoints come from a callable: com.capture_volumes on Windows (never run here), Fake*
objects in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from camguard.core.blocks import ActionResult, Outcome
from camguard.core.text import literal

MAX_ENDPOINTS = 64


def plan_mute(muted_now: Mapping[str, bool]) -> list[str]:
    """The endpoints camguard must mute (those not muted yet), sorted."""
    return sorted(ep for ep, muted in muted_now.items() if not muted)


def plan_unmute(data: str, muted_now: Mapping[str, bool]) -> list[str]:
    """The endpoints camguard muted (``data``) that are still there and still muted."""
    try:
        ours = json.loads(data) if data else []
    except ValueError:
        return []
    if not isinstance(ours, list):
        return []
    return sorted(ep for ep in ours[:MAX_ENDPOINTS]
                  if isinstance(ep, str) and muted_now.get(ep) is True)


class EndpointMute:
    """``volumes()`` gives {endpoint id: object with GetMute() and SetMute(bool, None)}."""

    def __init__(self, volumes: Callable[[], Mapping[str, Any]]) -> None:
        self.volumes = volumes

    def _states(self) -> tuple[Mapping[str, Any], dict[str, bool]]:
        found = self.volumes()
        return found, {ep: bool(v.GetMute()) for ep, v in list(found.items())[:MAX_ENDPOINTS]}

    def mute_all(self) -> tuple[ActionResult, str]:
        done: list[str] = []  # what to unmute later, even when a later endpoint fails
        try:
            found, states = self._states()
            for ep in plan_mute(states):
                found[ep].SetMute(True, None)
                done.append(ep)
        except OSError as exc:
            return (ActionResult(Outcome.FAILED, f"muting microphones: {literal(str(exc), 200)}"),
                    json.dumps(done))
        if not states:
            return ActionResult(Outcome.NOT_FOUND, "no active microphone to mute"), "[]"
        return ActionResult(Outcome.DONE, f"muted {len(done)} microphone(s) "
                            f"({len(states) - len(done)} already muted)"), json.dumps(done)

    def restore(self, data: str) -> ActionResult:
        try:
            found, states = self._states()
            todo = plan_unmute(data, states)
            for ep in todo:
                found[ep].SetMute(False, None)
        except OSError as exc:
            return ActionResult(Outcome.FAILED, f"unmuting microphones: {literal(str(exc), 200)}")
        return ActionResult(Outcome.DONE, f"unmuted {len(todo)} microphone(s) camguard muted")
