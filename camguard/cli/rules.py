"""``camguard rules``: the user's rules, the mode for unmatched usage, and ``explain``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.app.guard import GuardError
from camguard.cli import remote
from camguard.cli.argtypes import choice_of, existing_file, metavar_of
from camguard.cli.common import (
    EXIT_BAD_ARGS,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_REFUSED,
    CliError,
    policy_reader,
)
from camguard.cli.rule_lines import rule_json, rule_line
from camguard.core.decision import UsageFacts, decide
from camguard.core.models import DeviceKind
from camguard.core.rules import (
    AppMatch,
    Duration,
    MatchBy,
    Mode,
    Rule,
    RuleError,
    Verdict,
    make_rule,
)
from camguard.core.rules_json import decision_dict, rules_from_json, rules_to_json
from camguard.core.text import json_text, literal
from camguard.platform.clock import SystemClock, local_zone

if TYPE_CHECKING:  # the stores are imported when a rules command runs (issue 16)
    from camguard.store.eventlog import EventLog
    from camguard.store.policy import EffectiveSettings, PolicyStatus
    from camguard.store.rules import RuleFile, RuleFileContents

RULES = "rules"  # store.policy.RULES (a test keeps them equal): the rule list's lock name

EPILOG = """which rule wins: the most specific one (exe path + SHA-256 > exact path > folder >
process name > any app, then a named user > any, then a device kind > any, then a time
window > always); at equal specificity block-device > kill > ask > allow. A policy rule
wins over yours unless yours is stricter.

exit codes: 0 done, 1 failed, 2 bad arguments, 3 refused (locked by policy, or the policy
cannot be read), 4 no such rule"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    outer, pol = policy_option(None), policy_option(argparse.SUPPRESS)
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="machine-readable output")
    parents = [common, pol]

    p = sub.add_parser("rules", parents=[common, outer], epilog=EPILOG, formatter_class=fmt,
                       help="list, add and remove rules (allow, ask, kill, block-device)")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    q = rsub.add_parser("list", parents=[*parents, js], help="the rules in force")
    q.set_defaults(func=cmd_list)
    q = rsub.add_parser("add", parents=[*parents, js], epilog=EPILOG, formatter_class=fmt,
                        help="add a rule")
    app = q.add_mutually_exclusive_group()
    app.add_argument("--exe", metavar="PATH", help="this binary (its path and SHA-256)")
    app.add_argument("--origin", metavar="KIND:NAME",
                     help="any binary from this checked origin: deb:firefox-esr (a file of "
                     "that Debian package whose md5sum still matches: holds across its "
                     "updates), flatpak:APP_ID, snap:NAME, appimage:/path/App.AppImage")
    app.add_argument("--script", metavar="PATH",
                     help="this script (its path and SHA-256), whichever interpreter "
                     "(python3, node, bash, perl, ruby) runs it")
    app.add_argument("--path", metavar="PATH",
                     help="any binary at PATH (or under it, when it ends in /)")
    app.add_argument("--name", metavar="NAME", help="processes with this name (weakest)")
    q.add_argument("--sha256", metavar="HEX", help="with --exe or --script: the hash to "
                   "require "
                   "(default: the hash of the file now)")
    q.add_argument("--kind", default="any",
                   choices=["camera", "microphone", "screen", "location", "any"])
    q.add_argument("--verdict", required=True, type=choice_of(Verdict),
                   metavar=metavar_of(Verdict))
    q.add_argument("--duration", default="always", type=choice_of(Duration),
                   metavar=metavar_of(Duration),
                   help="15m, 1h or always (once and until-restart exist only in the app)")
    q.add_argument("--user", metavar="USER", help="only this user's processes")
    q.add_argument("--window", metavar="WHEN",
                   help="'mon-fri 16:00-19:00', 'sat,sun', 'daily 21:00-06:00' (local time)")
    q.add_argument("--label", default="", metavar="TEXT", help="a name for the rule")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_add)
    q = rsub.add_parser("remove", parents=parents, help="remove a rule by id or label")
    q.add_argument("rule", metavar="ID_OR_LABEL")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_remove)
    q = rsub.add_parser("export", parents=parents, help="write your rules to a file")
    q.add_argument("file", metavar="FILE", help="'-' for standard output")
    q.set_defaults(func=cmd_export)
    q = rsub.add_parser("import", parents=parents, help="add rules from an exported file")
    q.add_argument("file", type=Path, metavar="FILE")
    q.add_argument("--replace", action="store_true", help="replace your rules instead")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_import)
    q = rsub.add_parser("mode", parents=parents, help="show or set what happens when no "
                        "rule matches")
    q.add_argument("mode", nargs="?", type=choice_of(Mode), metavar="MODE",
                   help=f"one of {metavar_of(Mode)}")
    remote.add_password_option(q)
    q.set_defaults(func=cmd_mode)
    q = rsub.add_parser("explain", parents=[*parents, js],
                        help="what camguard would decide for an app right now")
    q.add_argument("--kind", required=True, choices=["camera", "microphone", "screen", "location"])
    q.add_argument("--exe", metavar="PATH", default="")
    q.add_argument("--name", metavar="NAME", default="")
    q.add_argument("--user", metavar="USER", default="")
    q.set_defaults(func=cmd_explain)


