"""Which pid is the session's sound server, from a /proc-like tree: the executable, the owner
and the socket it listens on decide; the runtime folder must be its owner's and private."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from camguard.platform.linux.soundserver import SoundServers

UID = os.getuid()
EXES = ("/usr/bin/pipewire", "/usr/bin/wireplumber")


class Tree:
    """A tmp /proc with processes whose fds, net/unix, exe and status we write."""

    def __init__(self, root: Path) -> None:
        self.proc = root / "proc"
        self.proc.mkdir()
        self.listening: list[socket.socket] = []

    def add(self, pid: int, exe: str, *, uid: int = UID, listens: str | None = None,
            inode: int = 0) -> None:
        d = self.proc / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "net").mkdir()
        (d / "exe").symlink_to(exe)
        (d / "status").write_text(f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
        lines = ["Num       RefCount Protocol Flags    Type St Inode Path"]
        if listens is not None:
            (d / "fd" / "3").symlink_to(f"socket:[{inode}]")
            lines.append(f"0000000000000000: 00000002 00000000 00010000 0001 01 {inode} "
                         f"{listens}")
        (d / "net" / "unix").write_text("\n".join(lines) + "\n")

    def socket_at(self, path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        self.listening.append(s)
        return str(path)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    t = Tree(tmp_path)
    yield t
    for s in t.listening:
        s.close()


@pytest.fixture
def runtime(tmp_path: Path) -> Path:
    r = tmp_path / "run-user"
    r.mkdir(mode=0o700)
    return r


def test_the_server_of_a_private_session_socket_is_the_sound_server(
        tree: Tree, runtime: Path) -> None:
    tree.add(100, "/usr/bin/pipewire", listens=tree.socket_at(runtime / "pipewire-0"),
             inode=7)
    tree.add(101, "/usr/bin/wireplumber")  # its helper: same owner, a sound-server binary
    tree.add(102, "/usr/bin/python3.11", listens=tree.socket_at(runtime / "pulse" / "native"),
             inode=8)  # listens where pipewire-pulse would, but is not a sound server binary
    servers = SoundServers(EXES, str(tree.proc))
    assert [servers.is_sound_server(p) for p in (100, 101, 102)] == [True, True, False]


def test_a_sound_server_binary_without_a_session_socket_is_not_protected(
        tree: Tree, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o700)
    loose.chmod(0o777)  # anyone may create sockets here: not a user's runtime folder
    tree.add(100, "/usr/bin/pipewire", listens=tree.socket_at(loose / "pipewire-0"), inode=7)
    tree.add(101, "/usr/bin/wireplumber")
    tree.add(102, "/usr/bin/pipewire (deleted)")
    servers = SoundServers(EXES, str(tree.proc))
    assert [servers.is_sound_server(p) for p in (100, 101, 102, 999)] == [False] * 4


def test_another_owners_server_does_not_protect_this_one(tree: Tree, runtime: Path) -> None:
    tree.add(100, "/usr/bin/pipewire", listens=tree.socket_at(runtime / "pipewire-0"),
             inode=7)
    tree.add(101, "/usr/bin/wireplumber", uid=UID + 4242)
    tree.add(102, "/usr/bin/pipewire", uid=UID + 4242, listens=str(runtime / "pipewire-0"),
             inode=9)  # claims this user's socket, but neither it nor its folder is theirs
    servers = SoundServers(EXES, str(tree.proc))
    assert [servers.is_sound_server(p) for p in (100, 101, 102)] == [True, False, False]


def test_damaged_proc_entries_protect_nothing_and_never_raise(tree: Tree, runtime: Path) -> None:
    """Every entry a process (or a race with its exit) can leave odd: none of them makes a
    sound server, and none raises."""
    tree.add(100, "/usr/bin/pipewire", listens=tree.socket_at(runtime / "pipewire-0"),
             inode=7)
    # A helper whose status has no usable Uid line: not known to be the same owner.
    tree.add(101, "/usr/bin/wireplumber")
    (tree.proc / "101" / "status").write_text("Name:\tx\nUid:\tnot-a-number\n")
    # A server binary whose net/unix is gone, with odd fd links: still the session's server's
    # own kind (same owner as 100), so protected through 100, not through its sockets.
    tree.add(102, "/usr/bin/pipewire")
    (tree.proc / "102" / "net" / "unix").unlink()
    (tree.proc / "102" / "fd" / "4").symlink_to("socket:[not-a-number]")
    (tree.proc / "102" / "fd" / "5").symlink_to("/dev/null")
    # A server binary with malformed, abstract, unbound and non-listening sockets.
    tree.add(103, "/usr/bin/pipewire", uid=UID + 1)
    d = tree.proc / "103"
    (d / "fd" / "3").symlink_to("socket:[11]")
    (d / "net" / "unix").write_text(
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "short line\n"
        "0000000000000000: 00000002 00000000 zzzzzzzz 0001 01 11 /run/x/pipewire-0\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 11 @abstract\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 11\n"
        f"0000000000000000: 00000002 00000000 00000000 0001 01 11 {runtime}/pulse/native\n")
    # No status at all, no fd folder; and a /proc entry that is not a process.
    tree.add(104, "/usr/bin/pipewire")
    (tree.proc / "104" / "status").unlink()
    (tree.proc / "self-like").mkdir()
    servers = SoundServers(EXES, str(tree.proc))
    assert [servers.is_sound_server(p) for p in (100, 101, 102, 103, 104)] == \
        [True, False, True, False, False]
    assert SoundServers(EXES, str(tree.proc / "missing")).is_sound_server(100) is False
