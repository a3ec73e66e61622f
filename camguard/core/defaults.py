"""Defaults that a command's --help names: here, where showing them costs no import of the
store or the service that use them (issue 16)."""

from __future__ import annotations

from pathlib import Path

# The managed policy (store/policy.py) when no --policy-file or variable names another.
DEFAULT_POLICY_FILE = Path("/etc/camguard/policy.toml")
# Members see and control every account's sessions through the service (authorization.py).
DEFAULT_ADMIN_GROUP = "camguard-admins"
# The system service's socket on Linux (service/client.py; CAMGUARD_SOCKET overrides). Here
# so that a command can see that no service runs without importing the client (issue 16).
DEFAULT_LINUX_SOCKET = Path("/run/camguard/camguard.sock")
