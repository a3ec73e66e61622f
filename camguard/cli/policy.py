"""``camguard policy``: the managed policy (IT, parents) and the settings it locks."""

from __future__ import annotations

import argparse
from typing import Any

from camguard import __version__
from camguard.cli.common import EXIT_DONE, EXIT_FAILED
from camguard.cli.rule_lines import rule_json, rule_line
from camguard.cli.rules import load_context, policy_option
from camguard.core.text import json_safe, json_text, literal
from camguard.platform.clock import SystemClock


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    outer, pol = policy_option(None), policy_option(argparse.SUPPRESS)
    js = argparse.ArgumentParser(add_help=False)
    js.add_argument("--json", action="store_true", help="machine-readable output")
    parents = [common, pol]

    p = sub.add_parser("policy", parents=[common, outer], help="the managed policy (IT, parents)")
    psub = p.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    q = psub.add_parser("show", parents=[*parents, js],
                        help="settings in force, which are locked and by whom")
    q.set_defaults(func=cmd_policy_show)


def cmd_policy_show(args: argparse.Namespace) -> int:
    ctx = load_context(args, quiet=args.json)
    eff, status = ctx.settings, ctx.status
    # The reader's source names its kind ("policy /etc/camguard/policy.toml", "registry
    # HKLM\\..."): printed after "managed policy:", a file needs no second "policy".
    source = status.policy.source.removeprefix("policy ") or (
        "none" if not status.error else "none in force")
    from camguard.app.outputs import events_file_in_use

    in_use = events_file_in_use(args.events_file, eff)
    if args.json:
        doc = {
            "policy": status.policy.source or None,
            "error": status.error,
            "problems": [json_safe(p) for p in eff.problems],
            "settings": {n: {"value": _jsonable(i.value), "source": i.source,
                             "locked": i.locked, "locked_by": i.locked_by,
                             "note": i.note or None} for n, i in eff.items.items()},
            "policy_rules": [rule_json(r, SystemClock().now()) for r in status.policy.rules],
            "events_file_in_use": str(in_use),
            "camguard": __version__,
        }
        print(json_text(doc, indent=2))
    else:
        print(f"managed policy: {literal(source, 500)}")
        for name, item in eff.items.items():
            lock = f"locked by {item.locked_by}" if item.locked else "you may change it"
            shown = "(the default file)" if name == "events_file" and not item.value \
                else _shown(item.value)
            print(f"{name:<19} {literal(shown, 60):<26} {item.source:<8} {lock}")
            if item.note:
                print(f"{'':<19} ({literal(item.note, 200)})")
            if name == "events_file" and str(in_use) != item.value:
                # An empty setting means the default file, which is written all the same.
                print(f"{'':<19} (events are written to {literal(str(in_use), 500)})")
        for rule in status.policy.rules:
            print(f"policy rule: {rule_line(rule, SystemClock().now())}")
    return EXIT_FAILED if status.error else EXIT_DONE


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(value) or "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value == "":
        return "(none)"
    return str(value)
