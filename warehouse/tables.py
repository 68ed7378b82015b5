"""The warehouse's public views: name, description, SQL and documented columns, in one place.

Every public view is defined here once; `voxledger.warehouse.db` creates them in DuckDB and
`render_dictionary()` turns the same definitions into docs/data-dictionary.md, so the SQL and
its documentation cannot drift apart (a test compares both with what DuckDB reports).

The views read the base relations `_base_<table>` that `db.py` builds over the sink's Parquet
(one row per Kafka record). They aggregate in SQL only, reading the Realtime event payloads
with DuckDB's JSON functions (each payload parsed once per view, into the fields it needs);
GA and beta event names are both accepted. Records a replay delivered twice (same id) are
counted once. `voxledger.warehouse.marts` computes the views the dashboard reads into tables,
in CREATION_ORDER, each view reading the ones before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["HELPERS", "VIEWS", "Column", "View", "render_dictionary", "view_named"]


@dataclass(frozen=True)
class Column:
    """One documented column: its name, DuckDB type and meaning."""

    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class View:
    """One public view: what it holds, how it is computed, and its columns."""

    name: str
    description: str
    sql: str
    columns: tuple[Column, ...]


# -- event type families (GA and beta names) --------------------------------------------------


def _in(*types: str) -> str:
    return "(" + ", ".join(f"'{t}'" for t in types) + ")"


AUDIO_DELTAS = _in("response.output_audio.delta", "response.audio.delta")
TEXT_DELTAS = _in(
    "response.output_text.delta",
    "response.text.delta",
    "response.output_audio_transcript.delta",
    "response.audio_transcript.delta",
)
ASSISTANT_DELTAS = _in(
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_text.delta",
    "response.text.delta",
    "response.output_audio_transcript.delta",
    "response.audio_transcript.delta",
)
ASSISTANT_DONE = _in(
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "response.output_text.done",
    "response.text.done",
)
ITEM_EVENTS = _in(
    "conversation.item.created",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.retrieved",
    "response.output_item.added",
    "response.output_item.done",
)
TRUNCATIONS = _in("conversation.item.truncate", "conversation.item.truncated")
EU_HOST = "eu.api.openai.com"


def _ms(start: str, end: str) -> str:
    """Milliseconds from `start` to `end` (two timestamps), as DOUBLE."""
    return f"date_diff('microsecond', {start}, {end}) / 1000.0"


def _j(path: str, source: str = "payload") -> str:
    return f"json_extract_string({source}, '{path}')"


def _parsed(*paths: str, source: str = "payload") -> str:
    """`source` parsed once into a struct of the fields `paths` name ("item.id" → p.item.id).

    Each field is VARCHAR exactly as json_extract_string gives it (objects as JSON text,
    NULL when absent); one parse per row instead of one per field read.
    """
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = "VARCHAR"
    return f"json_transform({source}, '{json.dumps(tree, separators=(',', ':'))}')"


# -- internal helper views (not documented: not part of the public contract) -----------------

_SESSION_CONTEXT = """
SELECT
    session_id,
    arg_min(tenant, seq) FILTER (WHERE tenant IS NOT NULL) AS tenant,
    arg_min(app, seq) FILTER (WHERE app IS NOT NULL) AS app,
    arg_min(region, seq) FILTER (WHERE region IS NOT NULL) AS region,
    arg_min(upstream_host, seq) FILTER (WHERE upstream_host IS NOT NULL) AS upstream_host,
    arg_min(model, seq) FILTER (WHERE model IS NOT NULL) AS model,
    min(observed_at) AS started_at,
    max(observed_at) AS ended_at,
    count(*) AS events,
    bool_or(type = 'voxledger.session.closed') AS closed
FROM events
GROUP BY session_id
"""

# The last response.done of each response, its payload fields parsed (responses and errors).
_RESPONSE_DONE_FIELDS = _parsed(
    "response.id",
    "response.status",
    "response.status_details.reason",
    "response.status_details.error.code",
    "response.status_details.error.message",
    "response.usage.input_tokens",
    "response.usage.output_tokens",
    "response.usage.input_token_details.cached_tokens",
    "response.usage.total_tokens",
)
_RESPONSE_DONE = f"""
WITH done AS (
    SELECT session_id, observed_at, seq, {_RESPONSE_DONE_FIELDS} AS p
    FROM events WHERE type = 'response.done'
)
SELECT session_id, p.response.id AS response_id, observed_at AS done_at, seq,
       p.response.status AS status, p.response.status_details.reason AS status_reason,
       p.response.status_details.error.code AS error_code,
       p.response.status_details.error.message AS error_message,
       TRY_CAST(p.response.usage.input_tokens AS BIGINT) AS input_tokens,
       TRY_CAST(p.response.usage.output_tokens AS BIGINT) AS output_tokens,
       TRY_CAST(p.response.usage.input_token_details.cached_tokens AS BIGINT) AS cached_tokens,
       TRY_CAST(p.response.usage.total_tokens AS BIGINT) AS total_tokens
FROM done
QUALIFY row_number() OVER (PARTITION BY session_id, p.response.id ORDER BY seq DESC) = 1
"""

HELPERS: tuple[tuple[str, str], ...] = (
    ("_session_context", _SESSION_CONTEXT),
    ("_response_done", _RESPONSE_DONE),
)

# -- public views -----------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "envelope_id, session_id, seq, direction, type, observed_at, tenant, app, region, "
    "upstream_host, model, source, payload, extra, kafka_topic, kafka_partition, kafka_offset, "
    "date"
)

# A replayed envelope (same id at a later offset) is kept once: its first copy. Replays are
# rare, so the keys seen more than once are found by an 8-byte hash of (session, envelope)
# first, and only their rows are compared exactly; every other row is its own first copy (a
# key with a NULL part never joins its first copy, so it is left out, as a join would).
# Filters on type or session reach both scans.
_EVENTS = f"""
WITH repeated AS (
    SELECT hash(session_id, envelope_id) AS key FROM _base_events
    GROUP BY key HAVING count(*) > 1
),
copies AS (
    SELECT * FROM _base_events WHERE hash(session_id, envelope_id) IN (SELECT key FROM repeated)
),
firsts AS (
    SELECT session_id, envelope_id, min(kafka_offset) AS kafka_offset,
           arg_min(kafka_partition, kafka_offset) AS kafka_partition
    FROM copies GROUP BY session_id, envelope_id
)
SELECT {_EVENT_COLUMNS}
FROM _base_events
WHERE hash(session_id, envelope_id) NOT IN (SELECT key FROM repeated)
  AND session_id IS NOT NULL AND envelope_id IS NOT NULL
  AND kafka_partition IS NOT NULL AND kafka_offset IS NOT NULL
