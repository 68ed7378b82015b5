"""SessionPolicy: one session's envelopes in, findings as soon as decidable, a verdict at close."""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import regex

from voxledger.envelope import UNPARSED_TYPE, Envelope, format_observed_at
from voxledger.processors.policy._model import Action, Policy, Rule, Severity
from voxledger.processors.policy._text import excerpt, find_amounts, guess_language, normalise
from voxledger.realtime import CLIENT_EVENT_TYPES, SERVER_EVENT_TYPES

VerdictValue = Literal["pass", "fail", "needs_review"]
# Finding ids are uuid5 in this namespace over session, rule and evidence seqs: replays agree.
FINDING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "policy.voxledger")

_ASSISTANT_TEXT = {
    "response.output_audio_transcript.done": "transcript",
    "response.audio_transcript.done": "transcript",
    "response.output_text.done": "text",
    "response.text.done": "text",
}
_USER_TRANSCRIPT = "conversation.item.input_audio_transcription.completed"
_ITEM_EVENTS = {
    "response.output_item.done",
    "conversation.item.done",
    "conversation.item.created",
    "conversation.item.added",
    "conversation.item.retrieved",
    "conversation.item.create",
}
_FINAL_ITEM_EVENTS = {"response.output_item.done", "conversation.item.done", "response.done"}
_SESSION_CONFIG = {"session.created", "session.updated", "session.update"}
_JUDGED = {
    *_ASSISTANT_TEXT,
    _USER_TRANSCRIPT,
    *_ITEM_EVENTS,
    *_SESSION_CONFIG,
    "response.function_call_arguments.done",
    "response.done",
    "error",
}
_SENTENCE_END = regex.compile(r"(?<=[.?!])\s+|(?<=[。？！])")


@dataclass(frozen=True)
class Evidence:
    seq: int
    envelope_id: str
    excerpt: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "envelope_id": self.envelope_id, "excerpt": self.excerpt}


@dataclass(frozen=True)
class Finding:
    """One rule broken (or not judgeable) in one session, with the redacted evidence."""

    finding_id: str
    session_id: str
    rule_id: str
    policy_version: str
    severity: Severity
    action: Action  # what it means for the verdict: fail, or needs_review
    message: str
    evidence: tuple[Evidence, ...]
    observed_at: str
    status: Literal["open"] = "open"

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding_id,
            "session_id": self.session_id,
            "rule_id": self.rule_id,
            "policy_version": self.policy_version,
            "severity": self.severity,
            "status": self.status,
            "action": self.action,
            "message": self.message,
            "evidence": [e.to_dict() for e in self.evidence],
            "observed_at": self.observed_at,
        }


@dataclass(frozen=True)
class Verdict:
    """A session's outcome, the rules that decided it, and where the session ran."""

    session_id: str
    verdict: VerdictValue
    deciding_rules: tuple[str, ...]
    policy_version: str
    findings: int
    events: int
    tenant: str | None = None
    region: str | None = None
    upstream_host: str | None = None
    model: str | None = None
    language: str | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "verdict": self.verdict,
            "deciding_rules": list(self.deciding_rules),
            "policy_version": self.policy_version,
            "findings": self.findings,
            "events": self.events,
            "tenant": self.tenant,
            "region": self.region,
            "upstream_host": self.upstream_host,
            "model": self.model,
            "language": self.language,
            "warnings": list(self.warnings),
        }


@dataclass
class _Turn:
    role: Literal["user", "assistant"]
    text: str  # as received (redacted)
    norm: str  # normalised for matching
    seq: int
    envelope_id: str

    def evidence(self, span: tuple[int, int] | None = None) -> Evidence:
        start, end = span if span else (0, 0)
        return Evidence(self.seq, self.envelope_id, excerpt(self.text, start, end))


@dataclass
class _Disclosure:
    turns: list[_Turn] = field(default_factory=list)
    decided: bool = False
    instruction: Evidence | None = None


