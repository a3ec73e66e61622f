"""A newcomer's rough edges (issue 17), as a person meets them: real subprocesses, a real
unprivileged account (nobody) where it matters, real files.

- no traceback: ``camguard service`` as non-root, and any command whose default service
  socket sits in a folder the account may not read;
- each message said once (a logger and an error line both printed it);
- ``policy show`` tells the truth about the policy's name and the events file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import need_root, nobody_python


def _nobody(tmp_path: Path, *args: str, env: dict[str, str]
            ) -> subprocess.CompletedProcess[str]:
    prefix, pythonpath = nobody_python(tmp_path)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    os.chown(home, 65534, 65534)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "PYTHONPATH": ":".join(pythonpath), "PYTHONDONTWRITEBYTECODE": "1",
            "CAMGUARD_CONFIG_DIR": str(home / "c"), "CAMGUARD_DATA_DIR": str(home / "d"),
            "CAMGUARD_STATE_DIR": str(home / "s"), "PULSE_SERVER": f"unix:{home}/none"}
    return subprocess.run([*prefix, "-m", "camguard", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**base, **env}, check=False)


def _root_only(path: Path, mode: int = 0o700) -> Path:
    path.mkdir(mode=mode)
    path.chmod(mode)
    return path


def test_service_as_non_root_says_why_in_one_line(tmp_path: Path) -> None:
    need_root()
    # /var/lib/camguard as the .deb leaves it: root's, 0700.
    data = _root_only(tmp_path / "var-lib-camguard")
    res = _nobody(tmp_path, "service", env={"CAMGUARD_DATA_DIR": str(data),
                                            "CAMGUARD_STATE_DIR": str(data)})
    assert res.returncode == 1, res
    assert "Traceback" not in res.stderr
    assert (f"camguard: error: cannot use the service's folder: {data}/service.lock: "
            "Permission denied (the service runs as root: sudo camguard service)"
            ) in res.stderr.splitlines(), res.stderr
    # A folder it may read, but the lock file is root's (a service ran there before).
    open_data = _root_only(tmp_path / "readable", 0o755)
    (open_data / "service.lock").touch(mode=0o600)
    res = _nobody(tmp_path, "service", env={"CAMGUARD_DATA_DIR": str(open_data),
                                            "CAMGUARD_STATE_DIR": str(open_data)})
    assert res.returncode == 1 and "Traceback" not in res.stderr, res
    assert f"cannot use the service's folder: {open_data}/service.lock: Permission " \
        "denied" in res.stderr
    # A --policy-file that is not there is said (the service follows the file, so one that
    # appears later is applied: a warning, not a refusal).
    typo = tmp_path / "polcy.toml"
    res = _nobody(tmp_path, "service", "--policy-file", str(typo),
                  env={"CAMGUARD_DATA_DIR": str(data), "CAMGUARD_STATE_DIR": str(data)})
    assert (f"camguard: warning: the policy file {typo} does not exist: no managed policy "
            "until it appears") in res.stderr.splitlines(), res.stderr


def test_a_default_socket_in_an_unreadable_folder_is_a_warning_not_a_traceback(
        tmp_path: Path) -> None:
    need_root()
    sock = _root_only(tmp_path / "run-camguard") / "camguard.sock"
    for command in (["blocks"], ["history"], ["status"]):
        res = _nobody(tmp_path, *command, env={"CAMGUARD_SOCKET": str(sock)})
        assert res.returncode == 0, res
        assert "Traceback" not in res.stderr
        assert res.stderr.splitlines()[0] == (
            f"camguard: warning: cannot look for the camguard service at {sock}: "
            "Permission denied; answering without it"), res.stderr


def _camguard(tmp_path: Path, *args: str, stdin: str = "", **more: str
              ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAMGUARD_CONFIG_DIR": str(tmp_path / "c"),
           "CAMGUARD_DATA_DIR": str(tmp_path / "d"), "CAMGUARD_STATE_DIR": str(tmp_path / "s"),
           "CAMGUARD_SOCKET": str(tmp_path / "no-service.sock"),
           "PULSE_SERVER": f"unix:{tmp_path}/none", **more}
    return subprocess.run([sys.executable, "-m", "camguard", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_broken_policy_is_said_once(tmp_path: Path) -> None:
    broken = tmp_path / "policy.toml"
    broken.write_text("locked = [\n")
    for command in (["devices"], ["rules", "list"], ["policy", "show"], ["status"]):
        res = _camguard(tmp_path, *command, "--camera-glob", str(tmp_path / "video*"),
                        CAMGUARD_POLICY_FILE=str(broken))
        assert res.stderr.count("MANAGED POLICY NOT APPLIED") == 1, (command, res.stderr)
    # Its problems too (a policy others may write is flagged once, not twice).
    loose = tmp_path / "loose.toml"
    loose.write_text('[settings]\nmode = "ask"\n')
    loose.chmod(0o666)
    for command in (["devices"], ["rules", "list"]):
        res = _camguard(tmp_path, *command, CAMGUARD_POLICY_FILE=str(loose))
        assert res.stderr.count("writable by users other than root") == 1, res.stderr


def test_a_wrong_password_is_said_once(tmp_path: Path) -> None:
    res = _camguard(tmp_path, "lock", "set-password", "--password-stdin",
                    stdin="correct horse\ncorrect horse\n")
    assert res.returncode == 0, res.stderr
    res = _camguard(tmp_path, "unblock", "camera", "--password-stdin", stdin="wrong\n")
    assert res.returncode == 3
    assert res.stderr.count("wrong") == 1, res.stderr
    assert res.stderr.splitlines() == [
        "camguard: error: unblocking the camera: wrong password; try again in 1 s"]


def test_a_damaged_history_is_said_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "history.sqlite3").write_bytes(b"not a database at all " * 400)
    res = _camguard(tmp_path, "history")
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("was damaged") == 1, res.stderr
    assert "no sessions" in res.stdout


def test_policy_show_names_the_policy_once_and_the_events_file_in_use(tmp_path: Path) -> None:
    pol = tmp_path / "policy.toml"
    pol.write_text('[settings]\nmode = "ask"\n')
    pol.chmod(0o644)
    out = _camguard(tmp_path, "policy", "show", "--policy-file", str(pol))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"managed policy: {pol}"  # was "policy: policy /path"
    written = tmp_path / "s" / "events.jsonl"
    assert "events_file         (the default file)" in out.stdout
    assert f"{'':<19} (events are written to {written})" in lines
    assert "(none)" not in next(line for line in lines if line.startswith("events_file"))
    # ...and that is where a command's events go.
    assert _camguard(tmp_path, "rules", "add", "--name", "zoom", "--verdict", "allow",
                     "--policy-file", str(pol)).returncode == 0
    assert json.loads(written.read_text().splitlines()[-1])["type"] == "rule.added"
    doc = json.loads(_camguard(tmp_path, "policy", "show", "--json", "--policy-file",
                               str(pol)).stdout)
    assert doc["events_file_in_use"] == str(written)
    # --events-file moves it, and show says so.
    moved = tmp_path / "elsewhere.jsonl"
    out = _camguard(tmp_path, "policy", "show", "--events-file", str(moved))
    assert out.stdout.splitlines()[0] == "managed policy: none"
    assert f"{'':<19} (events are written to {moved})" in out.stdout.splitlines()
