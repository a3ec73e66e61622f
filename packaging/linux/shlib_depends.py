"""Prints the Debian ``Depends`` a PyInstaller bundle needs: the system libraries it links to.

PyInstaller copies most libraries into the bundle but deliberately leaves some to the
system (libc, libGL/libEGL, libxcb and friends: its exclude list). This reads the
DT_NEEDED entries of every ELF file in the bundle (``objdump -p``), drops the sonames the
bundle provides itself, finds the rest with ``ldconfig -p`` and asks dpkg which package
holds each (``dpkg -S``). ``libc6 (>= X)`` takes the newest GLIBC_X symbol version any file
uses (``objdump -T``): the bundle will not start with an older glibc.

A needed library that is nowhere on the build machine is an error: the package would
install and then fail to start. (dpkg-shlibdeps does the same job, but wants a debian/
source tree and shlibs data for the bundle's private libraries.)

Usage: shlib_depends.py BUNDLE_DIR  ->  prints "libc6 (>= 2.36), libegl1, ..." on stdout
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

GLIBC_RE = re.compile(r"GLIBC_([0-9]+)\.([0-9]+)")


def tool(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise SystemExit(f"shlib_depends: {name} is missing (scripts/system-deps.sh packaging)")
    return path


def elf_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as f:
            if f.read(4) == b"\x7fELF":
                out.append(path)
    return out


def needed(path: Path) -> set[str]:
    text = subprocess.run([tool("objdump"), "-p", str(path)], capture_output=True, text=True,
                          check=True).stdout
    return {f[1] for f in (line.split() for line in text.splitlines())
            if len(f) == 2 and f[0] == "NEEDED"}


def glibc_floor(paths: list[Path]) -> tuple[int, int]:
    best = (2, 2)
    for path in paths:
        text = subprocess.run([tool("objdump"), "-T", str(path)], capture_output=True, text=True,
                              check=False).stdout
        for m in GLIBC_RE.finditer(text):
            best = max(best, (int(m.group(1)), int(m.group(2))))
    return best


def system_libraries() -> dict[str, str]:
    """soname -> path for this machine's architecture (``ldconfig -p``)."""
    arch = "x86-64" if os.uname().machine == "x86_64" else os.uname().machine
    out: dict[str, str] = {}
    text = subprocess.run([tool("ldconfig"), "-p"], capture_output=True, text=True,
                          check=True).stdout
    for line in text.splitlines()[1:]:
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and (arch in m.group(2) or "x86-64" not in m.group(2)):
            out.setdefault(m.group(1), m.group(3))
    return out


def owner(path: str) -> str | None:
    """The Debian package holding ``path`` (merged /usr: try both spellings)."""
    real = os.path.realpath(path)
    candidates = [path, real]
    for p in (path, real):
        if p.startswith("/usr/"):
            candidates.append(p[4:])
        else:
            candidates.append("/usr" + p)
    for p in dict.fromkeys(candidates):
        proc = subprocess.run([tool("dpkg-query"), "-S", p], capture_output=True, text=True,
                              check=False)
        if proc.returncode == 0:
            return proc.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1])
    files = elf_files(root)
    provided = {p.name for p in root.rglob("*")}
    users: dict[str, list[Path]] = {}
    for path in files:
        for soname in needed(path) - provided:
            users.setdefault(soname, []).append(path)
    libs = system_libraries()
    packages: set[str] = set()
    missing = []
    for soname in sorted(users):
        lib_path = libs.get(soname)
        pkg = owner(lib_path) if lib_path else None
        if pkg is None:
            missing.append(f"{soname} (needed by {users[soname][0].relative_to(root)})")
        else:
            packages.add(pkg)
    if missing:
        print("shlib_depends: not on this machine, so the package could not start:\n  "
              + "\n  ".join(missing), file=sys.stderr)
        return 1
    major, minor = glibc_floor(files)
    packages.discard("libc6")
    print(", ".join([f"libc6 (>= {major}.{minor})", *sorted(packages)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
