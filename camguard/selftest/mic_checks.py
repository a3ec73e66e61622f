"""The selftest's microphone checks: a real recording, its detection, silence, and restore."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from camguard.core.models import UsageEvent
from camguard.core.text import literal
from camguard.platform.base import ServerFacts
from camguard.selftest.camera import NodeFacts, node_facts
from camguard.selftest.context import Context, nodes
from camguard.selftest.microphone import (
    SILENT,
    InputDevice,
    Recorder,
    combined,
    load_sounddevice,
    pick_input,
    server_facts,
)
from camguard.selftest.report import Status

# Silence and the level after the block are judged on the latest half second, so audio the
# server had buffered before the mute does not count.
WINDOW = 0.5
# "Back to the earlier level": a real room is never exactly as loud twice.
BACK_RATIO = 0.25


@dataclass(frozen=True, slots=True)
class Measured:
    ok: bool  # the level condition was met before the deadline
    level: float
    seconds: float
    error: str = ""
    event: UsageEvent | None = None


class MicChecks:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.facts = ServerFacts(False, "not asked")
        self.device_id = ""
        self.before: float | None = None  # the level before the block
        self.raw_nodes = nodes(ctx.settings.mic_globs)
        self._sd: Any = None
        self._input: InputDevice | None = None

    @property
    def blockable(self) -> bool:
        """Whether switching the microphone off can be tested (a server with microphones)."""
        return self.facts.reachable and bool(self.facts.mutes)

    def add(self, name: str, status: Status, detail: str, device: str | None = None) -> None:
        self.ctx.report.add(name, self.device_id if device is None else device, status, detail)

    # -- before the block ----------------------------------------------------------------------
    def baseline(self) -> None:
        self.ctx.step("asking the sound server about its microphones")
        self.facts = facts = server_facts()
        if not facts.reachable:
            self.add("microphone.server", Status.NOT_PROVABLE, facts.why)
            self.add("microphone.recorded", Status.NOT_PROVABLE,
                     "no sound server to record through, so no microphone can be tested")
            return
        names = ", ".join(literal(n, 80) for n in sorted(facts.mutes)) or "none"
        self.add("microphone.server", Status.PASSED,
                 f"{literal(facts.server_name, 80)} answers at {facts.where}; "
                 f"microphones: {names}")
        if not facts.default_source or not facts.default_is_microphone:
            why = ("has no default source" if not facts.default_source else
                   f"records by default from {literal(facts.default_source, 120)}, which is "
                   "not a microphone (a speaker's monitor)")
            self.add("microphone.recorded", Status.NOT_PROVABLE,
                     f"the sound server {why}: recording it proves nothing about microphones")
            return
        self.device_id = f"pulse:{facts.default_source}"
        self.ctx.step("loading sounddevice")
        self._sd, why = load_sounddevice()
        if self._sd is not None:
            self._input, why = pick_input(self._sd)
        if self._input is None:
            self.add("microphone.recorded", Status.NOT_PROVABLE, why)
            return
        self.ctx.step(f"recording from {literal(facts.default_source, 120)}")
        got = self._measure(self.ctx.options.record_seconds, lambda level: True,
                            detect=True)
        source = literal(facts.default_source, 120)
        if got.error:
            self.add("microphone.recorded", Status.FAILED, got.error)
            return
        if not got.ok:
            self.add("microphone.recorded", Status.FAILED,
                     f"only {got.seconds:.1f} s of audio arrived from {source} in "
                     f"{self.ctx.options.level_timeout:g} s")
            return
        self.before = got.level
        quiet = (" (a silent source: silence during the block cannot be told apart)"
                 if got.level <= SILENT else "")
        self.add("microphone.recorded", Status.PASSED,
                 f"recorded {got.seconds:.1f} s from {source} through PortAudio "
                 f"({self._input.name}): RMS {got.level:.1f}{quiet}")
        if got.event is not None:
            p = got.event.usage.process
            who = f"{literal(p.name, 60)}, pid {p.pid}" if p is not None else "?"
            self.add("microphone.detected", Status.PASSED,
                     f"camguard named its own recording ({who})")
        elif not self.ctx.settings.watch_sound_server:
            self.add("microphone.detected", Status.NOT_PROVABLE,
                     "watching the sound server is switched off in the settings")
        else:
            self.add("microphone.detected", Status.FAILED,
                     f"recorded for {got.seconds:.1f} s; camguard did not name pid "
                     f"{os.getpid()} on {source}{self.ctx.why_unseen()}")

    def _measure(self, window: float, good: Callable[[float], bool], *,
                 detect: bool = False) -> Measured:
        """Record until at least record_seconds have come and the level of the latest
        ``window`` seconds is ``good``, or until level_timeout."""
        if self._input is None:
            return Measured(False, 0.0, 0.0, "no input device")
        device = self._input
        opts = self.ctx.options
        mark = self.ctx.sightings.mark()
        try:
            with Recorder(self._sd, device) as rec:
                def done() -> bool:
                    levels = rec.last(window)
                    return rec.seconds >= opts.record_seconds and bool(levels) and good(
                        combined(levels))

                ok = rec.wait(done, opts.level_timeout, self.ctx.cancel)
                event = (self.ctx.seen_within(self.device_id, mark, opts.detect_timeout)
                         if detect else None)
                return Measured(ok, combined(rec.last(window)), rec.seconds, event=event)
        except Exception as exc:  # sounddevice.PortAudioError and whatever PortAudio raises
            return Measured(False, 0.0, 0.0, f"cannot record: {literal(str(exc), 300)}")

    # -- while blocked -------------------------------------------------------------------------
    def during_block(self) -> None:
        self.ctx.step("checking that every microphone is muted")
        now = server_facts()
        if not now.reachable:
            self.add("microphone.blocked.muted", Status.FAILED, now.why)
        else:
            loud = sorted(n for n, muted in now.mutes.items() if not muted)
            if loud:
                self.add("microphone.blocked.muted", Status.FAILED, "not muted: "
                         + ", ".join(literal(n, 80) for n in loud))
            else:
                self.add("microphone.blocked.muted", Status.PASSED,
                         f"all {len(now.mutes)} microphone(s) muted at the sound server")
        if self.before is None:
            return
        self.ctx.step("recording while blocked")
        got = self._measure(WINDOW, lambda level: level <= SILENT)
        if got.error:
            self.add("microphone.blocked.silent", Status.NOT_PROVABLE, got.error)
        elif self.before <= SILENT:
            self.add("microphone.blocked.silent", Status.NOT_PROVABLE,
                     f"the source was silent before the block too (RMS {self.before:.1f})")
        elif got.ok:
            self.add("microphone.blocked.silent", Status.PASSED,
                     f"silent while blocked: RMS {got.level:.1f} (before: {self.before:.1f})")
        else:
            self.add("microphone.blocked.silent", Status.FAILED,
                     f"still sound after {got.seconds:.1f} s of recording while blocked: RMS "
                     f"{got.level:.1f} (before: {self.before:.1f})")

    # -- after the block is lifted -----------------------------------------------------------
    def after_block(self, mutes_before: dict[str, bool],
                    facts_before: dict[str, NodeFacts | None]) -> None:
        self.ctx.step("checking that the microphones are back")
        now = server_facts()
        if not now.reachable:
            self.add("microphone.restored.mute", Status.FAILED, now.why)
        elif not mutes_before:
            self.add("microphone.restored.mute", Status.NOT_PROVABLE,
                     "the mute states could not be read before the block")
        else:
            changed = sorted(n for n, was in mutes_before.items()
                             if n in now.mutes and now.mutes[n] != was)
            if changed:
                self.add("microphone.restored.mute", Status.FAILED, "mute state differs from "
                         "before the block: " + ", ".join(
                             f"{literal(n, 80)} {'muted' if now.mutes[n] else 'unmuted'}"
                             for n in changed))
            else:
                kept = sum(1 for was in mutes_before.values() if was)
                self.add("microphone.restored.mute", Status.PASSED,
                         f"every microphone's mute state is as before "
                         f"({len(mutes_before) - kept} unmuted, {kept} muted)")
        for path in self.raw_nodes:
            was, now_facts = facts_before.get(path), node_facts(path)
            if was is not None and now_facts == was:
                self.add("microphone.restored.node", Status.PASSED,
                         f"mode, owner and ACL exactly as before: {was.text()}", device=path)
            elif was is not None:
                self.add("microphone.restored.node", Status.FAILED,
                         f"now {now_facts.text() if now_facts else 'missing'}, was {was.text()}",
                         device=path)
        if self.before is None or self._input is None:
            return
        self.ctx.step("recording after the block")
        before = self.before
        got = self._measure(WINDOW, lambda level: level > SILENT and level >= before * BACK_RATIO)
        if got.error:
            self.add("microphone.restored.level", Status.FAILED, got.error)
        elif before <= SILENT:
            self.add("microphone.restored.level", Status.NOT_PROVABLE,
                     f"the source was silent before the block (RMS {before:.1f})")
        elif got.ok:
            self.add("microphone.restored.level", Status.PASSED,
                     f"sound again: RMS {got.level:.1f} (before the block: {before:.1f})")
        else:
            self.add("microphone.restored.level", Status.FAILED,
                     f"RMS {got.level:.1f} after {got.seconds:.1f} s (before the block: "
                     f"{before:.1f})")
