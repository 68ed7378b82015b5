"""Secrets never leave the proxy: what in a Realtime event or URL is a credential, and its mask."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

SECRET = "[secret]"

# Query parameters and header names that carry credentials (lower case).
SECRET_QUERY_PARAMS = {
    "api_key",
    "api-key",
    "key",
    "token",
    "access_token",
    "authorization",
    "client_secret",
    "ephemeral_key",
}
SECRET_HEADERS = {
    "authorization",
    "api-key",
    "x-api-key",
    "openai-api-key",
    "proxy-authorization",
    "cookie",
    "sec-websocket-protocol",
}


def scrub_query(query: str) -> str:
    """A query string with credential values replaced by [secret]."""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, SECRET if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in pairs])


def scrub_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: SECRET if k.lower() in SECRET_HEADERS else v for k, v in headers.items()}


def scrub_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Realtime event with MCP tool credentials masked (session.* events)."""
    session = event.get("session")
    if not isinstance(session, dict) or not isinstance(session.get("tools"), list):
        return event
    tools = [_scrub_tool(tool) for tool in session["tools"]]
    return {**event, "session": {**session, "tools": tools}}


def _scrub_tool(tool: Any) -> Any:
    if not isinstance(tool, dict):
        return tool
    out = dict(tool)
    if "authorization" in out and out["authorization"] is not None:
        out["authorization"] = SECRET
    if isinstance(out.get("headers"), dict):
        out["headers"] = {
            k: SECRET for k in out["headers"]
        }  # MCP headers are credentials in practice
    return out
