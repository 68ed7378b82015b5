"""The policy file's schema, its loader (errors name the line) and tenant override merging."""

from __future__ import annotations

import copy
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from voxledger.processors.policy._grammar import AgentGrammar
from voxledger.processors.policy.exceptions import PolicyError, PolicyFileError

Severity = Literal["low", "medium", "high", "critical"]
Action = Literal["fail", "needs_review"]
LANGUAGES = ("en", "es", "fr", "de", "ja")
Language = Literal["en", "es", "fr", "de", "ja"]
PhraseSet = dict[Language, list[str]]
_FLAGS = regex.IGNORECASE | regex.UNICODE


def _compile(patterns: list[str]) -> list[regex.Pattern[str]]:
    return [regex.compile(p, _FLAGS) for p in patterns]


class _BadPattern(ValueError):
    def __init__(self, pattern: str, problem: str) -> None:
        super().__init__(f"bad regular expression {pattern!r}: {problem}")
        self.pattern = pattern


def _check_patterns(value: Any) -> Any:
    """Every string in a list (or a dict of lists) must compile as a regular expression."""
    lists = value.values() if isinstance(value, dict) else [value]
    for patterns in lists:
        for pattern in patterns or []:
            try:
                regex.compile(pattern, _FLAGS)
            except regex.error as exc:
                raise _BadPattern(pattern, str(exc)) from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """What every rule has: whether it runs, how bad a finding is, and what it decides."""

    enabled: bool = True
    severity: Severity = "medium"
    action: Action = "fail"
    description: str = ""

    def parameters(self) -> dict[str, Any]:
        """The rule's own parameters (everything but the common fields), for `explain`."""
        common = set(Rule.model_fields)
        return {k: v for k, v in self.model_dump().items() if k not in common}


class AiDisclosureRule(Rule):
    within_assistant_turns: int = Field(1, ge=1)
    phrases: PhraseSet = {}
    instruction_phrases: PhraseSet = {}

    _check = field_validator("phrases", "instruction_phrases")(_check_patterns)

    @cached_property
    def compiled(self) -> list[tuple[str, regex.Pattern[str]]]:
        return [(lang, p) for lang, ps in self.phrases.items() for p in _compile(ps)]

    @cached_property
    def compiled_instructions(self) -> list[regex.Pattern[str]]:
        return [p for ps in self.instruction_phrases.values() for p in _compile(ps)]


class NoHumanClaimRule(Rule):
    severity: Severity = "critical"
    questions: PhraseSet
    human_claims: PhraseSet = {}

    _check = field_validator("questions", "human_claims")(_check_patterns)

    @cached_property
    def compiled_questions(self) -> list[tuple[str, regex.Pattern[str]]]:
        return [(lang, p) for lang, ps in self.questions.items() for p in _compile(ps)]

    @cached_property
    def compiled_claims(self) -> list[tuple[str, regex.Pattern[str]]]:
        return [(lang, p) for lang, ps in self.human_claims.items() for p in _compile(ps)]


class ContentFilterRule(Rule):
    reasons: list[str] = ["content_filter"]


class ErrorEventRule(Rule):
    action: Action = "needs_review"
    ignore_codes: list[str] = []


class SafetyCategory(_Strict):
    severity: Severity = "high"
    threshold: float = Field(1, gt=0)
    patterns: PhraseSet

    _check = field_validator("patterns")(_check_patterns)

    @cached_property
    def compiled(self) -> list[regex.Pattern[str]]:
        return [p for ps in self.patterns.values() for p in _compile(ps)]


class SafetyClassifierRule(Rule):
    assistant_action: Action = "fail"
    user_action: Action = "needs_review"
    categories: dict[str, SafetyCategory]


