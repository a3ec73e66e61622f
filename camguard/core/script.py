"""Which script an interpreter runs (pure): ``python3 /home/u/cam.py`` is ``cam.py`` run by
python3, so a rule can trust one Python program rather than every one.

:func:`script_argument` reads a command line the way the interpreter would: the first
argument that is not an option (or an option's value) names the script; ``-c``/``-e``
(code given inline) or ``-`` (standard input) mean no script; Python's ``-m module`` names a
module. The platform (camguard.platform.process) resolves a relative path against the
process's working folder and keeps it only when it names a regular file.
"""

from __future__ import annotations

import re

# The interpreters whose scripts are named: the basename of the exe (or of argv[0]).
_INTERPRETER = re.compile(
    r"(?P<kind>python|node|nodejs|bash|sh|dash|zsh|ksh|perl|ruby)"
    r"(?:[0-9]+(?:\.[0-9]+)*[a-z]?)?(?:-dbg)?")

# Options that take the next argument as their value, per interpreter family.
_TAKES_VALUE = {
    "python": frozenset({"-W", "-X", "-Q"}),
    "node": frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader",
                       "--conditions", "-C", "--inspect-port", "--env-file", "--title"}),
    "shell": frozenset({"-o", "+o", "-O", "+O"}),
    "perl": frozenset({"-I"}),
    "ruby": frozenset({"-I", "-r", "-C", "-E", "-F"}),
}
# Options (or the letter in a bundle, for shells and perl/ruby) that give the code inline.
_INLINE = {
    "python": frozenset({"-c"}),
    "node": frozenset({"-e", "--eval", "-p", "--print"}),
    "shell": frozenset({"-c", "-s"}),
    "perl": frozenset({"-e", "-E"}),
    "ruby": frozenset({"-e"}),
}
_SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh"})
MODULE_PREFIX = "-m "
MAX_ARGS = 64  # a hostile command line of 100,000 options is not read to its end


def interpreter_family(exe: str, argv0: str = "") -> str | None:
    """``python``, ``node``, ``shell``, ``perl`` or ``ruby`` when ``exe`` (else ``argv0``)
    is one of the interpreters camguard knows; None otherwise."""
    for path in (exe, argv0):
        base = path.replace("\\", "/").rpartition("/")[2]
        m = _INTERPRETER.fullmatch(base)
        if m is not None:
            kind = m.group("kind")
            if kind in _SHELLS:
                return "shell"
            return "node" if kind == "nodejs" else kind
    return None


def script_argument(  # noqa: PLR0911 (one return per way a command line ends)
        exe: str, cmdline: tuple[str, ...] | list[str]) -> str | None:
    """The script ``cmdline`` asks the interpreter ``exe`` to run, as written (relative
    paths are not resolved here), ``-m module`` for a Python module, or None: not an
    interpreter, code given inline, read from standard input, or no argument at all."""
    family = interpreter_family(exe, cmdline[0] if cmdline else "")
    if family is None or len(cmdline) < 2:
        return None
    takes, inline = _TAKES_VALUE[family], _INLINE[family]
    args = list(cmdline[1:MAX_ARGS])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return _named(args[i + 1]) if i + 1 < len(args) else None
        if arg == "-" or not arg:
            return None
        if not arg.startswith(("-", "+")) or (arg.startswith("+") and family != "shell"):
            return _named(arg)
        if family == "python" and arg.startswith("-m"):
            module = arg[2:] or (args[i + 1] if i + 1 < len(args) else "")
            return MODULE_PREFIX + module if module else None
        if family == "python" and len(arg) > 2 and arg[1] in "WX":
            i += 1  # -Wdefault, -Xdev: the value is attached
            continue
        name, _eq, _value = arg.partition("=")
        if name in inline or (family != "node" and not arg.startswith("--")
                              and _bundles_inline(arg, inline)):
            return None
        if name in takes and not _eq:
            i += 2
            continue
        i += 1
    return None


def _bundles_inline(arg: str, inline: frozenset[str]) -> bool:
    """``-ec`` (a shell's -e and -c), ``-ne`` (perl's -n and -e): a bundle of one-letter
    options holding an inline-code one."""
    letters = {f"-{c}" for c in arg[1:]}
    return len(arg) > 2 and arg[1] != "-" and bool(letters & inline)


def _named(arg: str) -> str | None:
    return arg if arg and "\x00" not in arg and len(arg) <= 4096 else None


def is_module(script: str) -> bool:
    """A ``-m module`` script (a Python module, not a file: no path, no hash)."""
    return script.startswith(MODULE_PREFIX)
