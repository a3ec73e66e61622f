"""The settings in force for each program, resolved in one place: the user's file (the tray
and the commands; the service has none), then the managed policy, then the command line."""

from __future__ import annotations

from pathlib import Path

from camguard.store.policy import (
    EffectiveSettings,
    ManagedPolicy,
    PolicyReader,
    PolicyStatus,
    effective_settings,
    load_user_settings,
)


def managed_policy(reader: PolicyReader, *, report: bool = True) -> ManagedPolicy:
    """The managed policy from ``reader`` (read again at each ``load()``); ``report=False``
    for a caller that prints what ``load()`` returns (ManagedPolicy)."""
    return ManagedPolicy(reader, report=report)


def user_effective(path: Path, status: PolicyStatus) -> EffectiveSettings:
    """A user's program: their ``settings.json`` under the managed policy. The file's
    problems are not returned: whoever loads the detection settings reports them."""
    user, _problems = load_user_settings(path)
    return effective_settings(user, status.policy)


def service_effective(status: PolicyStatus) -> EffectiveSettings:
    """The system service: no user file, so every setting is the policy's or the default."""
    return effective_settings({}, status.policy)


def events_file(flag: Path | None, eff: EffectiveSettings) -> tuple[Path | None, list[str]]:
    """The event log file: ``--events-file`` unless the policy locks the setting, else the
    ``events_file`` setting; None means the program's default. With the problem met."""
    if flag is not None:
        refusal = eff.refusal("events_file")
        if refusal is None:
            return flag, []
        problem = f"--events-file ignored: {refusal}"
    else:
        problem = ""
    value = eff.value("events_file")
    return (Path(value) if value else None), ([problem] if problem else [])
