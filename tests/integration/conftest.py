"""Fixtures for the integration tests that create accounts and run the service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service_env import Accounts, Box, box


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    made = Accounts()
    yield made
    made.remove()


@pytest.fixture
def sandbox(accounts: Accounts) -> Iterator[Box]:
    # Set up after the accounts, so torn down first: their processes end before userdel.
    with box() as b:
        yield b
