"""Where camguard keeps its files, and the one place that reads the environment variables
that move them (tests, the system service, IT images)."""

from __future__ import annotations

import os
from pathlib import Path

# Not typing's: importing typing costs ~2 ms at start-up (mypy knows the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_ENV = "CAMGUARD_CONFIG_DIR"
DATA_ENV = "CAMGUARD_DATA_DIR"
STATE_ENV = "CAMGUARD_STATE_DIR"
# Another policy file (tests, IT images trying a policy out). Only the user's own camguard
# reads it: the service takes --policy-file, and a user who can set this variable could as
# well run a copy of camguard without any policy, so it protects nothing less.
POLICY_ENV = "CAMGUARD_POLICY_FILE"
# Where each logged-in account's runtime folder (XDG_RUNTIME_DIR) lives: /run/user/UID.
USER_RUNTIME_ENV = "CAMGUARD_USER_RUNTIME_ROOT"
# The system service's folders when no variable moves them (Linux: root's, 0700).
SERVICE_DATA = Path("/var/lib/camguard")
SERVICE_STATE = SERVICE_DATA
SERVICE_CONFIG = Path("/etc/camguard")


def _dirs() -> Any:
    """platformdirs, imported when a folder is not given by its variable (~5 ms)."""
    import platformdirs

    return platformdirs


def _override(env: str) -> Path | None:
    value = os.environ.get(env)
    return Path(value) if value else None


def config_dir() -> Path:
    """User settings. ``CAMGUARD_CONFIG_DIR`` overrides (tests, the service, IT images)."""
    return _override(CONFIG_ENV) or Path(_dirs().user_config_dir("camguard"))


def data_dir() -> Path:
    """History database and other records. ``CAMGUARD_DATA_DIR`` overrides."""
    return _override(DATA_ENV) or Path(_dirs().user_data_dir("camguard"))


def history_file() -> Path:
    """The history database: ``history.sqlite3`` in :func:`data_dir`."""
    return data_dir() / "history.sqlite3"


def state_dir() -> Path:
    """Volatile-but-persistent state (timed blocks, logs). ``CAMGUARD_STATE_DIR`` overrides."""
    return _override(STATE_ENV) or Path(_dirs().user_state_dir("camguard"))


def state_dir_moved() -> bool:
    """``CAMGUARD_STATE_DIR`` moves all state (tests, images): then files that otherwise
    have a fixed system place (the helper's saved node modes, the tray's socket) move too."""
    return _override(STATE_ENV) is not None


def user_runtime_root() -> Path:
    """The folder of every account's runtime folder (``/run/user``): where the service finds
    each logged-in user's sound server. ``CAMGUARD_USER_RUNTIME_ROOT`` overrides (tests)."""
    return _override(USER_RUNTIME_ENV) or Path("/run/user")


def policy_file_override() -> Path | None:
    """``CAMGUARD_POLICY_FILE``, for a user's own camguard only (never the service)."""
    return _override(POLICY_ENV)


def service_data_dir() -> Path:
    """The service's history, parental lock and service lock."""
    return _override(DATA_ENV) or SERVICE_DATA


def service_state_dir() -> Path:
    """The service's blocks, saved node modes and event log."""
    return _override(STATE_ENV) or SERVICE_STATE


def service_config_dir() -> Path:
    """The service's own rules (read-only to it)."""
    return _override(CONFIG_ENV) or SERVICE_CONFIG


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if needed and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


# sun_path holds 108 bytes on Linux (unix(7)); a longer path cannot be a socket address.
MAX_SOCKET_PATH = 100


def tray_socket(uid: int | None = None) -> str:
    """The running tray's socket (ui/single_instance.py listens; ``camguard status`` asks
    it, cli/tray_status.py): in ``$XDG_RUNTIME_DIR`` (private to the user, 0700) rather than
    /tmp, where another user could squat the name first; ``CAMGUARD_STATE_DIR`` (tests, IT
    images) moves it next to camguard's other state. The name carries the uid either way;
    when no private folder fits, a plain name (Qt puts it in its temp folder)."""
    uid = os.getuid() if uid is None else uid
    name = f"camguard-tray-{uid}.sock"
    folder: Path | None = None
    if state_dir_moved():
        folder = private_dir(state_dir())
    elif os.environ.get("XDG_RUNTIME_DIR") and Path(os.environ["XDG_RUNTIME_DIR"]).is_dir():
        folder = Path(os.environ["XDG_RUNTIME_DIR"])
    if folder is not None and len(str(folder / name)) <= MAX_SOCKET_PATH:
        return str(folder / name)
    return name