class RefundLimitRule(Rule):
    limit: float = Field(50, ge=0)
    limit_currency: str = "USD"
    currency_limits: dict[str, float] = {}
    refund_words: PhraseSet
    promise_words: PhraseSet
    refund_tools: list[str] = []
    amount_fields: list[str] = ["amount"]
    currency_fields: list[str] = ["currency"]
    approval_tools: list[str] = []
    approval_event_types: list[str] = []

    _check = field_validator("refund_words", "promise_words", "refund_tools", "approval_tools")(
        _check_patterns
    )

    def limit_for(self, currency: str | None) -> float:
        """The limit for an amount in `currency`; `limit` when it has none or is limit_currency."""
        code = (currency or "").upper()
        if not code or code == self.limit_currency.upper():
            return self.limit
        return self.currency_limits.get(code, self.limit)

    @cached_property
    def compiled_refund_words(self) -> list[regex.Pattern[str]]:
        return [p for ps in self.refund_words.values() for p in _compile(ps)]

    @cached_property
    def compiled_promise_words(self) -> list[regex.Pattern[str]]:
        return [p for ps in self.promise_words.values() for p in _compile(ps)]

    @cached_property
    def compiled_refund_tools(self) -> list[regex.Pattern[str]]:
        return _compile(self.refund_tools)

    @cached_property
    def compiled_approval_tools(self) -> list[regex.Pattern[str]]:
        return _compile(self.approval_tools)


class McpSensitiveRule(Rule):
    sensitive_servers: list[str] = []


class CustomVoiceRule(Rule):
    preset_voices: list[str]
    allowed_custom_voices: list[str] = []


class TracingRequiredRule(Rule):
    required: bool = False


class EuResidencyRule(Rule):
    severity: Severity = "critical"
    regions: list[str] = ["eu"]
    required_host: str = "eu.api.openai.com"
    eligible_models: list[str]


class Rules(_Strict):
    ai_disclosure: AiDisclosureRule
    no_human_claim: NoHumanClaimRule
    content_filter: ContentFilterRule
    error_event: ErrorEventRule
    safety_classifier: SafetyClassifierRule
    refund_limit: RefundLimitRule
    mcp_sensitive_no_approval: McpSensitiveRule
    custom_voice: CustomVoiceRule
    tracing_required: TracingRequiredRule
    eu_residency: EuResidencyRule


class Policy(_Strict):
    """A validated policy: its version and every rule with its parameters."""

    policy_version: str = Field(min_length=1)
    language_words: dict[Literal["en", "es", "fr", "de"], list[str]] = {}
    agent_grammar: dict[Language, AgentGrammar] = {}
    rules: Rules
    source: str = "default"  # where it came from (file paths), for reports

    def rule(self, rule_id: str) -> Rule:
        """A rule by id; `safety_classifier.<category>` names the classifier."""
        base = rule_id.split(".", 1)[0]
        if base not in Rules.model_fields:
            known = ", ".join(Rules.model_fields)
            raise PolicyError(f"no rule {rule_id!r} in the policy; rules: {known}")
        return getattr(self.rules, base)

    @property
    def rule_ids(self) -> list[str]:
        return list(Rules.model_fields)

    @cached_property
    def disclosure_patterns(self) -> list[tuple[str, regex.Pattern[str]]]:
        """(language, pattern) of every way to disclose: the grammar's, then the rule's own."""
        built = [(lang, p) for lang, g in self.agent_grammar.items() for p in g.disclosures()]
        return built + self.rules.ai_disclosure.compiled

    @cached_property
    def human_claim_patterns(self) -> list[tuple[str, regex.Pattern[str]]]:
        """(language, pattern) of every way to claim to be human."""
        built = [(lang, p) for lang, g in self.agent_grammar.items() for p in g.human_claims()]
        return built + self.rules.no_human_claim.compiled_claims


DEFAULT_POLICY_FILE = "default.yaml"


def _default_text() -> str:
    return resources.files(__package__).joinpath(DEFAULT_POLICY_FILE).read_text(encoding="utf-8")


