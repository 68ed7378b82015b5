"""Scripted calls: the YAML scenario schema, its validation, and the shipped scenario library."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from voxledger.ingest.simulator.exceptions import ScenarioError

USER_MS_PER_CHAR = 60
ASSISTANT_MS_PER_CHAR = 65
BETA_MODEL = re.compile(r"gpt-4o(-mini)?-realtime-preview.*")

Language = Literal["en", "es", "fr", "de", "ja"]


def is_beta_model(model: str) -> bool:
    """Preview models speak the beta event names (`response.audio.delta`, ...)."""
    return BETA_MODEL.fullmatch(model) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserTurn(_Strict):
    """Something the caller says (streamed as audio) or types (`mode: text`)."""

    text: str = Field(min_length=1)
    audio_ms: int | None = Field(default=None, gt=0)
    mode: Literal["audio", "text"] = "audio"

    def speech_ms(self) -> int:
        return self.audio_ms or max(400, USER_MS_PER_CHAR * len(self.text))


class FunctionCall(_Strict):
    """A function the assistant calls; `output` is what the client (the app) returns."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | str = Field(default_factory=lambda: {"status": "ok"})

    def arguments_json(self) -> str:
        return json.dumps(self.arguments)

    def output_json(self) -> str:
        return self.output if isinstance(self.output, str) else json.dumps(self.output)


class McpCall(_Strict):
    """A tool on a remote MCP server that the Realtime server itself calls."""

    server_label: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    outcome: Literal["completed", "failed"] = "completed"
    output: str | None = None
    error: str | None = None

    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


class AssistantTurn(_Strict):
    """One model response: speech, a function call, an MCP call, or speech plus a call."""

    transcript: str | None = Field(default=None, min_length=1)
    audio_ms: int | None = Field(default=None, gt=0)
    function_call: FunctionCall | None = None
    mcp_call: McpCall | None = None
    content_filter: bool = False
    barge_in_after_ms: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _says_something(self) -> AssistantTurn:
        if not (self.transcript or self.function_call or self.mcp_call):
            raise ValueError("an assistant turn needs a transcript, a function_call or an mcp_call")
        needs_speech = {
            "audio_ms": self.audio_ms,
            "content_filter": self.content_filter,
            "barge_in_after_ms": self.barge_in_after_ms,
        }
        for flag, value in needs_speech.items():
            if value and not self.transcript:
                raise ValueError(f"{flag} only applies to a turn with a transcript")
        if self.barge_in_after_ms and self.barge_in_after_ms >= self.speech_ms():
            raise ValueError("barge_in_after_ms must fall inside the spoken reply")
        return self

    def speech_ms(self) -> int:
        if not self.transcript:
            return 0
        return self.audio_ms or max(500, ASSISTANT_MS_PER_CHAR * len(self.transcript))


class Turn(_Strict):
    """One entry of the script: exactly one of `user` or `assistant` (a bare string is the text)."""

    user: UserTurn | None = None
    assistant: AssistantTurn | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("user"), str):
                data["user"] = {"text": data["user"]}
            if isinstance(data.get("assistant"), str):
                data["assistant"] = {"transcript": data["assistant"]}
        return data

    @model_validator(mode="after")
    def _one_side(self) -> Turn:
        if (self.user is None) == (self.assistant is None):
            raise ValueError("each turn has exactly one of 'user' or 'assistant'")
        return self