UNION ALL
SELECT {", ".join(f"c.{c}" for c in _EVENT_COLUMNS.split(", "))}
FROM copies c
JOIN firsts f USING (session_id, envelope_id, kafka_partition, kafka_offset)
"""

# Each event's payload is parsed once (`p`); a user message item's text list is read on those
# items only.
_TURN_FIELDS = _parsed(
    "item_id",
    "content_index",
    "response_id",
    "transcript",
    "text",
    "audio_start_ms",
    "audio_end_ms",
    "delta.duration_ms",
    "item.id",
    "item.type",
    "item.role",
)
_TURNS = f"""
WITH parsed AS (
    SELECT session_id, seq, observed_at, type, direction, payload, {_TURN_FIELDS} AS p
    FROM events
    WHERE type IN ('conversation.item.input_audio_transcription.completed',
                   'input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped',
                   'input_audio_buffer.committed', 'conversation.item.create')
       OR type IN {ASSISTANT_DELTAS} OR type IN {ASSISTANT_DONE} OR type IN {ITEM_EVENTS}
),
ev AS (
    SELECT session_id, seq, observed_at, type, direction, p,
           CASE WHEN p.item.type = 'message' AND p.item.role = 'user'
                THEN {_j("$.item.content[*].text")} END AS texts
    FROM parsed
),
speech AS (
    SELECT session_id, p.item_id AS item_id,
           min(observed_at) FILTER (WHERE type = 'input_audio_buffer.speech_started') AS started_at,
           max(observed_at) FILTER (WHERE type = 'input_audio_buffer.speech_stopped') AS stopped_at,
           min(TRY_CAST(p.audio_start_ms AS DOUBLE)) AS start_ms,
           max(TRY_CAST(p.audio_end_ms AS DOUBLE)) AS end_ms
    FROM ev
    WHERE type IN ('input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped')
    GROUP BY ALL
),
item_first AS (
    SELECT session_id, coalesce(p.item.id, p.item_id) AS item_id, min(seq) AS first_seq
    FROM ev
    WHERE direction = 'server'
      AND (type IN {ITEM_EVENTS} OR type LIKE 'input_audio_buffer.%' OR type IN {ASSISTANT_DELTAS})
    GROUP BY ALL
),
user_audio AS (
    SELECT t.session_id, 'user' AS role, t.p.item_id AS item_id,
           CAST(NULL AS VARCHAR) AS response_id, t.p.transcript AS text,
           coalesce(s.started_at, t.observed_at) AS started_at,
           coalesce(s.stopped_at, t.observed_at) AS ended_at,
           s.end_ms - s.start_ms AS audio_ms, t.seq
    FROM ev t
    LEFT JOIN speech s ON s.session_id = t.session_id AND s.item_id = t.p.item_id
    WHERE t.type = 'conversation.item.input_audio_transcription.completed'
    QUALIFY row_number() OVER (
        PARTITION BY t.session_id, t.p.item_id, t.p.content_index ORDER BY t.seq) = 1
),
messages AS (
    SELECT session_id, direction, type, observed_at, seq, p.item.id AS item_id,
           array_to_string(texts, ' ') AS text, len(texts) AS parts
    FROM ev
    WHERE (type IN {ITEM_EVENTS} OR type = 'conversation.item.create')
      AND p.item.type = 'message' AND p.item.role = 'user'
),
server_text AS (
    SELECT session_id, 'user' AS role, item_id, CAST(NULL AS VARCHAR) AS response_id, text,
           observed_at AS started_at, observed_at AS ended_at,
           CAST(NULL AS DOUBLE) AS audio_ms, seq
    FROM messages
    WHERE direction = 'server' AND type IN {ITEM_EVENTS} AND parts > 0
    QUALIFY row_number() OVER (PARTITION BY session_id, item_id ORDER BY seq) = 1
),
-- A user text item only the client's side recorded (no server echo of the same text).
client_text AS (
    SELECT c.session_id, 'user' AS role, c.item_id, CAST(NULL AS VARCHAR) AS response_id,
           c.text, c.observed_at AS started_at, c.observed_at AS ended_at,
           CAST(NULL AS DOUBLE) AS audio_ms, c.seq
    FROM messages c
    WHERE c.direction = 'client' AND c.type = 'conversation.item.create' AND c.parts > 0
      AND NOT EXISTS (
          SELECT 1 FROM server_text s WHERE s.session_id = c.session_id AND s.text = c.text)
),
deltas AS (
    SELECT session_id, p.item_id AS item_id, min(observed_at) AS first_at,
           sum(TRY_CAST(p.delta.duration_ms AS DOUBLE))
               FILTER (WHERE type IN {AUDIO_DELTAS}) AS audio_ms
    FROM ev WHERE type IN {ASSISTANT_DELTAS}
    GROUP BY ALL
),
assistant AS (
    SELECT d.session_id, 'assistant' AS role, d.p.item_id AS item_id,
           d.p.response_id AS response_id, coalesce(d.p.transcript, d.p.text) AS text,
           coalesce(x.first_at, d.observed_at) AS started_at, d.observed_at AS ended_at,
           x.audio_ms, d.seq
    FROM ev d
    LEFT JOIN deltas x ON x.session_id = d.session_id AND x.item_id = d.p.item_id
    WHERE d.type IN {ASSISTANT_DONE}
),
turns AS (
    SELECT * FROM user_audio UNION ALL BY NAME SELECT * FROM server_text
    UNION ALL BY NAME SELECT * FROM client_text UNION ALL BY NAME SELECT * FROM assistant
)
SELECT t.session_id,
       CAST(row_number() OVER (
           PARTITION BY t.session_id ORDER BY coalesce(f.first_seq, t.seq), t.seq) AS BIGINT)
           AS turn_index,
       t.role, t.item_id, t.response_id, t.text, t.started_at, t.ended_at,
       CAST(t.audio_ms AS DOUBLE) AS audio_ms, t.seq
