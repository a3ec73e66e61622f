"""Detection settings and their defaults (pure data; loading and saving live in store/)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CAMERA_GLOBS: tuple[str, ...] = ("/dev/video*",)
# Capture PCM nodes only ("c" suffix): playback nodes are speakers, not microphones.
DEFAULT_MIC_GLOBS: tuple[str, ...] = ("/dev/snd/pcmC*D*c",)
# Sound servers hold the raw capture node on behalf of the apps that record through them;
# the sound-server source names those apps, so the servers themselves are not reported as
# microphone users. Matched on the real executable path, not the (self-chosen) name.
DEFAULT_SOUND_SERVER_EXES: tuple[str, ...] = (
    "/usr/bin/pulseaudio",
    "/usr/bin/pipewire",
    "/usr/bin/pipewire-pulse",
    "/usr/bin/wireplumber",
    "/usr/bin/jackd",
)


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    camera_globs: tuple[str, ...] = DEFAULT_CAMERA_GLOBS
    mic_globs: tuple[str, ...] = DEFAULT_MIC_GLOBS
    # Seconds between safety rescans. Detection is event-driven; this only catches what no
    # event announced (a node camguard may not watch). A full /proc scan costs ~40 ms on a
    # busy machine, so 30 s keeps the idle cost near 0.1% of a core.
    rescan_interval: float = 30.0
    # Seconds to let a burst of wake-ups settle before looking (open+ioctl+mmap storms).
    settle: float = 0.002
    sound_server_exes: tuple[str, ...] = DEFAULT_SOUND_SERVER_EXES
    # Watch the sound server (PulseAudio or pipewire-pulse) for recording streams.
    watch_sound_server: bool = True
    # Probes are not alarms (core/probes.py): a device-node session shorter than this many
    # seconds is kept in history as a probe; more than ``probe_storm`` probes a minute by
    # one app is one "probe storm" alert (0: off).
    probe_threshold: float = 1.5
    probe_storm: float = 10.0