class SessionPolicy:
    """Judges one session against a policy, envelope by envelope.

    `add()` returns the findings an envelope made decidable; `close()` returns the findings
    only the end of the session decides, and the verdict. Findings are deterministic: the
    same envelopes give the same finding ids, in the same order.
    """

    def __init__(self, policy: Policy, session_id: str) -> None:
        self.policy = policy
        self.session_id = session_id
        self.findings: list[Finding] = []
        self.warnings: list[str] = []
        self.events = 0
        self.tenant: str | None = None
        self.region: str | None = None
        self.upstream_host: str | None = None
        self.model: str | None = None
        self.language: str | None = None  # from the session config; else guessed at close
        self.closed = False
        self._last: Envelope | None = None
        self._config: dict[str, Any] = {}
        self._config_evidence: Evidence | None = None
        self._texts_seen: set[Any] = set()
        self._calls_seen: set[str] = set()
        self._pending_calls: dict[str, tuple[Envelope, str]] = {}
        self._call_names: dict[str, str] = {}
        self._turns: list[_Turn] = []
        self._disclosure = _Disclosure()
        self._question: _Turn | None = None
        self._approved = False
        self._voices_reported: set[str] = set()
        self._residency_reported: set[str] = set()
        self._unknown_types: set[str] = set()
        self._undecided: set[str] = set()

    # -- input ----------------------------------------------------------------------------------

    def add(self, envelope: Envelope) -> list[Finding]:
        """Judge one envelope; the findings it makes decidable, in order."""
        if self.closed:
            raise ValueError(f"session {self.session_id} is closed")
        before = len(self.findings)
        self.events += 1
        self._last = envelope
        self._learn_where(envelope)
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        etype = envelope.type
        if etype == UNPARSED_TYPE:
            reason = payload.get("parse_error", "not an event")
            self._warn(f"seq {envelope.seq}: line not judged ({reason})")
        elif etype.startswith("voxledger.") and etype not in self._approval_types:
            pass  # VoxLedger's own session markers
        elif etype not in CLIENT_EVENT_TYPES and etype not in SERVER_EVENT_TYPES:
            if etype in self._approval_types:
                self._approved = True
            elif etype not in self._unknown_types:
                self._unknown_types.add(etype)
                self._warn(f"unknown event type {etype!r} kept, not judged")
        else:
            self._dispatch(envelope, etype, payload)
        self._check_residency(envelope)
        return self.findings[before:]

    @property
    def _approval_types(self) -> list[str]:
        return self.policy.rules.refund_limit.approval_event_types

    def _learn_where(self, envelope: Envelope) -> None:
        for name in ("tenant", "region", "upstream_host", "model"):
            value = getattr(envelope, name)
            if value and getattr(self, name) is None:
                setattr(self, name, value)

    def _dispatch(self, env: Envelope, etype: str, payload: dict[str, Any]) -> None:
        if etype in _JUDGED and "[Object]" in json.dumps(payload, ensure_ascii=False):
            self._warn(f"seq {env.seq}: {etype} has fields printed as [Object]; not judged")
        if etype in _SESSION_CONFIG:
            self._on_config(env, payload.get("session"))
        elif etype in _ASSISTANT_TEXT:
            text = payload.get(_ASSISTANT_TEXT[etype])
            key = (payload.get("item_id") or f"seq{env.seq}", payload.get("content_index", 0))
            self._text(env, "assistant", text, key)
        elif etype == _USER_TRANSCRIPT:
            key = (payload.get("item_id") or f"seq{env.seq}", payload.get("content_index", 0))
            self._text(env, "user", payload.get("transcript"), key)
        elif etype in _ITEM_EVENTS:
            self._on_item(env, payload.get("item"))
        elif etype == "response.function_call_arguments.done":
            self._on_call_arguments(env, payload)
        elif etype == "response.done":
            self._on_response_done(env, payload.get("response"))
        elif etype == "error":
            self._on_error(env, payload.get("error"))

    # -- session config: voice, tools, tracing, instructions -------------------------------------

    def _on_config(self, env: Envelope, session: Any) -> None:
        if not isinstance(session, dict):
            return
        self._config.update({k: v for k, v in session.items() if v != "[Object]"})
        self._config_evidence = Evidence(
            env.seq, env.envelope_id, excerpt(_config_excerpt(session))
        )
        if isinstance(session.get("model"), str) and env.direction == "server":
            self.model = self.model or session["model"]
        language = _transcription_language(session)
        if language:
            self.language = language
        instructions = session.get("instructions")
        if isinstance(instructions, str) and self._disclosure.instruction is None:
            rule = self.policy.rules.ai_disclosure
            norm = normalise(instructions)
            for pattern in rule.compiled_instructions:
                m = pattern.search(norm)
                if m:
                    self._disclosure.instruction = Evidence(
                        env.seq, env.envelope_id, excerpt(instructions, m.start(), m.end())
                    )
                    break
        self._check_voice(env, session)

    def _check_voice(self, env: Envelope, session: dict[str, Any]) -> None:
        rule = self.policy.rules.custom_voice
        voice = _voice(session)
        if not rule.enabled or voice is None:
            return
        if isinstance(voice, dict):
            name = str(voice.get("id") or voice)
            custom = True
        else:
            name = str(voice)
            custom = name not in rule.preset_voices
        if not custom or name in rule.allowed_custom_voices or name in self._voices_reported:
            return
        self._voices_reported.add(name)
        ev = Evidence(env.seq, env.envelope_id, f"voice: {excerpt(json.dumps(voice))}")
        self._find("custom_voice", rule, f"custom voice {name!r} instead of a preset voice", [ev])

    # -- text turns -----------------------------------------------------------------------------

    def _text(self, env: Envelope, role: Any, text: Any, key: Any) -> None:
        if not isinstance(text, str) or not text.strip() or key in self._texts_seen:
            return
        if role not in ("user", "assistant"):
            return
        self._texts_seen.add(key)
        turn = _Turn(role, text, normalise(text), env.seq, env.envelope_id)
        self._turns.append(turn)
        self._classify(turn)
        if role == "user":
            self._on_user_turn(turn)
        else:
            self._on_assistant_turn(turn)

    def _on_user_turn(self, turn: _Turn) -> None:
        rule = self.policy.rules.no_human_claim
        if rule.enabled and any(p.search(turn.norm) for _, p in rule.compiled_questions):
            self._question = turn

    def _on_assistant_turn(self, turn: _Turn) -> None:
        self._check_disclosure(turn)
        self._check_human_claim(turn)
        self._check_refund_speech(turn)

    def _disclosure_match(self, turn: _Turn) -> tuple[str, regex.Match[str]] | None:
        for lang, pattern in self.policy.disclosure_patterns:
            m = pattern.search(turn.norm)
            if m:
                return lang, m
        return None

    def _check_disclosure(self, turn: _Turn) -> None:
        rule = self.policy.rules.ai_disclosure
        state = self._disclosure
        if not rule.enabled or state.decided:
            return
        state.turns.append(turn)
        found = self._disclosure_match(turn)
        if found:
            state.decided = True
            lang, m = found
            if self.language and lang != self.language:
                self._find(
                    "ai_disclosure",
                    rule,
                    f"AI disclosure in {lang}, but the session's language is {self.language}",
                    [turn.evidence(m.span())],
                    action="needs_review",
                )
            return
        if len(state.turns) >= rule.within_assistant_turns:
            state.decided = True
            self._no_disclosure(rule, state)

    def _no_disclosure(self, rule: Rule, state: _Disclosure) -> None:
        n = len(state.turns)
        evidence = [t.evidence() for t in state.turns]
        self._find(
            "ai_disclosure",
            rule,
            f"no AI disclosure in the first {n} assistant turn{'s' if n != 1 else ''}",
            evidence,
        )

    def _check_human_claim(self, turn: _Turn) -> None:
        rule = self.policy.rules.no_human_claim
        question, self._question = self._question, None
        if not rule.enabled or question is None:
            return
        for _, pattern in self.policy.human_claim_patterns:
            m = pattern.search(turn.norm)
            if m:
                self._find(
                    "no_human_claim",
                    rule,
                    "asked whether it is a human or an AI, the assistant claimed to be human",
                    [question.evidence(), turn.evidence(m.span())],
                )
                return
        if self._disclosure_match(turn) is None:
            self._find(
                "no_human_claim",
                rule,
                "asked whether it is a human or an AI, the assistant did not say it is an AI",
                [question.evidence(), turn.evidence()],
                action="needs_review",
            )

    def _classify(self, turn: _Turn) -> None:
        rule = self.policy.rules.safety_classifier
        if not rule.enabled:
            return
        action = rule.assistant_action if turn.role == "assistant" else rule.user_action
        for name, category in rule.categories.items():
            matches = [m for p in category.compiled if (m := p.search(turn.norm))]
            if len(matches) >= category.threshold:
                span = (matches[0].start(), matches[0].end())
                words = ", ".join(sorted({m.group(0) for m in matches}))
                self._find(
                    f"safety_classifier.{name}",
                    rule,
                    f"{turn.role} text matches {name} ({len(matches)} ≥ {category.threshold}: "
                    f"{words})",
                    [turn.evidence(span)],
                    action=action,
                    severity=category.severity,
                )

    # -- business rules -------------------------------------------------------------------------

    def _check_refund_speech(self, turn: _Turn) -> None:
        rule = self.policy.rules.refund_limit
        if not rule.enabled or self._approved:
            return
        sentences = [s for s in _SENTENCE_END.split(turn.norm) if s]
        for sentence in sentences:
            if not any(p.search(sentence) for p in rule.compiled_refund_words):
                continue
            if not any(p.search(sentence) for p in rule.compiled_promise_words):
                continue
            over = [a for a in find_amounts(sentence) if a.value > rule.limit_for(a.currency)]
            if over:
                amount = over[0]
                start = turn.norm.find(sentence)
                self._find(
                    "refund_limit",
                    rule,
                    f"assistant promised a refund of {amount.text} (limit "
                    f"{rule.limit_for(amount.currency):g} {amount.currency or ''}".rstrip()
                    + ") without escalation or approval",
                    [turn.evidence((start, start + len(sentence)))],
                )
                return

    def _on_item(self, env: Envelope, item: Any) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        item_id = str(item.get("id") or item.get("call_id") or f"seq{env.seq}")
        if kind == "message":
            role = item.get("role")
            for index, part in enumerate(item.get("content") or []):
                if not isinstance(part, dict):
                    continue
                text = part.get("transcript") or part.get("text")
                if item.get("status") in (None, "completed") or env.type.endswith(".create"):
                    self._text(env, role, text, (item_id, index))
        elif kind == "function_call":
            name = item.get("name")
            if isinstance(name, str) and name:
                self._call_names[item_id] = name
                if item.get("call_id"):
                    self._call_names[str(item["call_id"])] = name
                args = item.get("arguments")
                if isinstance(args, str) and args:
                    self._on_call(env, item_id, name, args)
                elif item_id in self._pending_calls:
                    pending_env, pending_args = self._pending_calls.pop(item_id)
                    self._on_call(pending_env, item_id, name, pending_args)
        elif kind == "mcp_call" and env.type in _FINAL_ITEM_EVENTS:
            self._on_mcp_call(env, item_id, item)
        elif kind == "mcp_approval_response" and item.get("approve") is True:
            self._approved = True

    def _on_call_arguments(self, env: Envelope, payload: dict[str, Any]) -> None:
        item_id = str(payload.get("item_id") or payload.get("call_id") or f"seq{env.seq}")
        args = payload.get("arguments")
        if not isinstance(args, str):
            return
        name = (
            payload.get("name")
            or self._call_names.get(item_id)
            or self._call_names.get(str(payload.get("call_id")))
        )
        if name:
            self._on_call(env, item_id, name, args)
        else:  # beta events do not name the function: wait for its item
            self._pending_calls[item_id] = (env, args)

    def _on_call(self, env: Envelope, item_id: str, name: str, arguments: str) -> None:
        if item_id in self._calls_seen:
            return
        self._calls_seen.add(item_id)
        rule = self.policy.rules.refund_limit
        if any(p.search(name) for p in rule.compiled_approval_tools):
            self._approved = True
            return
        if not rule.enabled or self._approved:
            return
        if not any(p.search(name) for p in rule.compiled_refund_tools):
            return
        try:
            args = json.loads(arguments)
        except ValueError:
            self._warn(f"seq {env.seq}: arguments of {name} are not JSON; amount not checked")
            return
        if not isinstance(args, dict):
            return
        amount = next((args[f] for f in rule.amount_fields if f in args), None)
        currency = next(
            (args[f] for f in rule.currency_fields if isinstance(args.get(f), str)), None
        )
        if isinstance(amount, str):
            amounts = find_amounts(amount) or find_amounts(f"{amount} {currency or ''}")
            amount = amounts[0].value if amounts else None
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            return
        limit = rule.limit_for(currency)
        if amount > limit:
            ev = Evidence(env.seq, env.envelope_id, excerpt(f"{name}({arguments})"))
            self._find(
                "refund_limit",
                rule,
                f"{name} called for {amount:g} {currency or ''}".rstrip()
                + f" (limit {limit:g}) without escalation or approval",
                [ev],
            )

    def _on_mcp_call(self, env: Envelope, item_id: str, item: dict[str, Any]) -> None:
        if f"mcp:{item_id}" in self._calls_seen:
            return
        self._calls_seen.add(f"mcp:{item_id}")
        label = item.get("server_label")
        tool = item.get("name")
        rule = self.policy.rules.mcp_sensitive_no_approval
        if isinstance(tool, str) and isinstance(item.get("arguments"), str):
            self._on_call(env, f"mcp-args:{item_id}", tool, item["arguments"])
        if not rule.enabled or not isinstance(label, str):
            return
        server = _mcp_server(self._config.get("tools"), label)
        if server is None:
            self._warn(f"seq {env.seq}: MCP server {label!r} not in the session config seen")
            return
        where = [label, str(server.get("server_url") or "")]
        sensitive = any(
            fnmatch.fnmatch(w.lower(), pat.lower()) for w in where for pat in rule.sensitive_servers
        )
        if sensitive and _approval_never(server.get("require_approval"), tool):
            ev = Evidence(
                env.seq, env.envelope_id, excerpt(f"{label}.{tool}({item.get('arguments', '')})")
            )
            evidence = [self._config_evidence, ev] if self._config_evidence else [ev]
            self._find(
                "mcp_sensitive_no_approval",
                rule,
                f"call to {tool!r} on sensitive MCP server {label!r} with require_approval never",
                evidence,
            )

    # -- safety events --------------------------------------------------------------------------

    def _on_response_done(self, env: Envelope, response: Any) -> None:
        if not isinstance(response, dict):
            return
        for item in response.get("output") or []:
            self._on_item(env, item)
        rule = self.policy.rules.content_filter
        details = response.get("status_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        stopped = response.get("status") in ("cancelled", "incomplete", "failed")
        if rule.enabled and stopped and reason in rule.reasons:
            said = " ".join(_item_texts(response.get("output")))
            text = f"response {response.get('status')} ({reason})" + (f": {said}" if said else "")
            self._find(
                "content_filter",
                rule,
                f"response {response.get('id', '')} {response.get('status')}: {reason}",
                [Evidence(env.seq, env.envelope_id, excerpt(text))],
            )

    def _on_error(self, env: Envelope, error: Any) -> None:
        rule = self.policy.rules.error_event
        if not rule.enabled:
            return
        error = error if isinstance(error, dict) else {}
        code = error.get("code") or error.get("type")
        if code in rule.ignore_codes:
            return
        text = f"{code or 'error'}: {error.get('message') or ''}".strip()
        self._find(
            "error_event",
            rule,
            f"Realtime API error {code or ''}".rstrip(),
            [Evidence(env.seq, env.envelope_id, excerpt(text))],
        )

    # -- residency ------------------------------------------------------------------------------

    def _check_residency(self, env: Envelope) -> None:
        rule = self.policy.rules.eu_residency
        if not rule.enabled or self.region not in rule.regions:
            return
        ev = Evidence(
            env.seq, env.envelope_id, f"region {self.region}, upstream host {self.upstream_host}"
        )
        if (
            self.upstream_host
            and self.upstream_host != rule.required_host
            and "host" not in self._residency_reported
        ):
            self._residency_reported.add("host")
            self._find(
                "eu_residency",
                rule,
                f"{self.region} session sent to {self.upstream_host}, not {rule.required_host}",
                [ev],
                aspect="host",
            )
        model = self.model or self._config.get("model")
        if (
            isinstance(model, str)
            and model not in rule.eligible_models
            and "model" not in self._residency_reported
        ):
            self._residency_reported.add("model")
            self._find(
                "eu_residency",
                rule,
                f"model {model} is not eligible for {self.region} data residency",
                [Evidence(env.seq, env.envelope_id, f"region {self.region}, model {model}")],
                aspect="model",
            )

    # -- close ----------------------------------------------------------------------------------

    def close(self) -> tuple[list[Finding], Verdict]:
        """The findings only the session's end decides, and the verdict."""
        if self.closed:
            raise ValueError(f"session {self.session_id} is closed")
        before = len(self.findings)
        self._close_disclosure()
        self._close_tracing()
        self._close_residency()
        self.closed = True
        if self.language is None:
            words = self.policy.language_words
            self.language = guess_language((t.text for t in self._turns), words)
        return self.findings[before:], self.verdict()

    def _close_disclosure(self) -> None:
        rule = self.policy.rules.ai_disclosure
        state = self._disclosure
        if not rule.enabled or state.decided:
            return
        if state.turns:
            self._no_disclosure(rule, state)
        elif state.instruction is not None:
            self._find(
                "ai_disclosure",
                rule,
                "no assistant transcript or text to judge; only the instructions ask for an "
                "AI disclosure (weak evidence)",
                [state.instruction],
                action="needs_review",
            )
        else:
            self._undecided.add("ai_disclosure")
            self._warn("ai_disclosure: no assistant transcript or text to judge")

    def _close_tracing(self) -> None:
        rule = self.policy.rules.tracing_required
        if not rule.enabled or not rule.required:
            return
        if self._config_evidence is None:
            self._undecided.add("tracing_required")
            self._warn("tracing_required: no session config seen")
        elif not self._config.get("tracing"):
            self._find(
                "tracing_required",
                rule,
                "the tenant requires tracing and the session config has tracing off",
                [self._config_evidence],
            )

    def _close_residency(self) -> None:
        rule = self.policy.rules.eu_residency
        if not rule.enabled:
            return
        if self.region is None:
            self._warn("region not recorded: EU data residency not checked")
        elif self.region in rule.regions and not self.upstream_host and self._last is not None:
            last = self._last
            self._find(
                "eu_residency",
                rule,
                f"{self.region} session without a recorded upstream host",
                [Evidence(last.seq, last.envelope_id, f"region {self.region}, upstream host ?")],
                action="needs_review",
            )

    def verdict(self) -> Verdict:
        fails = sorted({f.rule_id for f in self.findings if f.action == "fail"})
        reviews = sorted({f.rule_id for f in self.findings if f.action == "needs_review"})
        reviews = sorted({*reviews, *self._undecided})
        if fails:
            value: VerdictValue = "fail"
            deciding = fails
        elif reviews:
            value, deciding = "needs_review", reviews
        else:
            value, deciding = "pass", []
        return Verdict(
            session_id=self.session_id,
            verdict=value,
            deciding_rules=tuple(deciding),
            policy_version=self.policy.policy_version,
            findings=len(self.findings),
            events=self.events,
            tenant=self.tenant,
            region=self.region,
            upstream_host=self.upstream_host,
            model=self.model or self._config.get("model"),
            language=self.language,
            warnings=tuple(self.warnings),
        )

    # -- helpers --------------------------------------------------------------------------------

    def _find(
        self,
        rule_id: str,
        rule: Rule,
        message: str,
        evidence: list[Evidence],
        *,
        action: Action | None = None,
        severity: Severity | None = None,
        aspect: str = "",
    ) -> None:
        # `aspect` tells apart two findings of one rule on the same evidence (EU host, model).
        seqs = ",".join(str(e.seq) for e in evidence)
        key = f"{self.session_id}|{rule_id}|{seqs}" + (f"|{aspect}" if aspect else "")
        finding_id = str(uuid.uuid5(FINDING_NAMESPACE, key))
        if any(f.finding_id == finding_id for f in self.findings):
            return
        last = self._last
        observed = format_observed_at(last.observed_at) if last else format_observed_at(_EPOCH)
        self.findings.append(
            Finding(
                finding_id=finding_id,
                session_id=self.session_id,
                rule_id=rule_id,
                policy_version=self.policy.policy_version,
                severity=severity or rule.severity,
                action=action or rule.action,
                message=message,
                evidence=tuple(evidence),
                observed_at=observed,
            )
        )

    def _warn(self, text: str) -> None:
        if len(self.warnings) < 200 and text not in self.warnings:
            self.warnings.append(text)


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _voice(session: dict[str, Any]) -> Any:
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("output"), dict):
        voice = audio["output"].get("voice")
        if voice is not None:
            return voice
    voice = session.get("voice")  # beta
    return None if voice == "[Object]" else voice


