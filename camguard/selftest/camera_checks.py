"""The selftest's camera checks: frames, detection of camguard's own opens, block, restore."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from typing import Any

from camguard.core.text import literal
from camguard.selftest.camera import (
    Account,
    NodeFacts,
    OpenCvResult,
    load_opencv,
    node_facts,
    node_kind,
    open_as,
    opencv_probe,
    opener_is_ended,
    query_caps,
    unprivileged_account,
)
from camguard.selftest.context import Context, nodes, other_holders
from camguard.selftest.report import Status

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
GUARD_DEADLINE_S = 10.0
ROOT_NOTE = ("camguard runs as root, and root opens any node whatever its mode "
             "(CAP_DAC_OVERRIDE), so root's own open proves nothing")


@dataclass
class Camera:
    path: str
    real: bool  # a video4linux node (major 81), not a stand-in
    what: str
    opened: bool = False  # camguard itself could open it (os.open)
    detected: bool = False  # ... and the monitor named camguard's pid for it
    as_user_before: tuple[str, str] | None = None  # root only: an unprivileged open, before
    captures: bool = True  # the driver says it delivers video (False: e.g. UVC metadata)
    busy: str = ""  # other programs holding it when the selftest began

    @property
    def shown(self) -> str:
        return literal(self.path, 200)


class CameraChecks:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.cameras: list[Camera] = []
        self._cv2: Any = None
        self._cv2_why = ""
        self._account: Account | None = None
        self._frames_result = OpenCvResult(False)

    def add(self, name: str, cam: Camera, status: Status, detail: str) -> None:
        self.ctx.report.add(name, cam.path, status, detail)

    # -- before the block --------------------------------------------------------------------
    def baseline(self) -> None:
        paths = nodes(self.ctx.settings.camera_globs)
        if not paths:
            globs = ", ".join(literal(g, 200) for g in self.ctx.settings.camera_globs)
            self.ctx.report.add("camera.found", "", Status.NOT_PROVABLE,
                                f"no camera matches {globs}: nothing to test")
            return
        self.ctx.step("loading OpenCV")
        self._cv2, self._cv2_why = load_opencv()
        if self.ctx.report.root:
            self._account = unprivileged_account()
        for path in paths:
            real, what = node_kind(path)
            cam = Camera(path, real, what)
            caps = query_caps(path) if real else None
            if caps is not None:
                cam.captures = caps.captures
                cam.what = f"{what}, {literal(caps.card, 60)} ({literal(caps.driver, 30)})"
            cam.busy = "; ".join(other_holders([path], self.ctx.settings.sound_server_exes))
            self.cameras.append(cam)
            self._opencv_before(cam)
            self._held(cam)
            self._frames_verdict(cam)
            if self._account is not None:
                cam.as_user_before = open_as(self._account, path)

    def _opencv_before(self, cam: Camera) -> None:
        self.ctx.step(f"opening {cam.shown} with OpenCV")
        if self._cv2 is None:
            self._frames_result = OpenCvResult(False, error=self._cv2_why)
            self.add("camera.detected.opencv", cam, Status.NOT_PROVABLE, self._cv2_why)
            return
        mark = self.ctx.sightings.mark()
        started = time.monotonic()
        seen: list[Any] = [None, 0.0]  # the event, and seconds until it came

        def wait(timeout: float) -> None:
            seen[0] = self.ctx.seen_within(cam.path, mark, timeout)
            seen[1] = time.monotonic() - started

        result = opencv_probe(self._cv2, cam.path,
                              lambda: wait(self.ctx.options.detect_timeout))
        self._frames_result = result
        if not result.opened and seen[0] is None:
            wait(self.ctx.options.brief_open_timeout)
        ev = seen[0]
        if ev is not None:
            self.add("camera.detected.opencv", cam, Status.PASSED,
                     f"camguard named its own OpenCV open ({_who(ev)}) within {seen[1]:.2f} s")
        elif result.opened:
            self.add("camera.detected.opencv", cam, Status.FAILED,
                     f"OpenCV held it for {self.ctx.options.detect_timeout:g} s and camguard "
                     f"did not name pid {os.getpid()}{self.ctx.why_unseen()}")
        elif not cam.real:
            self.add("camera.detected.opencv", cam, Status.NOT_PROVABLE,
                     f"OpenCV opens a node that is not a camera ({cam.what}), fails its first "
                     "V4L2 query and closes it within microseconds; camguard looks "
                     f"{self.ctx.settings.settle * 1000:g} ms after an open and found it closed "
                     "already (the held open below is the detection test)")
        else:
            self.add("camera.detected.opencv", cam, Status.NOT_PROVABLE,
                     f"{result.error}: there was no open to detect")

    def _held(self, cam: Camera) -> None:
        """Hold the node open with a plain open(2) and wait for camguard to name us."""
        self.ctx.step(f"holding {cam.shown} open")
        self.ctx.released(cam.path, self.ctx.options.detect_timeout)
        mark = self.ctx.sightings.mark()
        started = time.monotonic()
        try:
            fd = os.open(cam.path, _OPEN_FLAGS)
        except OSError as exc:
            self.add("camera.detected.held", cam, Status.NOT_PROVABLE,
                     f"camguard cannot open it ({literal(exc.strerror or str(exc), 200)}), so "
                     "there is no open to detect")
            return
        cam.opened = True
        try:
            ev = self.ctx.seen_within(cam.path, mark, self.ctx.options.detect_timeout)
        finally:
            os.close(fd)
        if ev is None:
            self.add("camera.detected.held", cam, Status.FAILED,
                     f"held open for {self.ctx.options.detect_timeout:g} s; camguard did not "
                     f"name pid {os.getpid()}{self.ctx.why_unseen()}")
            return
        cam.detected = True
        self.add("camera.detected.held", cam, Status.PASSED,
                 f"camguard named its own open ({_who(ev)}) within "
                 f"{time.monotonic() - started:.2f} s")

    def _frames_verdict(self, cam: Camera) -> None:
        result = self._frames_result
        if cam.real and not cam.captures:
            self.add("camera.frames", cam, Status.NOT_PROVABLE,
                     f"its driver says it delivers no video ({cam.what}; e.g. a UVC metadata "
                     "node): no frames to read")
        elif cam.real:
            if result.frame is not None:
                w, h = result.frame
                self.add("camera.frames", cam, Status.PASSED, f"OpenCV read a {w}x{h} frame")
            elif self._cv2 is None:
                self.add("camera.frames", cam, Status.NOT_PROVABLE, self._cv2_why)
            elif cam.busy:
                self.add("camera.frames", cam, Status.NOT_PROVABLE,
                         f"{result.error}, while in use by {cam.busy} (a camera may refuse a "
                         "second reader)")
            else:
                self.add("camera.frames", cam, Status.FAILED, result.error)
            return
        done = ("opened and detected" if cam.detected else
                "opened, not detected" if cam.opened else "could not be opened")
        self.add("camera.frames", cam, Status.NOT_PROVABLE,
                 f"{done}; no frames: not a real V4L2 device ({cam.what})")

    # -- while blocked -------------------------------------------------------------------------
    def during_block(self, before: dict[str, NodeFacts | None], *, guarded: bool = False
                     ) -> None:
        for cam in self.cameras:
            if guarded:
                self._guarded(cam)
                continue
            self.ctx.step(f"checking that {cam.shown} is closed")
            now, was = node_facts(cam.path), before.get(cam.path)
            if now is None:
                self.add("camera.blocked.node", cam, Status.PASSED,
                         "the node is gone (unbound from its driver)")
            elif now.closed:
                self.add("camera.blocked.node", cam, Status.PASSED,
                         f"closed: {now.text()}" + (f" (was {was.text()})" if was else ""))
            else:
                self.add("camera.blocked.node", cam, Status.FAILED,
                         f"not closed: still {now.text()}")
            self._blocked_open(cam)

    def _guarded(self, cam: Camera) -> None:
        """A block without privileges: the node stays as it is; an app of this account
        that opens it during the block must be ended (by the guard on the monitor)."""
        now = node_facts(cam.path)
        self.add("camera.blocked.node", cam, Status.NOT_PROVABLE,
                 f"left as it is ({now.text() if now else 'gone'}): closing a node for every "
                 "account needs root or the privileged helper")
        self.ctx.step(f"checking that an app opening {cam.shown} is closed")
        state, detail = opener_is_ended(cam.path, GUARD_DEADLINE_S)
        status = {"ended": Status.PASSED, "kept": Status.FAILED}.get(state, Status.NOT_PROVABLE)
        self.add("camera.blocked.open", cam, status, detail)

    def _blocked_open(self, cam: Camera) -> None:
        if self._account is None:  # not root: camguard's own open must be refused
            try:
                fd = os.open(cam.path, _OPEN_FLAGS)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENODEV):
                    self.add("camera.blocked.open", cam, Status.PASSED,
                             f"camguard (uid {os.getuid()}) is refused: "
                             f"{literal(exc.strerror or str(exc), 100)}")
                else:
                    self.add("camera.blocked.open", cam, Status.NOT_PROVABLE,
                             f"open failed for another reason: {literal(str(exc), 200)}")
                return
            os.close(fd)
            self.add("camera.blocked.open", cam, Status.FAILED,
                     f"camguard (uid {os.getuid()}) can still open it")
            return
        who = f"{literal(self._account.name, 40)} (uid {self._account.uid})"
        state, why = open_as(self._account, cam.path)
        before = cam.as_user_before or ("error", "not tried")
        if state == "opened":
            self.add("camera.blocked.open", cam, Status.FAILED, f"{who} can still open it")
        elif state == "error":
            self.add("camera.blocked.open", cam, Status.NOT_PROVABLE,
                     f"cannot try an open as {who}: {why}; {ROOT_NOTE}")
        elif before[0] == "opened":
            self.add("camera.blocked.open", cam, Status.PASSED,
                     f"{who} opened it before the block and is refused now ({why}); "
                     f"{ROOT_NOTE}")
        else:
            self.add("camera.blocked.open", cam, Status.NOT_PROVABLE,
                     f"{who} is refused now, but was refused before the block too "
                     f"({before[1] or before[0]}: no access to the node or its folder); "
                     f"{ROOT_NOTE}")

    # -- after the block is lifted -----------------------------------------------------------
    def after_block(self, before: dict[str, NodeFacts | None]) -> None:
        for cam in self.cameras:
            self.ctx.step(f"checking that {cam.shown} is back")
            was, now = before.get(cam.path), node_facts(cam.path)
            if was is None:
                self.add("camera.restored.node", cam, Status.NOT_PROVABLE,
                         "its permissions could not be read before the block")
            elif now == was:
                self.add("camera.restored.node", cam, Status.PASSED,
                         f"mode, owner and ACL exactly as before: {now.text()}")
            else:
                self.add("camera.restored.node", cam, Status.FAILED,
                         f"now {now.text() if now else 'missing'}, was {was.text()}"
                         + (" (the ACL differs)" if now and now.acl != was.acl else ""))
            self._restored_open(cam)

    def _restored_open(self, cam: Camera) -> None:
        if cam.real and cam.captures and self._cv2 is not None:
            result = opencv_probe(self._cv2, cam.path)
            if result.frame is not None:
                w, h = result.frame
                self.add("camera.restored.open", cam, Status.PASSED,
                         f"OpenCV reads {w}x{h} frames again")
            else:
                self.add("camera.restored.open", cam, Status.FAILED,
                         f"not usable after the block: {result.error}")
            return
        if self._account is None:
            try:
                os.close(os.open(cam.path, _OPEN_FLAGS))
            except OSError as exc:
                status = Status.FAILED if cam.opened else Status.NOT_PROVABLE
                self.add("camera.restored.open", cam, status,
                         f"camguard cannot open it: {literal(exc.strerror or str(exc), 200)}"
                         + ("" if cam.opened else " (it could not before the block either)"))
                return
            self.add("camera.restored.open", cam, Status.PASSED,
                     f"camguard (uid {os.getuid()}) opens it again")
            return
        who = f"{literal(self._account.name, 40)} (uid {self._account.uid})"
        state, why = open_as(self._account, cam.path)
        before = cam.as_user_before or ("error", "not tried")
        if state == "opened":
            self.add("camera.restored.open", cam, Status.PASSED, f"{who} opens it again")
        elif before[0] == "opened":
            self.add("camera.restored.open", cam, Status.FAILED,
                     f"{who} opened it before the block and cannot now ({why})")
        else:
            self.add("camera.restored.open", cam, Status.NOT_PROVABLE,
                     f"{who} could not open it before the block either; {ROOT_NOTE} "
                     "(camera.restored.node shows its permissions are back)")


def _who(ev: Any) -> str:
    p = ev.usage.process
    return f"{literal(p.name, 60)}, pid {p.pid}" if p is not None else "no process"
