"""The Guard answered by the system service (:class:`ServiceGuard`): its answers read into
the objects app/guard.py defines, so the printers cannot tell the sides apart; and
:func:`open_guard`, the one place that decides which side answers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camguard.app.guard_error import GuardError
from camguard.core.text import literal
from camguard.platform import service_transport
from camguard.service import wire as P
from camguard.service.client import (
    ConnectingTransport,
    ServiceClient,
    ServiceImpostor,
    ServiceUnavailable,
)

# The Guard's answer types and the block model (dataclasses), service_decode (the stores'
# records) and the rules are imported where used: ``status --json`` asks the service and
# prints its answer, and loads none of them (issue 16).
if TYPE_CHECKING:
    from camguard.app.guard import (
        AskPassword,
        BlockLine,
        Blocks,
        Guard,
        History,
        LockState,
        Reply,
        RulesInForce,
        Status,
        Watching,
        WatchItem,
    )
    from camguard.core.blocks import BlockOptions, BlockTarget, Outcome
    from camguard.core.models import Usage
    from camguard.store.rules import RuleFileContents

log = logging.getLogger(__name__)


# -- choosing the side, once -----------------------------------------------------------------
def service_client(path: Path | None = None, *, timeout: float = 60.0) -> ServiceClient:
    """A client of the service at ``path`` (None: the default socket) that tells who serves
    it through this platform's transport (SO_PEERCRED on Linux; Windows' named pipe checks
    its server itself)."""
    transport = service_transport()
    if isinstance(transport, ConnectingTransport):
        return ServiceClient(path, timeout=timeout, connect=transport.connect)
    return ServiceClient(path, peer=transport.peer_credentials, timeout=timeout)


def open_guard(socket: Path | None, local: Callable[[], Guard],
               warn: Callable[[str], None] = lambda _message: None) -> Guard:
    """The service's Guard when one answers (``socket``, else the default socket), else
    ``local()``. A ``socket`` that does not answer is an error, not a silent fallback, and
    so is an impostor at the default socket. A default socket this account may not even
    look for (its folder is unreadable) is said through ``warn``, then ``local()``."""
    transport = service_transport()
    # Windows: the named pipe, its server checked to be LocalSystem (platform/windows).
    connect = transport.connect if isinstance(transport, ConnectingTransport) else None
    if socket is not None:
        client = service_client(socket)
        try:
            hello = client.hello()
        except ServiceUnavailable as exc:
            raise GuardError(str(exc)) from None
        if hello.get("ok") is not True:
            raise GuardError(f"{socket} did not answer like a camguard service")
        return ServiceGuard(client)
    if connect is not None:
        override = os.environ.get("CAMGUARD_SOCKET")
        path = Path(override) if override else transport.default_address()
    else:
        # CAMGUARD_SOCKET, else this OS's socket (/run/camguard/...; macOS /var/run/...).
        path = transport.default_address()
        try:
            present = path.exists()
        except OSError as exc:  # EACCES on a folder of the path: a lookup, not a crash
            warn(f"cannot look for the camguard service at {literal(str(path), 500)}: "
                 f"{exc.strerror or exc}; answering without it")
            return local()
        if not present:
            return local()
    client = service_client(path)
    try:
        if client.hello().get("ok") is True:
            return ServiceGuard(client)
    except ServiceImpostor as exc:
        raise GuardError(str(exc)) from None
    except ServiceUnavailable:
        pass
    return local()


def _outcome(answer: Mapping[str, Any]) -> Outcome:
    from camguard.core.blocks import Outcome

    try:
        return Outcome(str(answer.get("outcome") or ""))
    except ValueError:
        if answer.get("ok") is True:
            return Outcome.DONE
        code = answer.get("code")
        if code in (P.DENIED, P.PASSWORD_REQUIRED, P.WRONG_PASSWORD, P.LOCKED_OUT):
            return Outcome.REFUSED
        return Outcome.NOT_FOUND if code == P.NOT_FOUND else Outcome.FAILED


def answer_reply(answer: Mapping[str, Any], **more: Any) -> Reply:
    """A Reply from a service answer: the same fields a local action fills."""
    from camguard.app.guard import Part, Reply
    from camguard.core.blocks import Outcome

    parts = tuple(Part(str(p.get("kind")), Outcome(str(p.get("outcome"))),
                       str(p.get("message")))
                  for p in answer.get("parts") or [])
    ok = answer.get("ok") is True
    message = str(answer.get("message", "") if ok else answer.get("error"))
    return Reply(_outcome(answer), message, str(answer.get("code") or "error"), parts,
                 tuple(str(p) for p in answer.get("problems") or []),
                 tuple(str(d) for d in answer.get("details") or []), **more)


def _service_block_line(d: Mapping[str, Any]) -> BlockLine:
    from camguard.app.guard import BlockLine
    from camguard.app.service_decode import timestamp
    from camguard.core.blocks import StepKind

    how = []
    for step in d.get("how") or []:
        try:
            kind: StepKind | str = StepKind(str(step.get("kind")))
        except ValueError:
            kind = str(step.get("kind"))
        how.append((kind, str(step.get("target"))))
    left = d.get("seconds_left")
    return BlockLine(str(d.get("kind")), timestamp(d.get("since")), timestamp(d.get("until")),
                     None if left is None else float(left), tuple(how))


class _Stream:
    def __init__(self, client: ServiceClient, answers: bool = False) -> None:
        self.banner = ("watching through the camguard service at "
                       f"{literal(str(client.path), 200)}; Ctrl-C to stop")
        try:
            self._watch = client.watch(answers)
        except ServiceUnavailable as exc:
            raise GuardError(str(exc)) from None

    def __iter__(self) -> Iterator[WatchItem]:
        """Each line the service sends; one that does not parse is logged and carries no
        event (the stream goes on). GuardError when the service ends the watch."""
        from camguard.app.guard import WatchItem
        from camguard.app.service_decode import event_from_dict

        for doc in self._watch:
            if doc.get("ok") is False:
                raise GuardError(str(doc.get("error")), str(doc.get("code") or "error"))
            try:
                event = event_from_dict(doc)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("ignored an event from the service that does not parse: %s",
                            literal(str(exc), 300))
                event = None
            yield WatchItem(event, doc)

    def close(self) -> None:
        self._watch.close()


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class ServiceGuard:
    """The system service answers: it shows and touches only what the caller may."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    @property
    def where(self) -> str:
        return f"the camguard service ({self.client.path})"

    def _call(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return fn()
        except ServiceUnavailable as exc:
            raise GuardError(str(exc)) from None

    def _must(self, answer: dict[str, Any]) -> dict[str, Any]:
        if answer.get("ok") is not True:
            raise GuardError(str(answer.get("error")), str(answer.get("code") or "error"),
                             answer.get("outcome"))
        return answer

    def _with_password(self, ask: AskPassword, send: Callable[[str | None], dict[str, Any]]
                       ) -> dict[str, Any]:
        """Send without a password; when the service says one is needed, ask and send
        again (no terminal to ask: what the service said is the answer)."""
        first = self._call(lambda: send(None))
        if first.get("code") != P.PASSWORD_REQUIRED:
            return first
        password = ask()
        return first if password is None else self._call(lambda: send(password))

    def status(self) -> Status:
        from camguard.app.guard import Status
        from camguard.app.service_decode import state_from_dict

        doc = self.status_doc()
        return Status(state_from_dict(doc), doc)

    def status_doc(self) -> Mapping[str, Any]:
        """The service's answer as it came (one JSON object, bounded by the client's
        MAX_ANSWER) without "ok": :meth:`status`'s document, not read into the state
        model (issue 16)."""
        answer = self._must(self._call(self.client.status))
        return {k: v for k, v in answer.items() if k != "ok"}

    def watch(self, answers: bool = False) -> Watching:
        """``answers``: a tray that asks its person (the service may then freeze)."""
        return _Stream(self.client, answers)

    def history(self, filters: Mapping[str, Any], limit: int | None) -> History:
        from camguard.app.guard import History
        from camguard.app.service_decode import is_session, record_from_dict

        answer = self._call(lambda: self.client.history(**filters, limit=limit))
        if answer.get("ok") is not True:
            raise GuardError(str(answer.get("error")), str(answer.get("code") or "error"))
        entries = list(answer.get("entries") or [])
        warnings = ["the service sent only the newest entries; use --since or --limit"] \
            if answer.get("truncated") else []
        return History([record_from_dict(e) for e in entries if is_session(e)],
                       [e for e in entries if not is_session(e)], entries, warnings)

    def kill(self, pid: int, create_time: float | None, *, force: bool) -> Reply:
        return answer_reply(self._call(lambda: self.client.kill(pid, create_time,
                                                                force=force)))

    def block(self, target: BlockTarget, seconds: float | None, options: BlockOptions
              ) -> Reply:
        from camguard.core.blocks import Outcome

        answer = self._call(lambda: self.client.block(
            target.value, seconds, unbind_usb=options.unbind_usb,
            persistent=options.persistent))
        reply = answer_reply(answer)
        if not any(p.outcome is Outcome.DONE for p in reply.parts):
            return reply
        now = self.blocks()  # what is off now, as a local block reports it
        return answer_reply(answer, lifted=now.lifted, now_off=tuple(
            b for b in now.blocks if b.kind in {k.value for k in target.kinds}))

    def unblock(self, target: BlockTarget, ask: AskPassword) -> Reply:
        return answer_reply(self._with_password(
            ask, lambda pw: self.client.unblock(target.value, pw)))

    def panic(self) -> Reply:
        return answer_reply(self._call(lambda: self.client.block("all")))

    def blocks(self) -> Blocks:
        from camguard.app.guard import Blocks, Part
        from camguard.core.blocks import Outcome

        answer = self._must(self._call(self.client.blocks))
        return Blocks(tuple(_service_block_line(b) for b in answer.get("blocks") or []),
                      tuple(Part(str(k), Outcome.DONE, "") for k in answer.get("lifted") or []),
                      tuple(str(p) for p in answer.get("problems") or []),
                      {k: v for k, v in answer.items() if k != "ok"})

    def pause(self, seconds: float | None, ask: AskPassword) -> Reply:
        answer = self._with_password(ask, lambda pw: self.client.pause(seconds, pw))
        until = answer.get("paused_until") or "you run `camguard resume`"
        return answer_reply({**answer, "message": f"rules paused until {until}"})

    def resume(self) -> Reply:
        answer = self._call(self.client.resume)
        return answer_reply({**answer, "message": "rules enforced again"})

    def lock_status(self) -> LockState:
        from camguard.app.guard import LockState

        return LockState(self.where, self._must(self._call(self.client.lock_status)))

    def lock_set(self, new: Callable[[], str], ask: AskPassword) -> Reply:
        is_set = bool(self._call(self.client.lock_status).get("set"))
        current = ask() if is_set and not _root() else None  # root may always set it
        password = new()
        answer = self._call(lambda: self.client.lock_set(password, current))
        return answer_reply({**answer, "message": "the parental lock is set (kept by the "
                             "camguard service)"})

    def lock_clear(self, ask: AskPassword) -> Reply:
        current = ask() if not _root() else None
        answer = self._call(lambda: self.client.lock_clear(current))
        return answer_reply({**answer, "message": "the parental lock is off"})

    def decide(self, usage: Usage, decision: str, decided_by: str) -> dict[str, Any]:
        """Record a person's answer about ``usage`` on the service's session of it; the
        service's answer (``ok`` false when refused)."""
        p = usage.process
        return self._call(lambda: self.client.decide(
            usage.device.kind.value, usage.device.id, None if p is None else p.pid,
            None if p is None else p.create_time, decision=decision, decided_by=decided_by))

    def send_own_rules(self, contents: RuleFileContents) -> dict[str, Any]:
        """Hand the service this account's rules (the rules file's, durable ones): it
        enforces them on this account's processes only (service/accounts.py). The mode
        stays the service's."""
        from camguard.core.rules import durable
        from camguard.core.rules_json import rules_to_json

        text = json.dumps(rules_to_json(durable(contents.rules)), ensure_ascii=False,
                          separators=(",", ":"))
        return self._call(lambda: self.client.user_rules(text))

    def rules(self) -> RulesInForce | None:
        from camguard.app.guard import RulesInForce
        from camguard.core.rules import Origin, RuleError
        from camguard.core.rules_json import rule_from_json

        answer = self._call(self.client.rules)
        if answer.get("code") == P.UNAVAILABLE:
            return None  # a service that enforces no rules
        answer = self._must(answer)
        rules, problems = [], [str(p) for p in answer.get("problems") or []]
        for obj in answer.get("rules") or []:
            fields = dict(obj)
            try:
                origin = Origin(str(fields.pop("origin", Origin.USER.value)))
                rules.append(rule_from_json(fields, origin))
            except (RuleError, ValueError) as exc:
                problems.append(f"a rule of the service's cannot be shown: {exc}")
        error = answer.get("policy_error")
        return RulesInForce(self.where, str(answer.get("mode")), tuple(rules),
                            tuple(problems), None if error is None else str(error),
                            {k: v for k, v in answer.items() if k != "ok"})
