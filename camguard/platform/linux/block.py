"""Camera and microphone off at device level: node permissions, USB unbind, udev, mute.

Nothing on Linux can veto an open of a device node in flight (fanotify permission events
are refused for character devices, PLATFORM-FACTS.md), so "off" means: take the node's
permissions away (root:root 0000, no ACL) so no new opener gets in, then end whoever still
holds it open. Optionally the USB interface is unbound from uvcvideo (the node disappears)
and a udev rule keeps new nodes closed across replug and reboot. The microphone is also
muted at the sound server, which holds the raw capture nodes for every desktop app.

The root-only work is done by the privileged helper (helper.py), run by helper_runner.py:
imported and run in this process when camguard is root, else through ``pkexec`` when the
helper is installed.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import stat
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

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
from camguard.platform.linux import helper
from camguard.platform.linux.kill import HelperCaller
from camguard.platform.linux.node_state import manual_restore, saved_text
from camguard.platform.linux.user_block import end_own_holders

log = logging.getLogger(__name__)

_OUTCOME = {helper.OK: Outcome.DONE, helper.REFUSED: Outcome.REFUSED,
            helper.NOT_FOUND: Outcome.NOT_FOUND}


def outcome_of(code: int) -> Outcome:
    return _OUTCOME.get(code, Outcome.FAILED)


NO_HELPER = ("needs root or the privileged helper (/usr/libexec/camguard/camguard-helper, "
             "installed by the camguard package), which is not installed")


# -- the microphone's sound-server mute ---------------------------------------------------------
class MicSwitch(Protocol):
    """Mutes every microphone at the sound server and restores exactly what it changed."""

    def mute_all(self) -> tuple[ActionResult, str]:
        """Mute; returns the result and JSON text that :meth:`restore` needs."""
        ...

    def restore(self, data: str) -> ActionResult: ...


class MicControlSwitch:
    """:class:`MicSwitch` over mic_control's ``MicControl`` (all-off / all-on).

    With ``control`` (the app's long-lived MicControl) its all-off watcher keeps new and
    re-unmuted sources muted while the block lasts. Without it (a CLI command) each call
    uses a short-lived MicControl: the mute stays on the server after camguard exits, and
    the saved state (which sources were muted before) travels in the block's undo data.
    """

    def __init__(self, server: str | None = None, control: Any = None) -> None:
        self._server = server
        self._control = control

    def mute_all(self) -> tuple[ActionResult, str]:
        from camguard.platform.linux.mic_control import MicControl

        mc = self._control if self._control is not None else MicControl(self._server)
        try:
            r = mc.all_off()
            data = json.dumps(mc.state_dict(), sort_keys=True)
        finally:
            if self._control is None:
                mc.close()
        message = r.message
        if not r.ok and self._control is None:
            # A short-lived MicControl's "stays armed" ends with this process: do not promise it.
            message = message.split("; all-off stays armed")[0]
        return ActionResult(Outcome.DONE if r.ok else Outcome.FAILED, message), data

    def restore(self, data: str) -> ActionResult:
        from camguard.platform.linux.mic_control import MicControl

        if self._control is not None and self._control.state_dict().get("all_off") is True:
            r = self._control.all_on()
        else:
            # No long-lived control, or one that does not know about this block (camguard
            # restarted): resume from what the block recorded, then switch back on.
            try:
                state = json.loads(data)
            except ValueError:
                state = None  # from_state tolerates garbage: nothing remembered is restored
            mc = MicControl.from_state(state, self._server)
            try:
                r = mc.all_on()
            finally:
                mc.close()
        return ActionResult(Outcome.DONE if r.ok else Outcome.FAILED, r.message)


def load_mic_switch(server: str | None = None, control: Any = None) -> MicSwitch | None:
    """The sound-server mute for ``block microphone``; None if pulsectl is unavailable."""
    try:
        import camguard.platform.linux.mic_control  # noqa: F401  (pulsectl loads libpulse)
    except (ImportError, OSError) as exc:
        log.info("microphone mute unavailable: %s", exc)
        return None
    return MicControlSwitch(server, control)


@runtime_checkable
class HolderEnder(Protocol):
    """What the blocker needs of a killer (kill.Killer, or the service's gate around it)."""

    def kill(self, pid: int, create_time: float | None = None, *, force: bool = False
             ) -> ActionResult: ...

    def is_sound_server(self, pid: int) -> bool: ...


class _Tally:
    """What one apply/undo has done so far: steps to record, failures, and notes."""

    def __init__(self) -> None:
        self.steps: list[UndoStep] = []
        self.results: list[ActionResult] = []
        self.notes: list[str] = []
        self.muted = False  # the microphones are muted at the sound server (now or before)


# -- the enforcer ------------------------------------------------------------------------------
class LinuxBlocker:
    """A :class:`camguard.core.blocks.Enforcer` for Linux.

    Threads: the caller's; may block for seconds (ending holders waits for them; pkexec
    waits for the user's password).
    """

    def __init__(self, camera_globs: Sequence[str], mic_globs: Sequence[str], *,
                 helper: HelperCaller | None, killer: HolderEnder,
                 mic: MicSwitch | None = None,
                 sys_root: str = "/sys", rules_dir: str = "/etc/udev/rules.d") -> None:
        self._globs = {DeviceKind.CAMERA: tuple(camera_globs),
                       DeviceKind.MICROPHONE: tuple(mic_globs)}
        self._helper = helper
        self._killer = killer
        self._mic = mic
        self._sys = sys_root
        self._rules_dir = rules_dir

    def nodes(self, kind: DeviceKind) -> list[str]:
        """Existing paths the globs of ``kind`` match (character devices or stand-ins)."""
        out: list[str] = []
        for pattern in self._globs[kind]:
            for path in sorted(glob.glob(pattern)):
                if path not in out and not os.path.isdir(path):
                    out.append(path)
        return out

    # -- switch off ----------------------------------------------------------------------
    def apply(self, kind: DeviceKind, options: BlockOptions,
              already: Sequence[UndoStep] = ()) -> Applied:
        t = _Tally()
        if kind is DeviceKind.MICROPHONE:
            self._mute(t)
        nodes = self.nodes(kind)
        t.muted = muted = any(s.kind is StepKind.MIC_MUTE for s in (*already, *t.steps))
        globs = ", ".join(map(literal, self._globs[kind]))
        if not nodes and not muted and not (kind is DeviceKind.CAMERA and options.persistent):
            t.results.append(ActionResult(Outcome.NOT_FOUND, f"no {kind.value} found (nothing "
                                          f"matches {globs})"))
        elif nodes and self._helper is None and kind is DeviceKind.CAMERA:
            self._guard_own(nodes, t)
        elif nodes and self._helper is None:
            if muted:
                # The mute is what matters on a desktop (apps record through the sound
                # server); the raw nodes are a second lock that needs privileges.
                t.notes.append(f"raw capture nodes left as they are: closing them {NO_HELPER}")
            else:
                t.results.append(ActionResult(Outcome.REFUSED, f"blocking {kind.value} device "
                                              "nodes " + NO_HELPER))
        if self._helper is None:
            return Applied(tuple(t.steps), _summary(t, "off"))
        for node in nodes:
            self._block_node(self._helper, kind, node, t)
        if kind is DeviceKind.CAMERA and options.unbind_usb:
            self._unbind(self._helper, nodes, already, t)
        if kind is DeviceKind.CAMERA and options.persistent:
            code, reply = self._helper.call("install-udev-rule")
            if code == helper.OK:
                t.steps.append(UndoStep(StepKind.UDEV_RULE, str(reply.get("path", ""))))
                t.notes.append("udev rule installed" + _note(reply))
            else:
                t.results.append(ActionResult(outcome_of(code), "udev rule not installed: "
                                              + _error(reply)))
        return Applied(tuple(t.steps), _summary(t, "off"))

    def _guard_own(self, nodes: Sequence[str], t: _Tally) -> None:
        """No privileges: end this account's holders now and its openers while the block
        lasts (user_block.py); other accounts are named, never signalled."""
        uid = os.geteuid()
        t.steps.append(UndoStep(StepKind.USER_GUARD, str(uid)))
        results, notes = end_own_holders(
            nodes, self._killer.kill, uid, DeviceKind.CAMERA.value)
        t.results.extend(results)
        t.notes.extend(notes[:-1])
        t.notes.append("while the block lasts, camguard's tray closes the camera for any of "
                       "your apps that opens it")
        t.notes.extend(notes[-1:])

    def _mute(self, t: _Tally) -> None:
        if self._mic is None:
            t.notes.append("muting at the sound server is not available")
            return
        result, data = self._mic.mute_all()
        if result.ok:
            t.steps.append(UndoStep(StepKind.MIC_MUTE, data=data))
            t.notes.append(result.message)
        elif result.outcome is Outcome.NOT_FOUND:
            t.notes.append(result.message)  # no sound server to mute: the nodes decide
        else:
            t.results.append(result)

    def _block_node(self, runner: HelperCaller, kind: DeviceKind, node: str, t: _Tally
                    ) -> None:
        code, reply = runner.call("block-node", node)
        shown = literal(node, 200)
        if code != helper.OK:
            t.results.append(ActionResult(outcome_of(code), f"{shown}: {_error(reply)}"))
            return
        t.steps.append(UndoStep(StepKind.NODE, node, saved_text(reply.get("saved"))))
        t.notes.append(f"{shown} closed")
        for holder in reply.get("holders") or []:
            try:
                pid, ctime = int(holder["pid"]), float(holder["create_time"])
            except (KeyError, TypeError, ValueError):
                continue
            if kind is DeviceKind.MICROPHONE and self._killer.is_sound_server(pid):
                if t.muted:
                    t.notes.append(f"left the sound server (pid {pid}) running: it holds "
                                   f"{shown} for every app; their recording is muted instead")
                else:
                    t.results.append(ActionResult(
                        Outcome.FAILED, f"the sound server (pid {pid}) still holds {shown} and "
                        "could not be muted: apps recording through it are not blocked"))
                continue
            ended = self._killer.kill(pid, ctime)
            if ended.outcome in (Outcome.DONE, Outcome.NOT_FOUND):
                t.notes.append(ended.message)
            else:
                t.results.append(ActionResult(Outcome.FAILED, f"{shown} is closed to new "
                                              f"openers but still held open: {ended.message}"))

    def _unbind(self, runner: HelperCaller, nodes: Sequence[str], already: Sequence[UndoStep],
                t: _Tally) -> None:
        done = {s.target for s in already if s.kind is StepKind.USB}
        for node in nodes:
            iface = usb_interface_of(node, self._sys)
            if iface is None:
                t.notes.append(f"{literal(node, 200)} is not a USB camera: not unbound")
                continue
            if iface in done:
                continue
            code, reply = runner.call("unbind-usb", iface)
            if code == helper.OK:
                t.steps.append(UndoStep(StepKind.USB, iface))
                t.notes.append(f"USB interface {iface} unbound from uvcvideo")
            else:
                t.results.append(ActionResult(outcome_of(code), f"USB interface {iface} not "
                                              f"unbound: {_error(reply)}"))

    # -- switch on -------------------------------------------------------------------------
    def undo(self, kind: DeviceKind, steps: Sequence[UndoStep]) -> ActionResult:
        if not steps:
            return self._release_unrecorded(kind)
        t = _Tally()
        for step in reversed(steps):
            if step.kind is StepKind.MIC_MUTE:
                self._unmute(step, t)
                continue
            if step.kind is StepKind.USER_GUARD:
                continue  # nothing was changed at the OS level: the guard just stops
            if self._helper is None:
                t.results.append(ActionResult(Outcome.REFUSED, f"restoring {kind.value} "
                                              + NO_HELPER + manual_restore(step)))
                continue
            action = {StepKind.NODE: "unblock-node", StepKind.USB: "bind-usb",
                      StepKind.UDEV_RULE: "remove-udev-rule"}[step.kind]
            args = () if step.kind is StepKind.UDEV_RULE else (step.target,)
            code, reply = self._helper.call(action, *args)
            shown = literal(step.target, 200) or action
            if code == helper.OK:
                t.notes.append(_restored(shown, reply))
            elif code == helper.NOT_FOUND and step.kind is not StepKind.NODE:
                t.notes.append(f"{shown}: {_error(reply)} (nothing to restore)")
            else:
                # A node the helper has no saved state for stays closed: say how to reopen
                # it by hand, from what camguard recorded.
                t.results.append(ActionResult(
                    Outcome.FAILED if code == helper.NOT_FOUND else outcome_of(code),
                    f"{shown}: {_error(reply)}{manual_restore(step)}"))
        return _summary(t, "on")

    def _unmute(self, step: UndoStep, t: _Tally) -> None:
        if self._mic is None:
            t.results.append(ActionResult(Outcome.FAILED, "cannot unmute: muting at the sound "
                                          "server is not available"))
            return
        r = self._mic.restore(step.data)
        if r.ok:
            t.notes.append(r.message)
        else:
            t.results.append(r)

    def _release_unrecorded(self, kind: DeviceKind) -> ActionResult:
        """No record of a block: release nodes that look blocked, if the helper saved them."""
        looks_blocked = [p for p in self.nodes(kind) if _looks_blocked(p)]
        rule = os.path.join(self._rules_dir, helper.UDEV_RULE_NAME)
        has_rule = kind is DeviceKind.CAMERA and os.path.exists(rule)
        if not looks_blocked and not has_rule:
            return ActionResult(Outcome.DONE, "was not blocked")
        if self._helper is None:
            return ActionResult(Outcome.REFUSED, "looks blocked, but restoring it " + NO_HELPER)
        t = _Tally()
        for path in looks_blocked:
            code, reply = self._helper.call("unblock-node", path)
            if code == helper.OK:
                t.notes.append(_restored(literal(path, 200), reply))
            elif code != helper.NOT_FOUND:  # NOT_FOUND: mode 0000 by someone else's choice
                t.results.append(ActionResult(outcome_of(code),
                                              f"{literal(path, 200)}: {_error(reply)}"))
        if has_rule:
            code, reply = self._helper.call("remove-udev-rule")
            if code == helper.OK:
                t.notes.append("udev rule removed")
            else:
                t.results.append(ActionResult(outcome_of(code), f"udev rule: {_error(reply)}"))
        if not t.notes and not t.results:
            return ActionResult(Outcome.DONE, "was not blocked by camguard")
        return _summary(t, "on")


def usb_interface_of(node: str, sys_root: str = "/sys") -> str | None:
    """The USB interface (``1-2:1.0``) behind ``/dev/videoN``, from sysfs; None if not USB."""
    name = os.path.basename(node)
    if not fnmatch.fnmatchcase(name, "video[0-9]*"):
        return None
    real = os.path.realpath(f"{sys_root}/class/video4linux/{name}/device")
    iface = os.path.basename(real)
    return iface if helper.USB_IFACE_RE.fullmatch(iface) else None


def _looks_blocked(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_IMODE(st.st_mode) == 0 and st.st_uid == 0 and st.st_gid == 0


def _error(reply: dict[str, Any]) -> str:
    return literal(str(reply.get("error") or "failed"), 300)


def _restored(shown: str, reply: dict[str, Any]) -> str:
    """What an ``unblock-node`` (or another OK answer) did, in words."""
    if reply.get("applied") is False:
        # The helper found a different device (or a recreated node) at the path: it kept
        # the blocked one's saved mode, owner and ACL off it.
        return f"{shown} not restored{_note(reply)}"
    return f"{shown} restored" + _note(reply)


def _note(reply: dict[str, Any]) -> str:
    note = reply.get("note")
    return f" ({literal(str(note), 300)})" if note else ""


def _summary(t: _Tally, state: str) -> ActionResult:
    outcome = worst(r.outcome for r in t.results) if t.results else Outcome.DONE
    details = tuple(r.message for r in t.results) + tuple(t.notes)
    if outcome is Outcome.DONE:
        message = "; ".join(t.notes) if t.notes else f"switched {state}"
    else:
        message = "; ".join(r.message for r in t.results)
        if t.steps and state == "off":
            message += " (the rest is switched off)"
    return ActionResult(outcome, message, details)
