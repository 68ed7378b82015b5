"""Per-model context windows, read from the versioned `model_limits.yaml` beside this module."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class ContextLimits:
    """How many tokens a model reads and writes per response."""

    context_window: int
    max_output_tokens: int
    input_token_limit: int

    def with_window(self, context_window: int) -> ContextLimits:
        """An artificial smaller window (scenarios use it to overflow quickly)."""
        reserve = min(self.max_output_tokens, context_window // 4)
        return ContextLimits(context_window, self.max_output_tokens, context_window - reserve)


def _limits(entry: dict[str, Any]) -> ContextLimits:
    window, output = int(entry["context_window"]), int(entry["max_output_tokens"])
    return ContextLimits(window, output, int(entry.get("input_token_limit", window - output)))


@cache
def _table() -> tuple[ContextLimits, dict[str, ContextLimits]]:
    text = resources.files(__package__).joinpath("model_limits.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return _limits(data["default"]), {name: _limits(e) for name, e in data["models"].items()}


def context_limits(model: str) -> ContextLimits:
    """Limits of the longest model-family prefix matching `model` (dated snapshots included)."""
    default, families = _table()
    matches = [name for name in families if re.fullmatch(re.escape(name) + r"([-.].*)?", model)]
    return families[max(matches, key=len)] if matches else default