def policy_option(default: Any) -> argparse.ArgumentParser:
    # The option works before and after the action; the copy after it uses SUPPRESS so it
    # cannot overwrite a value given before it (the pattern of cli.common).
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--policy-file", type=existing_file, default=default, metavar="PATH",
                   help="managed policy file (default: /etc/camguard/policy.toml; on "
                   "Windows HKLM\\Software\\Policies\\camguard)")
    return p


# -- what is in force ----------------------------------------------------------------------
@dataclass
class Context:
    status: PolicyStatus
    file: RuleFile
    contents: RuleFileContents
    settings: EffectiveSettings
    args: argparse.Namespace | None = None  # where a service may answer (--socket)


def load_context(args: argparse.Namespace, *, quiet: bool = False) -> Context:
    from camguard.app import tray as tray_parts
    from camguard.app.settings import managed_policy
    from camguard.store import paths
    from camguard.store.policy import effective_settings, load_user_settings

    status = managed_policy(policy_reader(args), report=False).load()  # printed below unless quiet
    rule_file = tray_parts.rule_file()
    contents = rule_file.load()
    user, problems = load_user_settings(args.config or paths.config_dir() / "settings.json")
    if contents.mode is not None:
        user["mode"] = contents.mode.value
    eff = effective_settings(user, status.policy, contents.rules)
    if not quiet:
        if status.error:
            print(f"camguard: error: {status.error}", file=sys.stderr)
        for p in [*eff.problems, *contents.problems, *problems]:
            print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    return Context(status, rule_file, contents, eff, args)


def check_may_change(ctx: Context, name: str) -> None:
    """Refuse (exit 3) a change to a locked setting, or to any while the policy is broken:
    a policy that cannot be read might lock it, so fail closed."""
    if ctx.status.error:
        raise CliError(f"cannot change {name!r} while the managed policy cannot be read",
                       EXIT_REFUSED)
    why = ctx.settings.refusal(name)
    if why:
        raise CliError(why, EXIT_REFUSED)


def events_path(args: argparse.Namespace, ctx: Context) -> Path | None:
    """The event log file (None: the default); --events-file is refused when locked."""
    if args.events_file is not None:
        check_may_change(ctx, "events_file")
        return Path(args.events_file)
    value = ctx.settings.value("events_file")
    return Path(value) if value else None


def event_log(args: argparse.Namespace, ctx: Context) -> EventLog:
    # A short-lived command: the log and syslog as set, but no hook runner to wait for.
    from camguard.app.outputs import build_event_outputs

    outputs = build_event_outputs(ctx.settings, SystemClock(), events_path(args, ctx),
                                  hook=False)
    for p in outputs.problems:
        print(f"camguard: warning: {p}", file=sys.stderr)
    return outputs.log


# -- rules -----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    try:
        served = remote.guard(args).rules()
    except GuardError as exc:
        return remote.refusal(exc)
    now = SystemClock().now()
    eff = ctx.settings
    locked = eff.items[RULES]
    if args.json:
        doc = {"mode": eff.value("mode"), "rules_locked": locked.locked,
               "locked_by": locked.locked_by, "policy_error": ctx.status.error,
               "rules": [rule_json(r, now) for r in eff.rules]}
        if served is not None:
            doc["service"] = {**served.doc, "rules": [rule_json(r, now) for r in served.rules]}
        print(json_text(doc, indent=2))
        return 0
    print(f"mode: {eff.value('mode')} ({eff.items['mode'].source})")
    if locked.locked:
        print(f"rules locked by {locked.locked_by}")
    if not eff.rules:
        print("no rules")
    for rule in eff.rules:
        print(rule_line(rule, now))
    if served is not None:
        # While a service runs, it decides: its rules are the ones enforced.
        print(f"enforced by {literal(served.where, 300)}: mode {literal(served.mode, 40)}")
        if not served.rules:
            print("no rules")
        for rule in served.rules:
            print(rule_line(rule, now))
        for p in served.problems:
            print(f"camguard: warning: {literal(p, 500)}", file=sys.stderr)
    return 0


