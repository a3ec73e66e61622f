"""The Windows kill switch (core.blocks.Enforcer): what "camera off" and "microphone off" mean
on Windows, and exactly how each is undone.

Off means, in order:

1. Windows' own privacy switch denies the kind to apps (switches.ConsentSwitch): for the
   user's account the ConsentStore ``Value`` = ``Deny`` (HKCU, no elevation); for the
   service or an elevated camguard the machine policy ``LetAppsAccessCamera`` /
   ``LetAppsAccessMicrophone`` = 2 (Force Deny, every account). Recorded as a
   ``StepKind.PLATFORM`` step ``windows-registry:KEY\\NAME`` whose data is the switches.Change
   (what was there before); undo restores it unless someone changed it since.
2. Cameras, when asked (``BlockOptions.unbind_usb``, the Linux "leave the driver" option) and
   elevated: each camera device disabled (devnode.py), step ``windows-device:`` with the
   instance ids camguard disabled; undo enables those still disabled.
3. Microphones, when the caller mutes (a user's camguard, not the service): every capture
   endpoint muted (mute.EndpointMute), a ``StepKind.MIC_MUTE`` step as on Linux.
4. Whoever holds the device now is ended (the killer given: the service's gate decides
   whose), since a privacy switch flipped during a stream does not stop every desktop app.

Pure apart from the objects given to the constructor (Fake* in the tests).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from camguard.core.blocks import (
    ActionResult,
    Applied,
    BlockOptions,
    Outcome,
    StepKind,
    UndoStep,
    worst,
)
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.platform.base import MicSwitch, ProcessKiller
from camguard.platform.windows.devnode import plan_disable, plan_enable
from camguard.platform.windows.switches import Change, ConsentSwitch

REGISTRY_STEP = "windows-registry:"
DEVICE_STEP = "windows-device:"
Holders = Callable[[DeviceKind], Iterable[tuple[int, float | None]]]
NO_DEVICE_SWITCH = ("disabling camera devices needs an elevated camguard (the service, or "
                    "run as administrator)")


@dataclass
class _Tally:
    steps: list[UndoStep] = field(default_factory=list)
    results: list[ActionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, result: ActionResult) -> None:
        if result.ok:
            self.notes.append(result.message)
        else:
            self.results.append(result)

    def summary(self, state: str) -> ActionResult:
        outcome = worst(r.outcome for r in self.results)
        details = tuple(r.message for r in self.results) + tuple(self.notes)
        if outcome is Outcome.DONE:
            return ActionResult(outcome, "; ".join(self.notes) or f"switched {state}", details)
        message = "; ".join(r.message for r in self.results)
        if self.steps and state == "off":
            message += " (the rest is switched off)"
        return ActionResult(outcome, message, details)


def _why(exc: BaseException) -> str:
    return literal(str(exc) or type(exc).__name__, 200)


class WindowsEnforcer:
    """core.blocks.Enforcer. ``machine``: flip the machine policy (HKLM, every account)
    instead of the user's ConsentStore; ``devices``: devnode.CfgMgrDevices (None when not
    elevated); ``mic``: the microphone switch (None in the service); ``holders(kind)``:
    (pid, create_time) of each process using a device of that kind now."""

    def __init__(self, switch: ConsentSwitch, killer: ProcessKiller, holders: Holders, *,
                 machine: bool, devices: Any = None, mic: MicSwitch | None = None) -> None:
        self.switch = switch
        self.killer = killer
        self.holders = holders
        self.machine = machine
        self.devices = devices
        self.mic = mic

    # -- off ---------------------------------------------------------------------------------
    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        t = _Tally()
        self._deny(kind, t)
        if kind is DeviceKind.CAMERA and options.unbind_usb:
            self._disable_devices(already, t)
        if kind is DeviceKind.MICROPHONE and self.mic is not None and not any(
                s.kind is StepKind.MIC_MUTE for s in already):
            result, data = self.mic.mute_all()
            if data not in ("", "[]"):
                t.steps.append(UndoStep(StepKind.MIC_MUTE, data=data))
            t.add(result if result.outcome is not Outcome.NOT_FOUND
                  else ActionResult(Outcome.DONE, result.message))
        self._end_holders(kind, t)
        return Applied(tuple(t.steps), t.summary("off"))

    def _deny(self, kind: DeviceKind, t: _Tally) -> None:
        where = "the machine policy" if self.machine else "your privacy settings"
        try:
            change = self.switch.deny(kind, policy=self.machine)
        except OSError as exc:
            t.add(ActionResult(Outcome.REFUSED if isinstance(exc, PermissionError)
                               else Outcome.FAILED,
                               f"Windows would not deny the {kind.value} in {where}: "
                               f"{_why(exc)}"))
            return
        if change is None:
            t.notes.append(f"Windows already denies the {kind.value} to apps ({where})")
            return
        t.steps.append(UndoStep(StepKind.PLATFORM, f"{REGISTRY_STEP}{change.key}\\{change.name}",
                                data=change.to_text()))
        t.notes.append(f"Windows now denies the {kind.value} to apps ({where})")

    def _disable_devices(self, already: Sequence[UndoStep], t: _Tally) -> None:
        if self.devices is None:
            t.add(ActionResult(Outcome.REFUSED, NO_DEVICE_SWITCH))
            return
        ours = {d for s in already if s.kind is StepKind.PLATFORM
                and s.target.startswith(DEVICE_STEP) for d in _ids(s.data)}
        done: list[str] = []
        try:
            for instance in plan_disable(self.devices.cameras()):
                if instance in ours:
                    continue
                self.devices.disable(instance)
                done.append(instance)
        except OSError as exc:
            t.add(ActionResult(Outcome.FAILED, f"disabling a camera device: {_why(exc)}"))
        if done:
            # One step per device: a re-applied block adds the new ones, never repeats one.
            t.steps.extend(UndoStep(StepKind.PLATFORM, DEVICE_STEP + d, data=json.dumps([d]))
                           for d in done)
            t.notes.append(f"disabled {len(done)} camera device(s)")

    def _end_holders(self, kind: DeviceKind, t: _Tally) -> None:
        try:
            found = sorted(set(self.holders(kind)))
        except OSError as exc:
            t.add(ActionResult(Outcome.FAILED, f"cannot tell who uses the {kind.value}: "
                               f"{_why(exc)}"))
            return
        for pid, create_time in found:
            result = self.killer.kill(pid, create_time)
            if result.outcome is not Outcome.NOT_FOUND:  # gone by itself: nothing to say
                t.add(result)

    # -- on again ----------------------------------------------------------------------------
    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult:
        t = _Tally()
        if not steps:
            # No record: camguard cannot know what the switches were before, so it leaves
            # them (never lifts a switch someone else flipped).
            return ActionResult(Outcome.DONE, f"no recorded {kind.value} block: Windows' "
                                "switches left as they are")
        for step in reversed(steps):
            try:
                self._undo(step, t)
            except OSError as exc:
                t.add(ActionResult(Outcome.FAILED, f"restoring {literal(step.target, 200)}: "
                                   f"{_why(exc)}"))
        return t.summary("on")

    def _undo(self, step: UndoStep, t: _Tally) -> None:
        if step.kind is StepKind.MIC_MUTE:
            if self.mic is None:
                t.add(ActionResult(Outcome.FAILED, "cannot unmute: no microphone switch here"))
            else:
                t.add(self.mic.restore(step.data))
        elif step.kind is StepKind.PLATFORM and step.target.startswith(REGISTRY_STEP):
            try:
                change = Change.from_text(step.data)
            except (ValueError, KeyError, TypeError, IndexError):
                t.add(ActionResult(Outcome.NOT_FOUND, f"{literal(step.target, 200)}: the "
                                   "record is unreadable; set it by hand in Settings > "
                                   "Privacy"))
                return
            t.notes.append(self.switch.restore(change))
        elif step.kind is StepKind.PLATFORM and step.target.startswith(DEVICE_STEP):
            if self.devices is None:
                t.add(ActionResult(Outcome.REFUSED, "enabling camera devices needs an "
                                   "elevated camguard: " + literal(step.target, 200)))
                return
            enable, gone = plan_enable(step.data, self.devices.cameras())
            for instance in enable:
                self.devices.enable(instance)
            t.notes.append(f"enabled {len(enable)} camera device(s)"
                           + (f" ({len(gone)} no longer present)" if gone else ""))
        # Other platforms' steps (a file carried over from Linux) mean nothing here.


def _ids(data: str) -> list[str]:
    try:
        got = json.loads(data)
    except ValueError:
        return []
    return [d for d in got if isinstance(d, str)] if isinstance(got, list) else []
