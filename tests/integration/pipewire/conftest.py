"""Fixtures of the PipeWire video tests: GStreamer present, and its processes ended."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import need, need_tools
from tests.pwvideo import GST_PACKAGES, GST_TOOLS, end, has_pipewire_gst


@pytest.fixture
def gst() -> None:
    need_tools(GST_TOOLS)
    need(has_pipewire_gst(), f"pipewiresink missing: apt-get install {GST_PACKAGES}")


@pytest.fixture
def video() -> Iterator[list[subprocess.Popen[bytes]]]:
    """GStreamer processes of one test, killed after it."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        end(proc)
