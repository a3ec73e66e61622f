"""The selftest's order of work: baseline, switch off, check, switch on (always), check."""

from __future__ import annotations

import logging
import os

from camguard.core.blocks import BlockManager, BlockTarget
from camguard.core.models import DeviceKind
from camguard.core.text import literal
from camguard.platform import current
from camguard.platform.clock import SystemClock
from camguard.platform.guard import UserGuard
from camguard.selftest.camera import NodeFacts, node_facts
from camguard.selftest.camera_checks import CameraChecks
from camguard.selftest.context import Context, other_holders
from camguard.selftest.mic_checks import MicChecks
from camguard.selftest.microphone import server_facts
from camguard.selftest.report import Status

log = logging.getLogger(__name__)


class Run:
    def __init__(self, ctx: Context, blocks: BlockManager | None) -> None:
        self.ctx = ctx
        self.blocks = blocks
        self.cams = CameraChecks(ctx)
        self.mics = MicChecks(ctx)

    def baseline(self) -> None:
        self.cams.baseline()
        self.mics.baseline()

    def block_and_restore(self) -> None:
        report = self.ctx.report
        camera, mic = bool(self.cams.cameras), self.mics.blockable
        target = (BlockTarget.ALL if camera and mic else BlockTarget.CAMERA if camera
                  else BlockTarget.MICROPHONE if mic else None)
        if self.blocks is None:
            report.add("kill-switch.on", "", Status.NOT_PROVABLE,
                       "the kill switch was left out of this run (--no-block)")
            return
        if target is None:
            report.add("kill-switch.on", "", Status.NOT_PROVABLE,
                       "no camera and no sound-server microphone to switch off")
            return
        self.ctx.step("checking that nothing is switched off or in use already")
        paths = [c.path for c in self.cams.cameras] + (self.mics.raw_nodes if mic else [])
        why_not = self._why_not_block(self.blocks, paths)
        if why_not:
            report.add("kill-switch.on", "", Status.NOT_PROVABLE, why_not)
            return
        nodes_before: dict[str, NodeFacts | None] = {p: node_facts(p) for p in paths}
        mutes_before = dict(server_facts().mutes) if mic else {}
        self.ctx.step(f"switching off: {target.value}")
        try:
            self._block(self.blocks, target, camera, mic, nodes_before)
        finally:
            # Never skipped: not by a failed check, a bug, or a cancel (no step() in here).
            try:
                self.ctx.progress(f"switching back on: {target.value}")
            except Exception:
                log.exception("selftest: the progress callback failed")
            self._unblock(self.blocks, target)
        self.cams.after_block(nodes_before)
        if mic:
            self.mics.after_block(mutes_before, nodes_before)

    def _why_not_block(self, blocks: BlockManager, paths: list[str]) -> str:
        """Why switching off must not be tried now (the user's own block, or a program that
        the block would end), or ''."""
        active, _ = blocks.active()
        if active:
            kinds = " and ".join(b.kind.value for b in active)
            return (f"the {kinds} is switched off already; the selftest does not lift your "
                    "block (run `camguard unblock all` first to test the kill switch)")
        busy = other_holders(paths, self.ctx.settings.sound_server_exes)
        if busy:
            return ("in use by " + "; ".join(busy[:5]) + ": switching off would end it "
                    "(close it and run the selftest again to test the kill switch)")
        return ""

    def _block(self, blocks: BlockManager, target: BlockTarget, camera: bool, mic: bool,
               nodes_before: dict[str, NodeFacts | None]) -> None:
        result = blocks.block(target, self.ctx.options.block_seconds)
        ok: set[str] = set()
        for kind, r in result.parts:
            status = Status.PASSED if r.ok else Status.FAILED
            if r.ok:
                ok.add(kind.value)
            self.ctx.report.add("kill-switch.on", kind.value, status,
                                f"{r.outcome.value}: {literal(r.message, 500)}")
        for problem in result.problems:
            self.ctx.report.add("kill-switch.on", "", Status.FAILED, literal(problem, 300))
        if not result.parts:
            self.ctx.report.add("kill-switch.on", "", Status.FAILED,
                                literal(result.result.message, 500))
        if camera and "camera" in ok:
            guard = self._user_guard(blocks)
            try:
                self.cams.during_block(nodes_before, guarded=guard is not None)
            finally:
                if guard is not None:
                    guard.close()
        if mic and "microphone" in ok:
            self.mics.during_block()

    def _user_guard(self, blocks: BlockManager) -> UserGuard | None:
        """Without privileges the camera block guards this account's openers instead of
        closing the node (platform/guard.py): the tray's guard, on our monitor."""
        uid = os.geteuid()
        active, _ = blocks.active()
        if self.ctx.monitor is None or not any(
                b.kind is DeviceKind.CAMERA and uid in b.guarded_uids() for b in active):
            return None
        platform = current()
        killer = platform.killer(self.ctx.settings.sound_server_exes, escalate=False)
        guard = UserGuard(lambda: blocks.active()[0], killer.kill, SystemClock().now,
                          platform.probes().process_owner)
        self.ctx.monitor.add_sink(guard)
        return guard

    def _unblock(self, blocks: BlockManager, target: BlockTarget) -> None:
        try:
            result = blocks.unblock(target)
        except Exception as exc:  # the report must say the devices may still be off
            log.exception("selftest: switching back on failed")
            self.ctx.report.add("kill-switch.off", "", Status.FAILED,
                                f"internal error, may still be off (run `camguard unblock "
                                f"all`): {literal(str(exc), 300)}")
            return
        for kind, r in result.parts:
            self.ctx.report.add("kill-switch.off", kind.value,
                                Status.PASSED if r.ok else Status.FAILED,
                                f"{r.outcome.value}: {literal(r.message, 500)}")
        if not result.parts and not result.result.ok:
            self.ctx.report.add("kill-switch.off", "", Status.FAILED,
                                literal(result.result.message, 500))

