"""A policy's schedule enforced by a real root service: outside the allowed hours the
camera is blocked for every account with the schedule named in the history; the
microphone, which has no schedule, is asked about as before."""

from __future__ import annotations

import datetime as dt

import pytest

from tests import realenv
from tests.integration.test_service_decide import decision_for, session_of
from tests.service_env import Accounts, Box, Service, UserHolder

pytestmark = pytest.mark.real
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def test_a_policys_schedule_blocks_the_camera_outside_its_hours(
        sandbox: Box, accounts: Accounts) -> None:
    # Allowed only on the day after tomorrow (the service's local time), 10:00-11:00: now
    # is outside, whatever the time (the window does not cross midnight).
    day = DAYS[(dt.datetime.now().astimezone().weekday() + 2) % 7]
    schedule = f"camera {day} 10:00-11:00"
    sandbox.policy.write_text(f'locked = ["schedules"]\n[settings]\nschedules = ["{schedule}"]\n')
    kid = accounts.user()
    svc = Service(sandbox).start()
    held, verdict = decision_for(svc, lambda: UserHolder(sandbox, kid,
                                                         [sandbox.node("video0")]))
    assert verdict == "block-device"
    realenv.wait_until(lambda: session_of(svc, held.pid)["decision"] == "blocked", 20,
                       "the block in the service's history")
    assert session_of(svc, held.pid)["decided_by"] == \
        f"rule:schedule: camera outside {day} 10:00-11:00 (policy)"
    mic, verdict = decision_for(svc, lambda: UserHolder(sandbox, kid,
                                                        [sandbox.node("snd/pcmC0D0c")]))
    assert verdict == "ask" and mic.proc.poll() is None
    mic.end()
    held.end()