FROM turns t
LEFT JOIN item_first f ON f.session_id = t.session_id AND f.item_id = t.item_id
"""

# Every server event is read (and parsed once): any of them may tie a truncated item to its
# response.
_LATENCY_FIELDS = _parsed(
    "response.id", "response.status_details.reason", "response_id", "item_id", "item.id"
)
_LATENCY = f"""
WITH ev AS (
    SELECT session_id, seq, observed_at, type, direction, {_LATENCY_FIELDS} AS p
    FROM events
    WHERE type IN ('response.created', 'response.done', 'input_audio_buffer.speech_stopped',
                   'input_audio_buffer.speech_started')
       OR type IN {ASSISTANT_DELTAS} OR type IN {TRUNCATIONS} OR direction = 'server'
),
created AS (
    SELECT session_id, p.response.id AS response_id,
           min(observed_at) AS created_at, min(seq) AS created_seq
    FROM ev WHERE type = 'response.created' AND p.response.id IS NOT NULL
    GROUP BY ALL
),
done AS (
    SELECT session_id, p.response.id AS response_id, min(seq) AS done_seq,
           any_value(p.response.status_details.reason) AS reason
    FROM ev WHERE type = 'response.done' GROUP BY ALL
),
firsts AS (
    SELECT session_id, p.response_id AS response_id,
           min(observed_at) FILTER (WHERE type IN {AUDIO_DELTAS}) AS first_audio_at,
           min(observed_at) FILTER (WHERE type IN {TEXT_DELTAS}) AS first_text_at
    FROM ev WHERE type IN {ASSISTANT_DELTAS}
    GROUP BY ALL
),
stops AS (
    SELECT session_id, seq AS stopped_seq, observed_at AS stopped_at
    FROM ev WHERE type = 'input_audio_buffer.speech_stopped'
),
attributed AS (
    SELECT c.*, s.stopped_seq, s.stopped_at
    FROM created c ASOF LEFT JOIN stops s
      ON c.session_id = s.session_id AND c.created_seq > s.stopped_seq
),
truncated AS (
    SELECT session_id, p.item_id AS item_id FROM ev WHERE type IN {TRUNCATIONS}
),
barge_ins AS (
    SELECT DISTINCT c.session_id, c.response_id
    FROM created c
    LEFT JOIN done d USING (session_id, response_id)
    JOIN ev s ON s.session_id = c.session_id AND s.type = 'input_audio_buffer.speech_started'
             AND s.seq > c.created_seq AND s.seq < coalesce(d.done_seq, 9223372036854775807)
    UNION
    -- A truncation names only the item: any server event naming both gives its response.
    SELECT DISTINCT t.session_id, r.p.response_id
    FROM truncated t
    JOIN ev r ON r.session_id = t.session_id AND coalesce(r.p.item_id, r.p.item.id) = t.item_id
    WHERE r.direction = 'server' AND r.p.response_id IS NOT NULL
)
SELECT a.session_id, a.response_id, a.created_at, f.first_audio_at, f.first_text_at,
       {_ms("a.created_at", "f.first_audio_at")} AS ttf_audio_ms,
       {_ms("a.created_at", "f.first_text_at")} AS ttf_text_ms,
       CASE WHEN a.stopped_seq IS NOT NULL AND row_number() OVER (
                PARTITION BY a.session_id, a.stopped_seq ORDER BY a.created_seq) = 1
            THEN {_ms("a.stopped_at", "f.first_audio_at")} END
           AS speech_stopped_to_first_audio_ms,
       (b.response_id IS NOT NULL OR coalesce(d.reason = 'turn_detected', false)) AS interrupted
FROM attributed a
LEFT JOIN firsts f USING (session_id, response_id)
LEFT JOIN done d USING (session_id, response_id)
LEFT JOIN barge_ins b USING (session_id, response_id)
"""

_COSTS = """
SELECT c.record_id, c.session_id, c.kind, c.ref, c.model, c.status, c.status_reason,
       c.cost_usd, c.cost_by_modality, c.tokens, c.usage, c.complete, c.price_entry,
       c.catalog_version, c.uplift_factor, c.context_window, c.context_used_ratio,
       c.truncation_inferred, c.estimated_tokens_dropped, c.observed_at, c.warnings,
       coalesce(c.tenant, s.tenant) AS tenant, s.app, s.region
FROM _base_costs c
LEFT JOIN _session_context s USING (session_id)
QUALIFY row_number() OVER (
    PARTITION BY c.record_id ORDER BY c.kafka_timestamp, c.kafka_partition, c.kafka_offset) = 1
"""

_COST_MODALITIES = """
SELECT c.record_id, c.session_id, c.kind, m.key AS modality,
       TRY_CAST(m.value ->> '$' AS DECIMAL(18, 9)) AS cost_usd
FROM costs c, json_each(c.cost_by_modality) m
"""

_RESPONSES = f"""
WITH created AS (
    SELECT session_id, {_j("$.response.id")} AS response_id, min(observed_at) AS created_at
    FROM events WHERE type = 'response.created' GROUP BY ALL
),
joined AS (
    SELECT * FROM created FULL JOIN _response_done USING (session_id, response_id)
    WHERE response_id IS NOT NULL
)
SELECT r.session_id, r.response_id, coalesce(k.model, s.model) AS model,
       coalesce(r.status, 'in_progress') AS status, r.status_reason, r.error_code,
       r.error_message, r.created_at, r.done_at,
       coalesce(l.ttf_audio_ms, l.ttf_text_ms) AS latency_ms,
       {_ms("r.created_at", "r.done_at")} AS duration_ms,
       r.input_tokens, r.output_tokens, r.cached_tokens, r.total_tokens,
       k.cost_usd, k.complete AS cost_complete, k.context_used_ratio, k.truncation_inferred,
       k.estimated_tokens_dropped, coalesce(l.interrupted, false) AS interrupted, r.seq
FROM joined r
LEFT JOIN costs k
  ON k.session_id = r.session_id AND k.kind = 'response' AND k.ref = r.response_id