def _app(args: argparse.Namespace) -> AppMatch:
    script = getattr(args, "script", None)
    if args.sha256 and not (args.exe or script):
        raise CliError("--sha256 goes with --exe or --script", EXIT_BAD_ARGS)
    if args.exe or script:
        from camguard.store.hashing import sha256_file

        exe = os.path.abspath(str(args.exe or script))
        digest = args.sha256.strip().lower() if args.sha256 else sha256_file(exe)
        if digest is None:
            raise CliError(f"cannot read {literal(exe, 300)} to take its SHA-256; give "
                           "--sha256 HEX, or use --path to match any binary there",
                           EXIT_BAD_ARGS)
        return AppMatch(MatchBy.SCRIPT if script else MatchBy.EXE, exe, digest)
    if getattr(args, "origin", None):
        return AppMatch(MatchBy.ORIGIN, args.origin)
    if args.path:
        return AppMatch(MatchBy.PATH, args.path)
    if args.name:
        return AppMatch(MatchBy.NAME, args.name)
    return AppMatch()


def cmd_add(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    check_may_change(ctx, RULES)
    events_path(args, ctx)  # refuse a locked --events-file before changing anything
    if not Duration(args.duration).durable:
        raise CliError(f"a {args.duration!r} rule lives only inside the running camguard "
                       "(choose it in an alert); here use 15m, 1h or always", EXIT_BAD_ARGS)
    now = SystemClock().now()
    try:
        rule = make_rule(args.verdict, app=_app(args), kind=args.kind, user=args.user,
                         window=args.window, duration=args.duration, created_at=now,
                         label=args.label)
    except RuleError as exc:
        raise CliError(str(exc), EXIT_BAD_ARGS) from None
    remote.require_cli_unlock(args, "changing rules")
    if rule.app.by is MatchBy.NAME and rule.verdict is Verdict.ALLOW:
        print("camguard: warning: a process chooses its own name; any program can call "
              "itself that. Prefer --exe.", file=sys.stderr)
    with ctx.file.locked():
        contents = ctx.file.load()
        _save(ctx, [*contents.rules, rule], contents.mode, now)
    log = event_log(args, ctx)
    try:
        log.emit("rule.added", f"rule added: {rule.name}", rule=rule_json(rule, now))
    finally:
        log.close()
    if args.json:
        print(json_text(rule_json(rule, now), indent=2))
    else:
        print(f"added rule {rule.id}: {rule.describe()}")
    return 0


def _save(ctx: Context, rules: list[Rule], mode: Mode | None, now: float) -> None:
    try:
        ctx.file.save(rules, mode, now)
    except OSError as exc:
        raise CliError(f"cannot write {ctx.file.path}: {exc}", EXIT_FAILED) from None
    _send_to_service(ctx)


def _send_to_service(ctx: Context) -> None:
    """While a service runs, it enforces this account's rules on its processes: hand it
    the file as saved (a warning, not a failure, when it cannot take them)."""
    from camguard.app.guard_service import ServiceGuard

    if ctx.args is None:
        return
    try:
        guard = remote.guard(ctx.args)
        if not isinstance(guard, ServiceGuard):
            return
        answer = guard.send_own_rules(ctx.file.load())
    except (CliError, GuardError) as exc:
        print(f"camguard: warning: your rules were saved but not handed to the service: "
              f"{literal(str(exc), 300)}", file=sys.stderr)
        return
    if answer.get("ok") is not True:
        print(f"camguard: warning: the service did not take your rules: "
              f"{literal(str(answer.get('error')), 300)}", file=sys.stderr)


def _find(rules: list[Rule], key: str) -> list[Rule]:
    exact = [r for r in rules if key in (r.id, r.label)]
    if exact or len(key) < 4:
        return exact
    return [r for r in rules if r.id.startswith(key)]


def cmd_remove(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    if _find(list(ctx.status.policy.rules), args.rule):
        raise CliError(f"{args.rule!r} is set by {ctx.status.policy.source}; it cannot be "
                       "removed here", EXIT_REFUSED)
    check_may_change(ctx, RULES)
    events_path(args, ctx)  # refuse a locked --events-file before changing anything
    remote.require_cli_unlock(args, "changing rules")
    now = SystemClock().now()
    with ctx.file.locked():
        contents = ctx.file.load()
        found = _find(contents.rules, args.rule)
        if not found:
            raise CliError(f"no rule {literal(args.rule, 100)!r} (see `camguard rules list`)",
                           EXIT_NOT_FOUND)
        if len(found) > 1:
            raise CliError(f"{literal(args.rule, 100)!r} names {len(found)} rules; give "
                           "the id", EXIT_BAD_ARGS)
        _save(ctx, [r for r in contents.rules if r != found[0]], contents.mode, now)
    log = event_log(args, ctx)
    try:
        log.emit("rule.removed", f"rule removed: {found[0].name}",
                 rule=rule_json(found[0], now))
    finally:
        log.close()
    print(f"removed rule {found[0].id}: {found[0].describe()}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    text = json.dumps(rules_to_json(ctx.contents.rules, ctx.contents.mode), indent=1,
                      ensure_ascii=False) + "\n"
    if args.file == "-":
        sys.stdout.write(text)
        return 0
    from camguard.store.files import write_private

    try:
        write_private(Path(args.file), text.encode("utf-8"))
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc}", EXIT_FAILED) from None
    print(f"exported {len(ctx.contents.rules)} rule(s) to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    check_may_change(ctx, RULES)
    events_path(args, ctx)  # refuse a locked --events-file before changing anything
    try:
        doc = json.loads(args.file.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CliError(f"cannot import {args.file}: {exc}", EXIT_FAILED) from None
    new, errors = rules_from_json(doc)
    remote.require_cli_unlock(args, "changing rules")
    for e in errors:
        print(f"camguard: rejected: {literal(e, 500)}", file=sys.stderr)
    now = SystemClock().now()
    skipped = [r for r in new if not r.duration.durable or not r.active(now)]
    for r in skipped:
        why = "expired" if r.duration.durable else f"{r.duration.value} rules are not kept"
        print(f"camguard: skipped: rule {r.id} ({why})", file=sys.stderr)
    new = [r for r in new if r not in skipped]
    mode = doc.get("mode") if isinstance(doc, dict) else None
    with ctx.file.locked():
        contents = ctx.file.load()
        keep = [] if args.replace else contents.rules
        ids = {r.id for r in keep}
        added = [r for r in new if r.id not in ids]
        new_mode = contents.mode
        if (isinstance(mode, str) and mode in {m.value for m in Mode}
                and ctx.settings.refusal("mode") is None):
            new_mode = Mode(mode)
        _save(ctx, [*keep, *added], new_mode, now)
    log = event_log(args, ctx)
    try:
        for r in added:
            log.emit("rule.added", f"rule imported: {r.name}", rule=rule_json(r, now))
    finally:
        log.close()
    print(f"imported {len(added)} rule(s)"
          + (f"; {len(new) - len(added)} already present" if len(new) > len(added) else ""))
    return EXIT_FAILED if errors else 0


def cmd_mode(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    if args.mode is None:
        item = ctx.settings.items["mode"]
        locked = f", locked by {item.locked_by}" if item.locked else ""
        print(f"{item.value} ({item.source}{locked})")
        return 0
    check_may_change(ctx, "mode")
    remote.require_cli_unlock(args, "changing rules")
    with ctx.file.locked():
        contents = ctx.file.load()
        _save(ctx, contents.rules, Mode(args.mode), SystemClock().now())
    print(f"mode: {args.mode}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from camguard.store.hashing import sha256_file

    ctx = load_context(args)
    exe = os.path.abspath(args.exe) if args.exe else ""
    origin = None
    if exe:
        from camguard.platform import current

        origin = current().origin_resolver().origin(None, exe)
    facts = UsageFacts(DeviceKind(args.kind), exe, sha256_file(exe) if exe else None,
                       args.name, args.user, origin=origin)
    d = decide(ctx.settings.rules, facts, ctx.settings.mode, SystemClock(), local_zone())
    if args.json:
        print(json_text(decision_dict(d), indent=2))
        return 0
    print(f"{d.verdict.value}: {d.explanation}")
    for note in d.notes:
        print(f"  note: {note}")
    return 0