def load_policy(path: str | Path | None = None, override: str | Path | None = None) -> Policy:
    """The default policy, or the policy file at `path`, with a tenant override merged over it.

    A file at `path` that has `extends: default` is itself an override of the default.

    Tenant override format (YAML): the same shape as the policy file, with only what changes.
    Mappings merge key by key into the base; lists and scalars replace the base's value::

        extends: default                       # optional in --override; required in --policy
        tenant: acme-eu                        # for reports
        policy_version: "2026.11.0+acme-eu.1"  # default: "<base version>+<tenant>"
        rules:
          refund_limit:
            limit: 100
            currency_limits: {EUR: 90}     # merges: GBP, JPY... keep the default's
          tracing_required:
            required: true
          ai_disclosure:
            within_assistant_turns: 2
          safety_classifier:
            categories:
              violence: {threshold: 3}
          content_filter:
            enabled: false

    The merged result is validated like the default: an unknown rule or parameter, or a bad
    value, is an error naming the file and line.
    """
    if path is None:
        base_data, source = _parse(_default_text(), "default.yaml (built in)"), "default"
    else:
        data = _parse(_read(path), str(path))
        if isinstance(data.value, dict) and data.value.get("extends") is not None:
            base = _parse(_default_text(), "default.yaml (built in)")
            base_data = _merge_docs(base, data, str(path))
        else:
            base_data = data
        source = str(path)
    if override is not None:
        over = _parse(_read(override), str(override))
        base_data = _merge_docs(base_data, over, str(override))
        source = f"{source} + {override}"
    return _validate(base_data, source)


class _Doc:
    """A parsed YAML document with where each value came from (file, node marks)."""

    def __init__(self, value: Any, node: yaml.Node | None, name: str) -> None:
        self.value = value
        self.node = node
        self.name = name
        self.origins: dict[tuple[Any, ...], tuple[str, yaml.Node]] = {}
        if node is not None:
            _index(node, (), name, self.origins)


def _index(
    node: yaml.Node,
    path: tuple[Any, ...],
    name: str,
    out: dict[tuple[Any, ...], tuple[str, yaml.Node]],
) -> None:
    out.setdefault(path, (name, node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = (name, key)  # a key's line reads better than its value's
            _index(value, (*path, key.value), name, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _index(value, (*path, i), name, out)


def _read(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(f"policy file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"cannot read policy file {p}: {exc}") from None


def _parse(text: str, name: str) -> _Doc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}, line {mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyFileError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(value, dict):
        raise PolicyFileError(f"{name}, line 1: a policy file is a YAML mapping")
    return _Doc(value, node, name)


def _merge_docs(base: _Doc, over: _Doc, name: str) -> _Doc:
    merged = _Doc(copy.deepcopy(base.value), None, base.name)
    merged.origins = dict(base.origins)
    body = {k: v for k, v in over.value.items() if k not in ("extends", "tenant")}
    tenant = over.value.get("tenant")
    if "policy_version" not in body:
        suffix = tenant or Path(name).stem
        body["policy_version"] = f"{base.value.get('policy_version')}+{suffix}"
    _deep_merge(merged.value, body)
    merged.origins.update(over.origins)  # the override's lines explain its own values
    return merged


def _deep_merge(into: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _validate(doc: _Doc, source: str) -> Policy:
    data = {k: v for k, v in doc.value.items() if k not in ("extends", "tenant")}
    try:
        return Policy.model_validate({**data, "source": source})
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _BadPattern):  # point at the pattern itself, not its list
            loc = next(
                (
                    path
                    for path, (_, node) in doc.origins.items()
                    if path[: len(loc)] == loc
                    and isinstance(node, yaml.ScalarNode)
                    and node.value == cause.pattern
                ),
                loc,
            )
        where = _where(doc, loc)
        dotted = ".".join(str(p) for p in loc) or "policy"
        msg = err["msg"].removeprefix("Value error, ")
        raise PolicyFileError(f"{where}: {dotted}: {msg}") from None


def _where(doc: _Doc, loc: tuple[Any, ...]) -> str:
    # The deepest part of the path that exists in a file (a missing key: its parent's line).
    for end in range(len(loc), -1, -1):
        found = doc.origins.get(loc[:end])
        if found is not None:
            name, node = found
            return f"{name}, line {node.start_mark.line + 1}"
    return doc.name
