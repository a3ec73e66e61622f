"""The blocks file: round trip, 0600, atomic replace, corrupt files moved aside (never a crash)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camguard.core.blocks import ActiveBlock, BlockOptions, StepKind, UndoStep
from camguard.core.models import DeviceKind
from camguard.platform.linux.node_state import NodeState, node_state, saved_text
from camguard.store.blocks import JsonBlockStore, decode, encode

BLOCKS = [
    ActiveBlock(DeviceKind.CAMERA, 1_700_000_000.5, 1_700_000_900.5, (
        UndoStep(StepKind.NODE, "/dev/video0",
                 saved_text({"mode": 0o660, "uid": 0, "gid": 44, "acl": "0200000001"})),
        UndoStep(StepKind.USB, "1-2:1.0"),
        UndoStep(StepKind.UDEV_RULE, "/etc/udev/rules.d/72-camguard-block.rules"),
    ), BlockOptions(unbind_usb=True, persistent=True)),
    ActiveBlock(DeviceKind.MICROPHONE, 1_700_000_000.0, None, (
        UndoStep(StepKind.MIC_MUTE, data='{"all_off": true}'),
        UndoStep(StepKind.NODE, "/dev/snd/pcmC0D0c",
                 saved_text({"mode": 0o660, "uid": 0, "gid": 29, "acl": None})),
    )),
]


def test_round_trip_and_mode(tmp_path: Path) -> None:
    store = JsonBlockStore(tmp_path / "state" / "blocks.json")
    store.save(BLOCKS)
    assert store.load() == (BLOCKS, [])
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    # No temporary file is left behind.
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["blocks.json"]


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert JsonBlockStore(tmp_path / "none.json").load() == ([], [])


@pytest.mark.parametrize("content", [
    b"{not json", b"\xff\xfe", b"[]", b'{"version": 2, "blocks": []}',
    b'{"version": 1, "blocks": [{"kind": "toaster", "since": 1, "until": null}]}',
    b'{"version": 1, "blocks": [{"kind": "camera", "since": "x", "until": null}]}',
    b'{"version": 1, "blocks": [{"kind": "camera", "since": 1, "until": NaN}]}',
    b'{"version": 1, "blocks": [{"kind": "camera", "since": 1, "steps": [{"kind": "node",'
    b' "saved": {"mode": [1], "uid": 0, "gid": 0}}]}]}',
    b'{"version": 1, "blocks": [{"kind": "camera", "since": 1, "steps": [{"kind": "node",'
    b' "saved": [420, 0, 0]}]}]}',
    b'{"version": 1, "blocks": [{"kind": "camera", "since": 1}, {"kind": "camera", "since": 2}]}',
])
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blocks.json"
    path.write_bytes(content)
    store = JsonBlockStore(path)
    blocks, problems = store.load()
    assert blocks == []
    assert len(problems) == 1 and "kept as blocks.json.corrupt-1" in problems[0]
    assert (tmp_path / "blocks.json.corrupt-1").read_bytes() == content
    assert not path.exists()
    # A second corrupt file does not overwrite the first one kept.
    path.write_bytes(b"garbage")
    assert "corrupt-2" in store.load()[1][0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decode_never_crashes_otherwise(raw: bytes) -> None:
    # JSONDecodeError, UnicodeDecodeError and BlockFileError are all ValueErrors.
    with contextlib.suppress(ValueError):
        decode(raw)


def test_encode_is_stable_json() -> None:
    doc = json.loads(encode(BLOCKS))
    assert doc["version"] == 1
    assert doc["blocks"][0]["steps"][0]["saved"] == {"mode": 0o660, "uid": 0, "gid": 44,
                                                     "acl": "0200000001"}


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    store = JsonBlockStore(tmp_path / "blocks.json")
    import fcntl

    with store.locked():
        fd = os.open(tmp_path / "blocks.json.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError, match="temporarily unavailable"):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_what_a_node_step_saved_is_the_linux_backends_to_read(tmp_path: Path) -> None:
    """The store keeps a step's saved state as the platform wrote it; platform/linux reads
    it back (core knows no node modes or ACLs), and a state it cannot use is no state."""
    [cam, _mic] = BLOCKS
    assert node_state(cam.steps[0]) == NodeState(0o660, 0, 44, b"\x02\x00\x00\x00\x01")
    assert node_state(cam.steps[1]) is None  # not a node step
    path = tmp_path / "blocks.json"
    path.write_bytes(b'{"version": 1, "blocks": [{"kind": "camera", "since": 1, "steps": '
                     b'[{"kind": "node", "target": "/dev/video0", '
                     b'"saved": {"mode": -1, "uid": 0, "gid": 0}}]}]}')
    [[block], problems] = JsonBlockStore(path).load()
    assert problems == [] and node_state(block.steps[0]) is None
    assert saved_text({"mode": True, "uid": 0, "gid": 0}) is None
    assert saved_text("0660") is None


def test_blocks_json_shows_what_a_step_saved_with_octal_permissions() -> None:
    from camguard.app.guard_local import block_doc

    doc = block_doc(BLOCKS[0], 1_700_000_000.5)
    assert doc["how"][0]["saved"] == {"mode": "0660", "uid": 0, "gid": 44,
                                      "acl": "0200000001"}
    assert doc["how"][1]["saved"] is None