class FunctionTool(_Strict):
    type: Literal["function"]
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class McpTool(BaseModel):
    """An MCP server as configured in `session.tools` (extra SDK fields pass through)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["mcp"]
    server_label: str
    server_url: str | None = None
    connector_id: str | None = None
    require_approval: Literal["never"] = Field(
        default="never", description="approval round trips are not simulated"
    )
    authorization: str | None = None
    allowed_tools: list[str] | None = None
    headers: dict[str, str] | None = None
    server_description: str | None = None


Tool = Annotated[FunctionTool | McpTool, Field(discriminator="type")]


class TokenLimits(_Strict):
    post_instructions: int = Field(gt=0)


class RetentionRatio(_Strict):
    type: Literal["retention_ratio"]
    retention_ratio: float = Field(ge=0, le=1)
    token_limits: TokenLimits | None = None


Verdict = Literal["pass", "fail", "needs_review"]


class Outcome(_Strict):
    """What the default policy decides about a call: its verdict and the rule of each finding."""

    verdict: Verdict
    findings: list[str] = Field(default_factory=list)  # rule ids, sorted, repeats kept

    @model_validator(mode="after")
    def _sorted(self) -> Outcome:
        if self.findings != sorted(self.findings):
            raise ValueError("list findings sorted, so a mismatch reads at a glance")
        return self


class Expectation(Outcome):
    """The outcome the script is written to produce; `in_eu` when an EU tenant places the call
    through a non-EU host (residency is a property of the tenant, not of the script)."""

    in_eu: Outcome | None = None

    def for_region(self, region: str | None) -> Outcome:
        if region == "eu" and self.in_eu is not None:
            return self.in_eu
        return Outcome(verdict=self.verdict, findings=self.findings)


class Scenario(_Strict):
    """A whole scripted call: session settings plus the turns both sides play, in order."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    language: Language
    model: str = "gpt-realtime"
    instructions: str
    voice: str = "alloy"
    output_modalities: list[Literal["audio", "text"]] = Field(default_factory=lambda: ["audio"])
    transcription_model: str | None = "gpt-4o-transcribe"
    turn_detection: Literal["server_vad", "semantic_vad", "none"] = "server_vad"
    silence_duration_ms: int = Field(default=500, ge=100, le=5000)
    tools: list[Tool] = Field(default_factory=list)
    truncation: Literal["auto", "disabled"] | RetentionRatio = "auto"
    context_window: int | None = Field(default=None, ge=2000)
    labels: dict[str, str] = Field(default_factory=dict)
    turns: list[Turn] = Field(min_length=1)
    expect: Expectation | None = None  # shipped scenarios all declare it

    @model_validator(mode="before")
    @classmethod
    def _drop_anchor_holders(cls, data: Any) -> Any:
        """Top-level `x-...` keys only hold YAML anchors for repeated text, not settings."""
        if isinstance(data, dict):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        self._check_calls_match_tools()
        self._check_users_wait_for_replies()
        self._check_barge_ins_are_followed_by_speech()
        if is_beta_model(self.model) and any(t.type == "mcp" for t in self.tools):
            raise ValueError("MCP tools need a GA model; beta preview models have no MCP support")
        return self

    def _check_calls_match_tools(self) -> None:
        functions = {t.name for t in self.tools if isinstance(t, FunctionTool)}
        servers = {t.server_label for t in self.tools if isinstance(t, McpTool)}
        for index, turn in enumerate(self.turns):
            reply = turn.assistant
            if reply and reply.function_call and reply.function_call.name not in functions:
                raise ValueError(
                    f"turns.{index}: function '{reply.function_call.name}' is not in tools"
                )
            if reply and reply.mcp_call and reply.mcp_call.server_label not in servers:
                raise ValueError(
                    f"turns.{index}: MCP server '{reply.mcp_call.server_label}' is not in tools"
                )

    def _check_users_wait_for_replies(self) -> None:
        # With server VAD every user turn triggers a reply, so two in a row would desync the script.
        for index, (turn, following) in enumerate(zip(self.turns, self.turns[1:], strict=False)):
            if turn.user and following.user:
                raise ValueError(
                    f"turns.{index + 1}: two user turns in a row; put the assistant reply between"
                )

    def _check_barge_ins_are_followed_by_speech(self) -> None:
        for index, turn in enumerate(self.turns):
            if turn.assistant and turn.assistant.barge_in_after_ms:
                following = self.turns[index + 1] if index + 1 < len(self.turns) else None
                if not (following and following.user and following.user.mode == "audio"):
                    raise ValueError(
                        f"turns.{index}: a barge-in must be followed by a spoken user turn"
                    )

    def variant(self, name: str, **changes: Any) -> Scenario:
        """A validated copy under a new name, e.g. with a tiny context window for a test."""
        return type(self).model_validate({**self.model_dump(), "name": name, **changes})

    @property
    def is_beta(self) -> bool:
        return is_beta_model(self.model)

    def assistant_turns(self) -> list[AssistantTurn]:
        return [t.assistant for t in self.turns if t.assistant]

    def spoken_user_turns(self) -> list[UserTurn]:
        return [t.user for t in self.turns if t.user and t.user.mode == "audio"]

    def tools_json(self) -> list[dict[str, Any]]:
        return [tool.model_dump(exclude_none=True) for tool in self.tools]


def _scenario_dir() -> Traversable:
    return resources.files("voxledger.ingest").joinpath("scenarios")


def scenario_names() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _scenario_dir().iterdir()
        if entry.name.endswith(".yaml")
    )


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML; errors name the file and the field path."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'scenario'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(f"{source}: invalid scenario: {problems}") from None


def _read(source: Traversable | Path, label: str) -> Scenario:
    try:
        data = yaml.safe_load(source.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{label}: not valid YAML: {exc}") from None
    return parse_scenario(data, label)


@cache
def _load_shipped(name: str) -> Scenario:
    entry = _scenario_dir().joinpath(f"{name}.yaml")
    if not entry.is_file():
        known = ", ".join(scenario_names())
        raise ScenarioError(f"unknown scenario '{name}'; shipped scenarios: {known}")
    scenario = _read(entry, f"{name}.yaml")
    if scenario.name != name:
        raise ScenarioError(f"{name}.yaml: its name is '{scenario.name}', expected '{name}'")
    return scenario


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or any scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ScenarioError(f"{path}: no such scenario file")
        return _read(path, str(path))
    return _load_shipped(str(name_or_path))


def load_all_scenarios() -> list[Scenario]:
    return [load_scenario(name) for name in scenario_names()]