LEFT JOIN latency l ON l.session_id = r.session_id AND l.response_id = r.response_id
LEFT JOIN _session_context s ON s.session_id = r.session_id
"""

_TOOL_CALL_FIELDS = _parsed(
    "item.type",
    "item.id",
    "item.call_id",
    "item.name",
    "item.server_label",
    "item.arguments",
    "item.output",
    "item.approval_request_id",
    "item.approve",
    "item_id",
    "call_id",
    "name",
    "arguments",
    "response_id",
)
_TOOL_CALLS = f"""
WITH ev AS (
    SELECT session_id, seq, observed_at, type, direction, payload, {_TOOL_CALL_FIELDS} AS p
    FROM events
    WHERE type IN {ITEM_EVENTS}
       OR type IN ('conversation.item.create', 'response.function_call_arguments.done',
                   'response.mcp_call_arguments.done', 'response.mcp_call.completed',
                   'response.mcp_call.failed')
),
items AS (
    SELECT session_id, seq, observed_at, type, direction,
           p.item.type AS item_type, p.item.id AS item_id, p.item.call_id AS call_id,
           p.item.name AS name, p.item.server_label AS server_label,
           nullif(p.item.arguments, '') AS arguments,
           p.item.output AS output, json_extract(payload, '$.item.error') AS error,
           p.item.approval_request_id AS approval_request_id,
           TRY_CAST(p.item.approve AS BOOLEAN) AS approve, p.response_id AS response_id
    FROM ev WHERE p.item.type IS NOT NULL
),
args_done AS (
    SELECT session_id, p.item_id AS item_id, p.call_id AS call_id, p.name AS name,
           p.arguments AS arguments, p.response_id AS response_id, observed_at, seq, type
    FROM ev
    WHERE type IN ('response.function_call_arguments.done', 'response.mcp_call_arguments.done')
),
function_parts AS (
    SELECT session_id, item_id, call_id, name, arguments, response_id, observed_at, seq,
           false AS is_done
    FROM items WHERE item_type = 'function_call'
    UNION ALL
    SELECT session_id, item_id, call_id, name, arguments, response_id, observed_at, seq,
           true AS is_done
    FROM args_done WHERE type = 'response.function_call_arguments.done'
),
functions AS (
    SELECT session_id, coalesce(max(call_id), item_id) AS call_id,
           max(name) AS name, arg_max(arguments, seq) FILTER (WHERE arguments IS NOT NULL)
               AS arguments,
           max(response_id) AS response_id,
           coalesce(min(observed_at) FILTER (WHERE is_done), min(observed_at)) AS started_at,
           min(seq) AS seq
    FROM function_parts GROUP BY session_id, item_id
),
outputs AS (
    SELECT session_id, call_id, min(observed_at) AS ended_at
    FROM items WHERE item_type = 'function_call_output' GROUP BY ALL
),
mcp_events AS (
    SELECT session_id, p.item_id AS item_id,
           max(observed_at) AS ended_at,
           bool_or(type = 'response.mcp_call.failed') AS failed,
           bool_or(type = 'response.mcp_call.completed') AS completed
    FROM ev WHERE type IN ('response.mcp_call.completed', 'response.mcp_call.failed')
    GROUP BY ALL
),
mcp_calls AS (
    SELECT session_id, item_id AS call_id, max(name) AS name,
           max(server_label) AS server_label,
           arg_max(arguments, seq) FILTER (WHERE arguments IS NOT NULL) AS arguments,
           max(response_id) AS response_id, max(approval_request_id) AS approval_request_id,
           bool_or(error IS NOT NULL AND error <> 'null'::JSON) AS item_failed,
           bool_or(output IS NOT NULL) AS item_output,
           max(observed_at) FILTER (WHERE type IN ('response.output_item.done',
                                                   'conversation.item.done')) AS item_done_at,
           min(observed_at) AS started_at, min(seq) AS seq
    FROM items WHERE item_type = 'mcp_call' GROUP BY session_id, item_id
),
approval_requests AS (
    SELECT session_id, item_id AS request_id, max(name) AS name,
           max(server_label) AS server_label, max(arguments) AS arguments,
           min(observed_at) AS requested_at, min(seq) AS seq
    FROM items WHERE item_type = 'mcp_approval_request' GROUP BY session_id, item_id
),
approval_answers AS (
    SELECT session_id, approval_request_id AS request_id, bool_and(approve) AS approve,
           min(observed_at) AS answered_at
    FROM items WHERE item_type = 'mcp_approval_response' GROUP BY ALL
),
mcp AS (
    SELECT coalesce(c.session_id, q.session_id) AS session_id,
           coalesce(c.call_id, q.request_id) AS call_id,
           coalesce(c.name, q.name) AS name, coalesce(c.server_label, q.server_label)
               AS server_label,
           coalesce(c.arguments, q.arguments) AS arguments,
           c.response_id,
           CASE WHEN coalesce(c.approval_request_id, q.request_id) IS NULL THEN 'not_required'
                WHEN a.approve THEN 'approved'
                WHEN NOT a.approve THEN 'denied'
                ELSE 'pending' END AS approval,
           coalesce(q.requested_at, c.started_at) AS started_at,
           CASE WHEN c.call_id IS NULL THEN a.answered_at
                ELSE coalesce(e.ended_at, c.item_done_at) END AS ended_at,
           CASE WHEN c.call_id IS NULL AND NOT a.approve THEN 'denied'
                WHEN c.call_id IS NULL THEN 'awaiting_approval'
                WHEN e.failed OR c.item_failed THEN 'failed'
                WHEN e.completed OR c.item_output THEN 'completed'
                ELSE 'in_progress' END AS outcome,
           coalesce(q.seq, c.seq) AS seq
    FROM mcp_calls c
    FULL JOIN approval_requests q
      ON q.session_id = c.session_id AND q.request_id = c.approval_request_id
    LEFT JOIN approval_answers a
      ON a.session_id = coalesce(c.session_id, q.session_id)
     AND a.request_id = coalesce(c.approval_request_id, q.request_id)
    LEFT JOIN mcp_events e ON e.session_id = c.session_id AND e.item_id = c.call_id
)
SELECT f.session_id, f.call_id, 'function' AS kind, f.name,
       CAST(NULL AS VARCHAR) AS server_label, f.arguments, f.response_id,
       CAST(NULL AS VARCHAR) AS approval, f.started_at, o.ended_at,
       {_ms("f.started_at", "o.ended_at")} AS duration_ms,
       CASE WHEN o.ended_at IS NULL THEN 'no_output' ELSE 'output_returned' END AS outcome,
       f.seq
FROM functions f LEFT JOIN outputs o USING (session_id, call_id)
UNION ALL
SELECT session_id, call_id, 'mcp' AS kind, name, server_label, arguments, response_id,
       approval, started_at, ended_at, {_ms("started_at", "ended_at")} AS duration_ms, outcome,
       seq
FROM mcp
"""

_FINDINGS = """
SELECT f.finding_id, f.session_id, f.rule_id, f.policy_version, f.severity, f.status,
       f.action, f.message, f.evidence, f.observed_at, coalesce(f.tenant, s.tenant) AS tenant,
       s.app, s.region
FROM _base_findings f
LEFT JOIN _session_context s USING (session_id)
QUALIFY row_number() OVER (
    PARTITION BY f.finding_id ORDER BY f.kafka_timestamp, f.kafka_partition, f.kafka_offset) = 1
"""

_VERDICTS = """
SELECT v.session_id, v.verdict,
       coalesce(TRY_CAST(from_json(v.deciding_rules, '["VARCHAR"]') AS VARCHAR[]), [])
           AS deciding_rules,
       v.policy_version, v.findings, v.events, v.tenant, v.region, v.upstream_host, v.model,
       v.language,
       coalesce(TRY_CAST(from_json(v.warnings, '["VARCHAR"]') AS VARCHAR[]), []) AS warnings,
       v.date
