"""Load detection settings from ``settings.json``; a bad file is reported, kept, never fatal."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from camguard.core.settings import DetectionSettings

log = logging.getLogger(__name__)

_TUPLE_FIELDS = {"camera_globs", "mic_globs", "sound_server_exes"}


def load_detection_settings(path: Path) -> tuple[DetectionSettings, list[str]]:
    """Settings from the ``"detection"`` object of ``path``, plus human-readable problems.

    A missing file gives the defaults silently. An unreadable or corrupt file, or a bad
    value, gives the defaults for what is wrong and a problem line; the file itself is left
    untouched so nothing the user wrote is lost.
    """
    problems: list[str] = []
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DetectionSettings(), problems
    except (OSError, UnicodeDecodeError) as exc:
        return DetectionSettings(), [f"cannot read {path}: {exc}; using defaults"]
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        return DetectionSettings(), [f"{path} is not valid JSON ({exc}); using defaults"]
    section = doc.get("detection", {}) if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        return DetectionSettings(), [f"{path}: 'detection' must be an object; using defaults"]
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(DetectionSettings)}
    for key, value in section.items():
        if key not in known:
            problems.append(f"{path}: unknown setting detection.{key} ignored")
            continue
        default = getattr(DetectionSettings(), key)
        if key in _TUPLE_FIELDS:
            if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
                values[key] = tuple(value)
                continue
        elif isinstance(default, bool):
            if isinstance(value, bool):
                values[key] = value
                continue
        elif isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            values[key] = float(value)
            continue
        problems.append(f"{path}: bad value for detection.{key}: {value!r}; using the default")
    return DetectionSettings(**values), problems
