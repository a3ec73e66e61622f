"""Where camguard keeps its files (overridable for tests and for the system service)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def config_dir() -> Path:
    """User settings. ``CAMGUARD_CONFIG_DIR`` overrides (tests, the service, IT images)."""
    override = os.environ.get("CAMGUARD_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("camguard"))


def data_dir() -> Path:
    """History database and other records. ``CAMGUARD_DATA_DIR`` overrides."""
    override = os.environ.get("CAMGUARD_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("camguard"))


def state_dir() -> Path:
    """Volatile-but-persistent state (timed blocks, logs). ``CAMGUARD_STATE_DIR`` overrides."""
    override = os.environ.get("CAMGUARD_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir("camguard"))


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