FROM _base_verdicts v
QUALIFY row_number() OVER (
    PARTITION BY v.session_id ORDER BY v.kafka_timestamp DESC, v.kafka_offset DESC) = 1
"""

_SESSION_COSTS = """
SELECT c.session_id, c.total_usd,
       coalesce(list_sum(TRY_CAST(json_extract_string(c.unplayed_audio, '$[*].unplayed_seconds')
                                  AS DECIMAL(18, 9)[])), 0)::DECIMAL(18, 9) AS unplayed_audio_s,
       coalesce(list_sum(TRY_CAST(json_extract_string(c.unplayed_audio, '$[*].cost_usd')
                                  AS DECIMAL(18, 9)[])), 0)::DECIMAL(18, 9) AS unplayed_audio_usd,
       coalesce(TRY_CAST(from_json(c.unknown_models, '["VARCHAR"]') AS VARCHAR[]), [])
           AS unknown_models,
       coalesce(TRY_CAST(from_json(c.warnings, '["VARCHAR"]') AS VARCHAR[]), []) AS warnings,
       c.by_model, c.by_modality, c.truncations, c.unplayed_audio
FROM _base_session_costs c
QUALIFY row_number() OVER (
    PARTITION BY c.session_id ORDER BY c.kafka_timestamp DESC, c.kafka_offset DESC) = 1
"""

_ERRORS = f"""
SELECT session_id, observed_at, 'error_event' AS kind,
       coalesce({_j("$.error.code")}, {_j("$.error.type")}) AS code,
       {_j("$.error.message")} AS message, CAST(NULL AS VARCHAR) AS response_id, seq
FROM events WHERE type = 'error'
UNION ALL
SELECT DISTINCT ON (dead_letter_id)
       session_id, observed_at, 'dead_letter' AS kind, agent AS code, reason AS message,
       CAST(NULL AS VARCHAR) AS response_id, CAST(NULL AS BIGINT) AS seq
FROM _base_dead_letters
UNION ALL
SELECT session_id, done_at AS observed_at, status || '_response' AS kind,
       coalesce(error_code, status_reason) AS code, coalesce(error_message, status_reason)
           AS message, response_id, seq
FROM _response_done
WHERE response_id IS NOT NULL AND status IN ('failed', 'cancelled', 'incomplete')
"""

_TRANSCRIPTIONS = f"""
WITH done AS (
    SELECT session_id, {_j("$.item_id")} AS item_id, {_j("$.transcript")} AS text,
           {_j("$.usage")} AS usage, observed_at, seq
    FROM events WHERE type = 'conversation.item.input_audio_transcription.completed'
    QUALIFY row_number() OVER (PARTITION BY session_id, {_j("$.item_id")} ORDER BY seq) = 1
)
SELECT d.session_id, d.item_id, k.model, d.text,
       {_j("$.type", "d.usage")} AS usage_type,
       coalesce(TRY_CAST({_j("$.total_tokens", "d.usage")} AS BIGINT),
                TRY_CAST({_j("$.input_tokens", "d.usage")} AS BIGINT)
                + TRY_CAST({_j("$.output_tokens", "d.usage")} AS BIGINT)) AS tokens,
       TRY_CAST({_j("$.seconds", "d.usage")} AS DOUBLE) AS duration_s,
       k.cost_usd, d.observed_at, d.seq
FROM done d
LEFT JOIN costs k ON k.session_id = d.session_id AND k.kind = 'transcription'
                 AND k.ref = d.item_id
"""

_ERASURES = """
SELECT erasure_id, erased_at, requested_by, scope, target, rows_removed, files_rewritten,
       CASE WHEN scope = 'session' THEN target END AS session_id
FROM _base_erasures
QUALIFY row_number() OVER (PARTITION BY erasure_id ORDER BY erased_at) = 1
"""

_SESSIONS = f"""
WITH turn_counts AS (
    SELECT session_id, count(*) FILTER (WHERE role = 'user') AS user_turns,
           count(*) FILTER (WHERE role = 'assistant') AS assistant_turns
    FROM turns GROUP BY session_id
),
response_counts AS (
    SELECT session_id, count(*) AS responses,
           count(*) FILTER (WHERE interrupted) AS interruptions,
           list(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL) AS models
    FROM responses GROUP BY session_id
),
call_counts AS (SELECT session_id, count(*) AS tool_calls FROM tool_calls GROUP BY session_id),
error_counts AS (SELECT session_id, count(*) AS errors FROM errors GROUP BY session_id),
finding_counts AS (
    SELECT session_id, count(*) AS findings,
           count(*) FILTER (WHERE rule_id = 'eu_residency') AS residency_findings
    FROM findings GROUP BY session_id
),
cost_sums AS (
    SELECT session_id, sum(cost_usd) AS cost_usd FROM costs GROUP BY session_id
)
SELECT s.session_id, s.tenant, s.app, s.region, s.upstream_host,
       coalesce(s.model, v.model) AS model, coalesce(r.models, []) AS models,
       s.started_at, s.ended_at, {_ms("s.started_at", "s.ended_at")} / 1000.0 AS duration_s,
       coalesce(t.user_turns, 0) AS user_turns,
       coalesce(t.assistant_turns, 0) AS assistant_turns,
       coalesce(r.responses, 0) AS responses, coalesce(r.interruptions, 0) AS interruptions,
       coalesce(c.tool_calls, 0) AS tool_calls, coalesce(e.errors, 0) AS errors,
       coalesce(f.findings, 0) AS findings, s.events, v.verdict, v.deciding_rules,
       CAST(coalesce(sc.total_usd, k.cost_usd) AS DECIMAL(18, 9)) AS cost_usd,
       CASE WHEN lower(s.region) = 'eu'
                 AND (s.upstream_host <> '{EU_HOST}' OR coalesce(f.residency_findings, 0) > 0)
                THEN 'violation'
            WHEN lower(s.region) = 'eu' THEN 'ok'
            ELSE 'not_applicable' END AS eu_residency,
       v.language, coalesce(s.closed OR v.session_id IS NOT NULL, false) AS closed,
       CAST(timezone('UTC', s.started_at) AS DATE) AS date
