"""The macOS microphone switch: every CoreAudio input device's mute (kAudioDevicePropertyMute,
input scope, main element) switched on, and exactly those switched back off again; and the
kill switch built on it.

A device without a settable mute on its main element (some only mute per channel) is named
in the result, never silently skipped. Devices are remembered by UID, not object id: object
ids change when a device is unplugged and plugged in again. NOT RUN ON macOS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

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
from camguard.platform.macos import hal
from camguard.platform.macos.revoke import Holder, TccRevoker

MAX_DATA = 64 * 1024
NO_CAMERA_SWITCH = ("macOS lets no third-party app switch a camera off at device level; end "
                    "the app that uses it instead (camguard kill PID)")


class MacMicSwitch:
    """platform.base.MicSwitch over CoreAudio. The caller's thread; one HAL call per device."""

    def __init__(self, audio: hal.PropertyAccess) -> None:
        self._audio = audio

    def _inputs(self) -> list[tuple[int, str, str]]:
        """(object id, UID, shown name) of every device that can record."""
        out = []
        for dev in hal.input_devices(self._audio):
            uid = hal.text_or(self._audio, dev, hal.DEVICE_UID) or f"object-{dev}"
            name = hal.text_or(self._audio, dev, hal.NAME) or uid or f"device {dev}"
            out.append((dev, uid, literal(name, 100)))
        return out

    def mute_all(self) -> tuple[ActionResult, str]:
        try:
            inputs = self._inputs()
        except hal.HalError as exc:
            return ActionResult(Outcome.FAILED, f"cannot list microphones: {exc}"), ""
        muted: list[str] = []
        names: list[str] = []
        failed: list[str] = []
        for dev, uid, name in inputs:
            try:
                if self._audio.u32(dev, hal.MUTE, hal.SCOPE_INPUT):
                    continue  # muted already, by someone else: not ours to unmute later
                self._audio.set_u32(dev, hal.MUTE, hal.SCOPE_INPUT, 1)
            except hal.HalError as exc:
                failed.append(f"{name} cannot be muted ({exc})")
                continue
            muted.append(uid)
            names.append(name)
        data = json.dumps({"unmute": muted})
        if failed:
            return ActionResult(Outcome.FAILED, "; ".join(failed), tuple(failed)), data
        if not inputs:
            return ActionResult(Outcome.NOT_FOUND, "no microphone found"), data
        said = ", ".join(names) if names else "every microphone was muted already"
        return ActionResult(Outcome.DONE, f"muted: {said}"), data

    def restore(self, data: str) -> ActionResult:
        try:
            doc = json.loads(data) if len(data) <= MAX_DATA else None
            uids = doc["unmute"] if isinstance(doc, dict) else None
        except (ValueError, KeyError):
            uids = None
        if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
            return ActionResult(Outcome.FAILED, "cannot unmute: the saved list of muted "
                                                "microphones is damaged")
        try:
            present = {uid: (dev, name) for dev, uid, name in self._inputs()}
        except hal.HalError as exc:
            return ActionResult(Outcome.FAILED, f"cannot list microphones: {exc}")
        done, problems = [], []
        for uid in uids:
            if uid not in present:
                problems.append(f"{literal(uid, 100)} is gone (unplugged?): nothing to unmute")
                continue
            dev, name = present[uid]
            try:
                self._audio.set_u32(dev, hal.MUTE, hal.SCOPE_INPUT, 0)
                done.append(name)
            except hal.HalError as exc:
                problems.append(f"{name} cannot be unmuted ({exc})")
        if any("cannot be unmuted" in p for p in problems):
            return ActionResult(Outcome.FAILED, "; ".join(problems), tuple(problems))
        message = f"unmuted: {', '.join(done)}" if done else "nothing to unmute"
        return ActionResult(Outcome.DONE, message, tuple(problems))


class MacEnforcer:
    """platform.base.DeviceEnforcer for macOS: microphones are muted through CoreAudio;
    cameras cannot be switched off at device level, which the result says. With
    ``BlockOptions.persistent`` (the Linux "keep it closed after replug/reboot" option) a
    camera block also resets the camera permission of each app using the camera now
    (revoke.TccRevoker: ``tccutil reset Camera <bundle id>``), so it must ask again; that
    reset leaves no undo step, since nothing can restore the answer it forgot."""

    def __init__(self, mic: MacMicSwitch | None, revoker: TccRevoker | None = None,
                 holders: Callable[[DeviceKind], Sequence[Holder]] | None = None) -> None:
        self._mic = mic
        self._revoker = revoker
        self._holders = holders

    def _camera(self, options: BlockOptions) -> Applied:
        if not options.persistent or self._revoker is None or self._holders is None:
            return Applied((), ActionResult(Outcome.FAILED, NO_CAMERA_SWITCH))
        results = self._revoker.revoke_holders(DeviceKind.CAMERA,
                                               self._holders(DeviceKind.CAMERA))
        said = tuple(r.message for r in results) or (
            "no app uses the camera now: no permission to reset",)
        # The block itself still failed: the camera stays on for whoever has it open.
        return Applied((), ActionResult(Outcome.FAILED, NO_CAMERA_SWITCH, said))

    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        if kind is DeviceKind.CAMERA:
            return self._camera(options)
        if self._mic is None:
            return Applied((), ActionResult(Outcome.FAILED, "muting microphones needs "
                                            "pyobjc-framework-CoreAudio, which is not installed"))
        result, data = self._mic.mute_all()
        # A step even when one device failed: the ones that were muted must be undone.
        steps = (UndoStep(StepKind.MIC_MUTE, data=data),) if json.loads(data)["unmute"] else ()
        return Applied(steps, result)

    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult:
        if kind is DeviceKind.CAMERA:
            return ActionResult(Outcome.DONE, "was not blocked")
        results = []
        for step in reversed(steps):
            if step.kind is not StepKind.MIC_MUTE:
                continue
            if self._mic is None:
                results.append(ActionResult(Outcome.FAILED, "cannot unmute: pyobjc-framework-"
                                                             "CoreAudio is not installed"))
                continue
            results.append(self._mic.restore(step.data))
        if not results:
            return ActionResult(Outcome.DONE, "was not blocked")
        outcome = worst(r.outcome for r in results)
        return ActionResult(outcome, "; ".join(r.message for r in results))
