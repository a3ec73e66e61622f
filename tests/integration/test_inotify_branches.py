"""Hot-plug seen by inotify, for real: the watched sound folder is removed and made again
(with a new card's node); the watch moves up and back down and the new holder is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from camguard.platform.linux.procfs import ProcfsSource
from camguard.platform.process import ProcessDescriber
from tests.conftest import Holder, make_standin
from tests.realenv import wait_until
from tests.watching import started, watching

pytestmark = pytest.mark.real


def test_a_removed_sound_folder_is_watched_again_when_it_comes_back(
        tmp_path: Path, holders: list[Holder]) -> None:
    snd = tmp_path / "snd"
    snd.mkdir()  # a sound folder with no capture node: only the folder itself is watched
    src = ProcfsSource([], [f"{snd}/pcmC*D*c"], describer=ProcessDescriber())
    with watching([src]) as (monitor, rec):
        wait_until(lambda: src._watcher is not None, 10, "the inotify watch to be set up")
        snd.rmdir()  # its watch ends (IN_IGNORED): the watch must move up to tmp_path
        mic = make_standin(snd / "pcmC1D0c")  # a card comes: folder and node are new
        wait_until(lambda: [d.id for d in monitor.state.devices] == [str(mic)], 10,
                   "the node in the re-made folder to be listed")
        h = Holder([mic])
        holders.append(h)
        rec.wait_for(started(h.pid, str(mic)))