FROM _session_context s
LEFT JOIN turn_counts t USING (session_id)
LEFT JOIN response_counts r USING (session_id)
LEFT JOIN call_counts c USING (session_id)
LEFT JOIN error_counts e USING (session_id)
LEFT JOIN finding_counts f USING (session_id)
LEFT JOIN cost_sums k USING (session_id)
LEFT JOIN verdicts v USING (session_id)
LEFT JOIN session_costs sc USING (session_id)
"""


def _cols(*rows: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*row) for row in rows)


TS = "TIMESTAMP WITH TIME ZONE"
MONEY = "DECIMAL(18,9)"

VIEWS: tuple[View, ...] = (
    View(
        "events",
        "Every redacted envelope, one row each (from voxledger.events.redacted).",
        _EVENTS,
        _cols(
            ("envelope_id", "VARCHAR", "Unique, time-ordered envelope id (UUIDv7)."),
            ("session_id", "VARCHAR", "The Realtime session the event belongs to."),
            ("seq", "BIGINT", "Gap-free per-session counter over both directions."),
            ("direction", "VARCHAR", "client (to OpenAI) or server (from OpenAI)."),
            ("type", "VARCHAR", "Realtime event type as sent (GA or beta name)."),
            ("observed_at", TS, "When the proxy saw the frame (UTC, µs)."),
            ("tenant", "VARCHAR", "Tenant the session belongs to."),
            ("app", "VARCHAR", "The tenant's application."),
            ("region", "VARCHAR", "Region the tenant requires (eu, us)."),
            ("upstream_host", "VARCHAR", "Host the session was relayed to."),
            ("model", "VARCHAR", "Model requested by the client."),
            ("source", "VARCHAR", "proxy, sideband or import."),
            ("payload", "VARCHAR", "The redacted event as JSON text (audio elided)."),
            ("extra", "VARCHAR", "JSON of unknown top-level envelope fields, else NULL."),
            ("kafka_topic", "VARCHAR", "Topic the record was read from."),
            ("kafka_partition", "INTEGER", "Partition of the record."),
            ("kafka_offset", "BIGINT", "Offset of the record."),
            ("date", "DATE", "UTC date of observed_at (the hive partition)."),
        ),
    ),
    View(
        "turns",
        "User and assistant turns with their redacted text: user speech transcripts "
        "(input_audio_transcription.completed), user text items (conversation.item.*), "
        "assistant transcripts and texts (response.output_audio_transcript.done, "
        "response.output_text.done and their beta names).",
        _TURNS,
        _cols(
            ("session_id", "VARCHAR", "Session of the turn."),
            ("turn_index", "BIGINT", "1-based position of the turn in the conversation."),
            ("role", "VARCHAR", "user or assistant."),
            ("item_id", "VARCHAR", "Conversation item id."),
            ("response_id", "VARCHAR", "Response that produced an assistant turn."),
            ("text", "VARCHAR", "Redacted text of the turn."),
            ("started_at", TS, "Speech start (user) or first output delta (assistant)."),
            ("ended_at", TS, "Speech stop (user) or the final transcript/text event."),
            ("audio_ms", "DOUBLE", "Spoken audio of the turn in ms (VAD span or deltas)."),
            ("seq", "BIGINT", "seq of the event holding the final text."),
        ),
    ),
    View(
        "latency",
        "Per response: time to first audio and text delta after response.created, "
        "speech_stopped → first audio delta (the user-perceived gap), and whether the "
        "response was interrupted (speech during it, a truncate of its audio, or "
        "status reason turn_detected). Audio payloads are elided, so times are observed_at.",
        _LATENCY,
        _cols(
            ("session_id", "VARCHAR", "Session of the response."),
            ("response_id", "VARCHAR", "Response id."),
            ("created_at", TS, "response.created observed."),
            ("first_audio_at", TS, "First audio delta observed."),
            ("first_text_at", TS, "First text or transcript delta observed."),
            ("ttf_audio_ms", "DOUBLE", "created → first audio delta, ms."),
            ("ttf_text_ms", "DOUBLE", "created → first text/transcript delta, ms."),
            (
                "speech_stopped_to_first_audio_ms",
                "DOUBLE",
                "Last speech_stopped before the response → its first audio delta, ms "
                "(only the first response after a speech_stopped).",
            ),
            ("interrupted", "BOOLEAN", "The caller barged in on this response."),
        ),
    ),
    View(
        "costs",
        "One row per priced response or input transcription (voxledger.costs records of "
        "kind response|transcription), with the session's tenant.",
        _COSTS,
        _cols(
            ("record_id", "VARCHAR", "Deterministic cost record id."),
            ("session_id", "VARCHAR", "Session of the record."),
            ("kind", "VARCHAR", "response or transcription."),
            ("ref", "VARCHAR", "response_id (response) or item_id (transcription)."),
            ("model", "VARCHAR", "Model priced."),
            ("status", "VARCHAR", "Response status, if a response."),
            ("status_reason", "VARCHAR", "status_details.reason, if any."),
            ("cost_usd", MONEY, "Cost in USD; NULL when nothing could be priced."),
            ("cost_by_modality", "VARCHAR", "JSON: cost per token kind."),
            ("tokens", "VARCHAR", "JSON: token counts per kind."),
            ("usage", "VARCHAR", "JSON: the usage object as reported."),
            ("complete", "BOOLEAN", "Every token was priced."),
            ("price_entry", "VARCHAR", "Catalog entry that priced it."),
            ("catalog_version", "VARCHAR", "Price catalog version."),
            ("uplift_factor", MONEY, "Data-residency uplift applied, if any."),
            ("context_window", "BIGINT", "Model context window (tokens)."),
            ("context_used_ratio", "DOUBLE", "Share of the context window used."),
            ("truncation_inferred", "BOOLEAN", "Context truncation inferred before it."),
            ("estimated_tokens_dropped", "BIGINT", "Tokens the truncation dropped (estimate)."),
            ("observed_at", TS, "When the priced event was observed."),
            ("warnings", "VARCHAR", "JSON list of pricing warnings."),
            ("tenant", "VARCHAR", "Tenant (the record's, else the session's)."),
            ("app", "VARCHAR", "App (from the session's events)."),
            ("region", "VARCHAR", "Region (from the session's events)."),
        ),
    ),
    View(
        "cost_modalities",
        "One row per cost record and token kind (cost_by_modality unnested).",
        _COST_MODALITIES,
        _cols(
            ("record_id", "VARCHAR", "Cost record id."),
            ("session_id", "VARCHAR", "Session."),
            ("kind", "VARCHAR", "response or transcription."),
            ("modality", "VARCHAR", "Token kind (text_in, audio_out, ...)."),
            ("cost_usd", MONEY, "Cost of that token kind."),
        ),
    ),
    View(
        "responses",
        "One row per response (response.created / response.done): status, reason, usage, "
        "cost, context use and latency.",
        _RESPONSES,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("response_id", "VARCHAR", "Response id."),
            ("model", "VARCHAR", "Model priced (else the session's model)."),
            (
                "status",
                "VARCHAR",
                "completed, cancelled, failed, incomplete; in_progress without response.done.",
            ),
            ("status_reason", "VARCHAR", "status_details.reason (turn_detected, ...)."),
            ("error_code", "VARCHAR", "status_details.error.code of a failed response."),
            ("error_message", "VARCHAR", "status_details.error.message (redacted)."),
            ("created_at", TS, "response.created observed."),
            ("done_at", TS, "response.done observed."),
            ("latency_ms", "DOUBLE", "created → first audio delta (else first text delta)."),
            ("duration_ms", "DOUBLE", "created → done."),
            ("input_tokens", "BIGINT", "usage.input_tokens."),
            ("output_tokens", "BIGINT", "usage.output_tokens."),
            ("cached_tokens", "BIGINT", "usage.input_token_details.cached_tokens."),
            ("total_tokens", "BIGINT", "usage.total_tokens."),
            ("cost_usd", MONEY, "Cost of the response."),
            ("cost_complete", "BOOLEAN", "Every token of it was priced."),
            ("context_used_ratio", "DOUBLE", "Share of the context window used."),
            ("truncation_inferred", "BOOLEAN", "Context truncation inferred before it."),
            ("estimated_tokens_dropped", "BIGINT", "Tokens the truncation dropped (estimate)."),
            ("interrupted", "BOOLEAN", "The caller barged in (see latency)."),
            ("seq", "BIGINT", "seq of response.done."),
        ),
    ),
    View(
        "tool_calls",
        "Function calls (function_call items, response.function_call_arguments.done, "
        "function_call_output) and MCP calls (mcp_call items, response.mcp_call.*, "
        "mcp_approval_request/response).",
        _TOOL_CALLS,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("call_id", "VARCHAR", "call_id (function) or item id (MCP)."),
            ("kind", "VARCHAR", "function or mcp."),
            ("name", "VARCHAR", "Tool name."),
            ("server_label", "VARCHAR", "MCP server label."),
            ("arguments", "VARCHAR", "Redacted arguments (JSON text)."),
            ("response_id", "VARCHAR", "Response that made the call."),
            (
                "approval",
                "VARCHAR",
                "MCP: not_required, pending, approved, denied; NULL for functions.",
            ),
            ("started_at", TS, "Call made (arguments done, or approval requested)."),
            ("ended_at", TS, "Output returned / MCP call completed or failed."),
            ("duration_ms", "DOUBLE", "started → ended."),
            (
                "outcome",
                "VARCHAR",
                "function: output_returned, no_output; mcp: completed, failed, in_progress, "
                "awaiting_approval, denied.",
            ),
            ("seq", "BIGINT", "seq of the first event of the call."),
        ),
    ),
    View(
        "findings",
        "Policy findings (voxledger.findings, kind finding) with the session's tenant.",
        _FINDINGS,
        _cols(
            ("finding_id", "VARCHAR", "Deterministic finding id."),
            ("session_id", "VARCHAR", "Session (NULL for a tenant-wide budget finding)."),
            ("rule_id", "VARCHAR", "Rule broken (eu_residency, budget.daily, ...)."),
            ("policy_version", "VARCHAR", "Policy version."),
            ("severity", "VARCHAR", "Severity."),
            ("status", "VARCHAR", "open, ..."),
            ("action", "VARCHAR", "fail or needs_review."),
            ("message", "VARCHAR", "What was found (redacted)."),
            ("evidence", "VARCHAR", "JSON list of {seq, envelope_id, excerpt}."),
            ("observed_at", TS, "When the finding was made."),
            ("tenant", "VARCHAR", "Tenant (the record's, else the session's)."),
            ("app", "VARCHAR", "App (from the session's events)."),
            ("region", "VARCHAR", "Region (from the session's events)."),
        ),
    ),
    View(
        "verdicts",
        "One verdict per session (voxledger.findings, kind verdict; the last one wins).",
        _VERDICTS,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("verdict", "VARCHAR", "pass, fail or needs_review."),
            ("deciding_rules", "VARCHAR[]", "Rules that decided the verdict."),
            ("policy_version", "VARCHAR", "Policy version."),
            ("findings", "BIGINT", "Findings in the session."),
            ("events", "BIGINT", "Events judged."),
            ("tenant", "VARCHAR", "Tenant."),
            ("region", "VARCHAR", "Region."),
            ("upstream_host", "VARCHAR", "Upstream host."),
            ("model", "VARCHAR", "Model."),
            ("language", "VARCHAR", "Transcript language."),
            ("warnings", "VARCHAR[]", "Judging warnings."),
            ("date", "DATE", "Date partition the verdict was written under."),
        ),
    ),
    View(
        "session_costs",
        "One cost summary per closed session (voxledger.costs, kind session_summary).",
        _SESSION_COSTS,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("total_usd", MONEY, "Total cost of the session."),
            ("unplayed_audio_s", MONEY, "Assistant audio generated but cut off, seconds."),
            ("unplayed_audio_usd", MONEY, "Cost of that unplayed audio."),
            ("unknown_models", "VARCHAR[]", "Models the catalog could not price."),
            ("warnings", "VARCHAR[]", "Pricing warnings."),
            ("by_model", "VARCHAR", "JSON: cost per model."),
            ("by_modality", "VARCHAR", "JSON: cost per token kind."),
            ("truncations", "VARCHAR", "JSON: inferred context truncations."),
            ("unplayed_audio", "VARCHAR", "JSON: unplayed audio per truncated item."),
        ),
    ),
    View(
        "errors",
        "Error events, dead letters, and failed/cancelled/incomplete responses.",
        _ERRORS,
        _cols(
            ("session_id", "VARCHAR", "Session (NULL for a dead letter of unknown session)."),
            ("observed_at", TS, "When it happened."),
            (
                "kind",
                "VARCHAR",
                "error_event, dead_letter, failed_response, cancelled_response, "
                "incomplete_response.",
            ),
            ("code", "VARCHAR", "error.code / type, the rejecting agent, or status reason."),
            ("message", "VARCHAR", "Error message (redacted)."),
            ("response_id", "VARCHAR", "Response, for response errors."),
            ("seq", "BIGINT", "seq of the event, if an event."),
        ),
    ),
    View(
        "transcriptions",
        "Input audio transcriptions (conversation.item.input_audio_transcription.completed) "
        "with their usage and cost.",
        _TRANSCRIPTIONS,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("item_id", "VARCHAR", "User audio item."),
            ("model", "VARCHAR", "Transcription model priced."),
            ("text", "VARCHAR", "Redacted transcript."),
            ("usage_type", "VARCHAR", "tokens or duration."),
            ("tokens", "BIGINT", "Total tokens (token-billed models)."),
            ("duration_s", "DOUBLE", "Seconds of audio (duration-billed models)."),
            ("cost_usd", MONEY, "Cost of the transcription."),
            ("observed_at", TS, "When the transcript arrived."),
            ("seq", "BIGINT", "seq of the completed event."),
        ),
    ),
    View(
        "erasures",
        "GDPR erasures recorded by `voxledger erase`.",
        _ERASURES,
        _cols(
            ("erasure_id", "VARCHAR", "Erasure id."),
            ("erased_at", TS, "When the erasure ran."),
            ("requested_by", "VARCHAR", "Who asked for it."),
            ("scope", "VARCHAR", "session or subject."),
            ("target", "VARCHAR", "Session id or subject pseudonym."),
            ("rows_removed", "BIGINT", "Rows removed."),
            ("files_rewritten", "BIGINT", "Parquet files rewritten."),
            ("session_id", "VARCHAR", "The target when scope is session."),
        ),
    ),
    View(
        "sessions",
        "One row per session: where it ran, when, its turns, responses, calls, errors, "
        "verdict, cost and EU-residency status. Filter other views by joining on session_id.",
        _SESSIONS,
        _cols(
            ("session_id", "VARCHAR", "Session."),
            ("tenant", "VARCHAR", "Tenant."),
            ("app", "VARCHAR", "App."),
            ("region", "VARCHAR", "Required region."),
            ("upstream_host", "VARCHAR", "Host the session was relayed to."),
            ("model", "VARCHAR", "Model requested (else the verdict's model)."),
            ("models", "VARCHAR[]", "Models that priced its responses."),
            ("started_at", TS, "First event observed."),
            ("ended_at", TS, "Last event observed."),
            ("duration_s", "DOUBLE", "ended_at − started_at, seconds."),
            ("user_turns", "BIGINT", "User turns."),
            ("assistant_turns", "BIGINT", "Assistant turns."),
            ("responses", "BIGINT", "Responses."),
            ("interruptions", "BIGINT", "Responses interrupted by the caller."),
            ("tool_calls", "BIGINT", "Function and MCP calls."),
            ("errors", "BIGINT", "Rows in errors."),
            ("findings", "BIGINT", "Policy findings."),
            ("events", "BIGINT", "Envelopes (including VoxLedger's session markers)."),
            ("verdict", "VARCHAR", "pass, fail, needs_review; NULL while open."),
            ("deciding_rules", "VARCHAR[]", "Rules that decided the verdict."),
            ("cost_usd", MONEY, "Session total (summary, else the sum of costs so far)."),
            (
                "eu_residency",
                "VARCHAR",
                f"eu region: violation when upstream_host is not {EU_HOST} or an "
                "eu_residency finding exists, else ok; not_applicable elsewhere.",
            ),
            ("language", "VARCHAR", "Transcript language (from the verdict)."),
            ("closed", "BOOLEAN", "The session ended (close marker or verdict seen)."),
            ("date", "DATE", "UTC date the session started."),
        ),
    ),
)


# The dictionary's order: what a reader looks for first.
_DOC_ORDER = (
    "sessions",
    "events",
    "turns",
    "responses",
    "latency",
    "tool_calls",
    "transcriptions",
    "costs",
    "cost_modalities",
    "session_costs",
    "findings",
    "verdicts",
    "errors",
    "erasures",
)
VIEWS = tuple(sorted(VIEWS, key=lambda v: _DOC_ORDER.index(v.name)))


def view_named(name: str) -> View:
    for view in VIEWS:
        if view.name == name:
            return view
    raise KeyError(name)


# Creation order: a view only reads views created before it.
CREATION_ORDER: tuple[str, ...] = (
    "events",
    "_session_context",
    "_response_done",
    "costs",
    "cost_modalities",
    "latency",
    "responses",
    "turns",
    "tool_calls",
    "findings",
    "verdicts",
    "session_costs",
    "errors",
    "transcriptions",
    "erasures",
    "sessions",
)


def definitions() -> list[tuple[str, str]]:
    """(name, SQL) of every view, helpers included, in creation order."""
    sql = {name: text for name, text in HELPERS} | {v.name: v.sql for v in VIEWS}
    return [(name, sql[name]) for name in CREATION_ORDER]


_INTRO = """\
# VoxLedger data dictionary

