"""Device nodes and their names: globs that overlap, folders to watch above a glob with a
wildcard folder, ALSA names from a /proc/asound-shaped tree, the name cache's bound."""

from __future__ import annotations

import os
from pathlib import Path

from camguard.core.models import DeviceKind
from camguard.platform.linux.devices import DeviceTable, expand_globs, watch_dirs


def test_a_path_two_globs_match_is_listed_once_under_the_first_kind(tmp_path: Path) -> None:
    for name in ("video0", "video1"):
        (tmp_path / name).write_text("")
    (tmp_path / "video9").mkdir()  # a folder is never a device
    got = expand_globs({DeviceKind.CAMERA: [f"{tmp_path}/video*", f"{tmp_path}/video0"],
                        DeviceKind.MICROPHONE: [f"{tmp_path}/video1"]})
    assert got == [(DeviceKind.CAMERA, f"{tmp_path}/video0"),
                   (DeviceKind.CAMERA, f"{tmp_path}/video1")]


def test_the_watched_folder_stops_above_a_wildcard_folder(tmp_path: Path) -> None:
    # A folder literally named "by-*" must not be taken for what the wildcard matches.
    (tmp_path / "v4l" / "by-*" / "sub").mkdir(parents=True)
    got = watch_dirs({DeviceKind.CAMERA: [f"{tmp_path}/v4l/by-*/sub/video*"],
                      DeviceKind.MICROPHONE: [f"{tmp_path}/gone/snd/pcmC*D*c"]})
    assert got == {f"{tmp_path}/v4l", str(tmp_path)}


def asound(proc: Path, card: int, *, info: str | None, card_id: str) -> None:
    d = proc / "asound" / f"card{card}"
    (d / "pcm0c").mkdir(parents=True)
    (d / "id").write_text(card_id + "\n")
    if info is not None:
        (d / "pcm0c" / "info").write_text(info)


def test_alsa_names_come_from_the_pcm_info_or_else_the_card_id(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    asound(proc, 0, info="card: 0\ndevice: 0\nname: USB Audio #0\nid: USB Audio\n",
           card_id="Webcam")
    asound(proc, 1, info="card: 1\nid: no name line here\n", card_id="PCH")
    asound(proc, 2, info=None, card_id="Headset")
    table = DeviceTable(sys_root=str(tmp_path / "sys"), proc_root=str(proc))
    names = [table.device(DeviceKind.MICROPHONE, f"/dev/snd/pcmC{n}D0c", "procfs").name
             for n in (0, 1, 2, 3)]
    assert names == ["USB Audio #0", "PCH", "Headset", ""]
    assert table.device(DeviceKind.MICROPHONE, "/dev/snd/controlC0", "procfs").name == ""


def test_device_numbers_only_for_character_devices(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    table = DeviceTable()
    got = table.rdevs(["/dev/null", str(tmp_path / "file"), str(tmp_path / "missing")])
    assert got == {"/dev/null": os.makedev(1, 3)}


def test_the_name_cache_is_bounded(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    (sys_root / "class" / "video4linux" / "video0").mkdir(parents=True)
    name_file = sys_root / "class" / "video4linux" / "video0" / "name"
    name_file.write_text("Old Cam\n")
    table = DeviceTable(sys_root=str(sys_root))
    assert table.device(DeviceKind.CAMERA, "/x/video0", "procfs").name == "Old Cam"
    name_file.write_text("New Cam\n")
    assert table.device(DeviceKind.CAMERA, "/x/video0", "procfs").name == "Old Cam"  # cached
    for n in range(1100):  # more distinct nodes than the cache keeps: it starts over
        table.device(DeviceKind.CAMERA, f"/x/{n}/video0", "procfs")
    assert table.device(DeviceKind.CAMERA, "/x/video0", "procfs").name == "New Cam"