def _transcription_language(session: dict[str, Any]) -> str | None:
    audio = session.get("audio")
    config = None
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        config = audio["input"].get("transcription")
    config = config or session.get("input_audio_transcription")
    if isinstance(config, dict) and isinstance(config.get("language"), str):
        return config["language"].split("-")[0].lower() or None
    return None


def _config_excerpt(session: dict[str, Any]) -> str:
    keep = {k: session[k] for k in ("model", "voice", "tools", "tracing") if k in session}
    voice = _voice(session)
    if voice is not None:
        keep["voice"] = voice
    return json.dumps(keep, ensure_ascii=False) if keep else "session config"


def _mcp_server(tools: Any, label: str) -> dict[str, Any] | None:
    if not isinstance(tools, list):
        return None
    for tool in tools:
        if (
            isinstance(tool, dict)
            and tool.get("type") == "mcp"
            and tool.get("server_label") == label
        ):
            return tool
    return None


def _approval_never(setting: Any, tool: Any) -> bool:
    """Whether the MCP require_approval setting lets `tool` run without approval."""
    if setting == "never":
        return True
    if isinstance(setting, dict):
        never = setting.get("never")
        names = never.get("tool_names") if isinstance(never, dict) else None
        return isinstance(names, list) and tool in names
    return False


def _item_texts(output: Any) -> list[str]:
    texts = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, dict):
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    text = part.get("transcript") or part.get("text")
                    if isinstance(text, str) and text.strip():
                        texts.append(text.strip())
    return texts