<!-- Generated by `voxledger warehouse dictionary` from voxledger/warehouse/tables.py.
     Do not edit by hand: CI fails when this file differs from the definitions. -->

The warehouse is Parquet under `warehouse.url` (default `<data_dir>/warehouse`), written by
`voxledger sink`, and a DuckDB file (`warehouse.database`, default
`<data_dir>/warehouse.duckdb`) holding the views below. The views read the Parquet by glob,
so newly landed files are visible without a refresh.

Ways to query:

- `voxledger sql "SELECT ..." [--format table|json|csv]` (read-only).
- `voxledger session show SESSION_ID`: one session's redacted transcript with costs and
  findings.
- SQLAlchemy (duckdb-engine), for BI tools and pandas:
  `sqlalchemy.create_engine("duckdb:////abs/path/warehouse.duckdb?access_mode=read_only")`
  (four slashes for an absolute path). `voxledger warehouse refresh` creates the file and
  its views and prints this URL; run it again after a table gets its first file.
- Python: `voxledger.warehouse.db.connect(settings)` (refreshes the views when needed).

The dashboard does not query these views: it reads a mart, the views it needs computed into
tables of their own file (`warehouse.marts/` next to the DuckDB file), rebuilt by `voxledger
sink` in the background as files land and by `voxledger warehouse refresh`.

DuckDB allows one read-write process per file, or many read-only ones: open it read-only.
With an object-storage root (`s3://...`) the views are created per connection over pyarrow
datasets (DuckDB's httpfs extension is not used), so use `connect()` rather than the file.

Every view has `session_id`; filter by tenant, app, model, region or date through
`sessions`. Text columns hold redacted text only. JSON columns are JSON text (read them
with `json_extract_string` or `->>`). Money is `DECIMAL(18,9)` USD.
"""


def render_dictionary() -> str:
    """docs/data-dictionary.md, generated from VIEWS."""
    parts = [_INTRO]
    parts.append("## Views\n")
    parts.extend(f"- [`{v.name}`](#{v.name})" for v in VIEWS)
    parts.append("")
    for view in VIEWS:
        parts.append(f"## {view.name}\n")
        parts.append(view.description + "\n")
        parts.append("| column | type | meaning |")
        parts.append("|---|---|---|")
        parts.extend(f"| `{c.name}` | `{c.type}` | {c.meaning} |" for c in view.columns)
        parts.append("")
    return "\n".join(parts)
