"""The one place the dashboard runs SQL on the warehouse: read-only, aggregated, cached.

Pages read the latest mart (voxledger.warehouse.marts): the views they need, materialised as
tables in a file of their own, rebuilt in the background as files land (by the sink, and by
this module when pages find theirs stale). Opening one is instant, whatever the warehouse's
size, and no page derives anything from the raw events. Every page asks for small result
sets (aggregates computed by DuckDB); nothing here loads a whole table. The shared filters
become one `WITH s AS (...)` over `sessions`, and each query joins it by session_id. Results
are cached per mart, for `Settings.dashboard.cache_ttl_s` seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from voxledger.config import Settings
from voxledger.errors import VoxLedgerError
from voxledger.warehouse import marts
from voxledger.warehouse.db import WarehouseError, read_query
from voxledger.warehouse.marts import Mart

# Redaction placeholders look like <PERSON_4821> or <PHONE_NUMBER_12>.
PLACEHOLDER_PATTERN = r"<([A-Z][A-Z_]*[A-Z])_[0-9]+>"
# Rules the compliance page groups as deception, and the prefix of the safety categories.
DECEPTION_RULES = ("ai_disclosure", "no_human_claim")
SAFETY_PREFIX = "safety_classifier."
SQL_ROW_LIMIT = 1000
OPEN_ATTEMPTS = 3  # a mart pruned between listing and opening: the next listing has a newer one


class WarehouseUnavailable(VoxLedgerError):
    """The warehouse cannot be opened (not built yet, or locked by a writer)."""


@dataclass(frozen=True)
class Filters:
    """The filters shared by every page; an empty tuple means "all"."""

    start: date | None = None
    end: date | None = None
    tenants: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    def sessions_where(self) -> tuple[str, list[Any]]:
        """The WHERE clause on `sessions` and its parameters (never string-formatted values)."""
        conditions: list[str] = []
        params: list[Any] = []
        if self.start:
            conditions.append("date >= ?")
            params.append(self.start)
        if self.end:
            conditions.append("date <= ?")
            params.append(self.end)
        for column, values in (
            ("tenant", self.tenants),
            ("app", self.apps),
            ("model", self.models),
            ("region", self.regions),
        ):
            if values:
                conditions.append(f"list_contains(?::VARCHAR[], {column})")
                params.append(list(values))
        return (" AND ".join(conditions) or "TRUE"), params


# -- the mart and cached execution --------------------------------------------------------------


def open_mart(settings: Settings) -> Mart:
    """The mart pages read, opened: the latest one, or, when there is none yet (a first start),
    one built now (once: concurrent builders wait for the first, across processes too)."""
    for _ in range(OPEN_ATTEMPTS):
        mart: Mart | None = None
        try:
            mart = marts.latest(settings)
            if mart is None:
                with st.spinner("Building the dashboard's copy of the warehouse (first start)..."):
                    mart = marts.refresh(settings)
            assert mart is not None  # refresh waits for a build another process runs
            _mart_connection(str(mart.path))
            marts.refresh_soon(settings)  # pages keep this one meanwhile
            return mart
        except duckdb.IOException as exc:
            if mart is not None and not mart.path.exists():
                continue  # pruned between the listing and the open
            raise WarehouseUnavailable(f"cannot open the warehouse: {exc}") from None
        except (duckdb.Error, OSError, VoxLedgerError) as exc:
            raise WarehouseUnavailable(f"cannot read the warehouse: {exc}") from None
    raise WarehouseUnavailable("cannot open the warehouse: its copies keep being replaced")


@st.cache_resource(max_entries=4, show_spinner=False)
def _mart_connection(path: str) -> duckdb.DuckDBPyConnection:
    # One read-only connection per mart file (a mart never changes); every Streamlit session
    # takes its own cursor. An old mart's connection is dropped when newer ones push it out,
    # closed when garbage-collected, never under a running query.
    return duckdb.connect(path, read_only=True)


@functools.cache
def _query_cache(ttl_s: float) -> Callable[..., Any]:
    @st.cache_data(ttl=ttl_s or None, show_spinner=False, max_entries=2000)
    def run(path: str, sql: str, params: tuple[Any, ...], exact: bool) -> Any:
        con = _mart_connection(path)  # held until the query is done, even if evicted meanwhile
        cursor = con.cursor()  # one per query: Streamlit sessions run in threads
        try:
            result = cursor.execute(sql, list(params))
            if exact:  # Python values: DECIMAL stays Decimal for money
                names = [d[0] for d in result.description]
                return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
            return result.df()
        finally:
            cursor.close()

    return run


class Warehouse:
    """The views, read from one mart through cached queries; `filters` scope every
    session-level query. The mart is picked at the first query and kept for the page run,
    so every figure of a page comes from the same data."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ttl = settings.dashboard.cache_ttl_s
        self._mart: Mart | None = None

    @property
    def mart(self) -> Mart:
        """The mart this page run reads (opened at its first use)."""
        if self._mart is None:
            self._mart = open_mart(self.settings)
        return self._mart

    @property
    def as_of(self) -> datetime:
        """When the data shown was read from the warehouse (UTC): the mart's "as of"."""
        return self.mart.as_of

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A small result as a DataFrame (for tables and charts)."""
        return self._run(sql, params, exact=False)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A small result as dicts of Python values (Decimal money, for exact figures)."""
        return self._run(sql, params, exact=True)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any]:
        found = self.rows(sql, params)
        return found[0] if found else {}

    def _run(self, sql: str, params: Sequence[Any], *, exact: bool) -> Any:
        path = str(self.mart.path)
        try:
            return _query_cache(self._ttl)(path, sql, tuple(params), exact)
        except duckdb.Error as exc:
            raise WarehouseUnavailable(f"the warehouse query failed: {exc}") from None


def scoped(filters: Filters, body: str, params: Sequence[Any] = ()) -> tuple[str, list[Any]]:
    """`body` preceded by `WITH s AS (filtered sessions)`; body joins `s` by session_id."""
    where, where_params = filters.sessions_where()
    sql = f"WITH s AS (SELECT * FROM sessions WHERE {where})\n{body}"
    return sql, [*where_params, *params]


# -- filter options -----------------------------------------------------------------------------


def filter_options(wh: Warehouse) -> dict[str, Any]:
    """Distinct values for the sidebar filters, the warehouse's date span, and when the data
    shown was read from the warehouse (`as_of`, UTC)."""
    span = wh.one("SELECT min(date) AS first, max(date) AS last, count(*) AS n FROM sessions")
    options: dict[str, Any] = {
        "first": span.get("first"),
        "last": span.get("last"),
        "as_of": wh.as_of,
    }
    for column in ("tenant", "app", "model", "region"):
        found = wh.rows(
            f"SELECT DISTINCT {column} AS v FROM sessions WHERE {column} IS NOT NULL ORDER BY 1"
        )
        options[column] = [r["v"] for r in found]
    return options


# -- spend --------------------------------------------------------------------------------------


def spend_totals(wh: Warehouse, f: Filters) -> dict[str, Any]:
    """Total cost, sessions, minutes, cost per session and per minute (DECIMAL in SQL)."""
    sql, params = scoped(
        f,
        """
        , c AS (SELECT sum(costs.cost_usd) AS usd FROM costs JOIN s USING (session_id))
        , t AS (SELECT count(*) AS sessions, sum(duration_s) AS seconds FROM s)
        SELECT coalesce(c.usd, 0)::DECIMAL(18, 9) AS total_usd,
               t.sessions,
               coalesce(t.seconds, 0) / 60.0 AS minutes,
               CASE WHEN t.sessions > 0 THEN (coalesce(c.usd, 0) / t.sessions)::DECIMAL(18, 9)
                    END AS usd_per_session,
               CASE WHEN t.seconds > 0
                    THEN (coalesce(c.usd, 0) / (t.seconds::DECIMAL(18, 3) / 60))::DECIMAL(18, 9)
                    END AS usd_per_minute
        FROM c, t
        """,
    )
    return wh.one(sql, params)


def spend_by(wh: Warehouse, f: Filters, dimension: str) -> pd.DataFrame:
    """Cost grouped by day, tenant, app or model (of the cost record)."""
    column = {"day": "s.date", "tenant": "s.tenant", "app": "s.app", "model": "costs.model"}[
        dimension
    ]
    sql, params = scoped(
        f,
        f"""
        SELECT {column} AS {dimension}, sum(costs.cost_usd)::DOUBLE AS cost_usd,
               count(DISTINCT costs.session_id) AS sessions
        FROM costs JOIN s USING (session_id)
        GROUP BY 1 ORDER BY {"1" if dimension == "day" else "2 DESC"}
        """,
    )
    return wh.frame(sql, params)


def spend_by_modality(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT m.modality, sum(m.cost_usd)::DOUBLE AS cost_usd
        FROM cost_modalities m JOIN s USING (session_id)
        GROUP BY 1 ORDER BY 2 DESC
        """,
    )
    return wh.frame(sql, params)


def cached_token_savings(wh: Warehouse, f: Filters, prices: Sequence[tuple]) -> dict[str, Any]:
    """What cached input tokens saved: cached tokens x (input price - cached price).

    `prices` rows are (price_entry, kind, usd_per_token_saved) with kind text/audio/image.
    """
    if not prices:
        return {"saved_usd": Decimal(0), "cached_tokens": 0}
    values = ", ".join("(?, ?, ?::DECIMAL(18, 12))" for _ in prices)
    sql, params = scoped(
        f,
        f"""
        , p(price_entry, kind, saved) AS (VALUES {values})
        , c AS (
            SELECT costs.price_entry, costs.uplift_factor, k.kind,
                   coalesce(TRY_CAST(json_extract_string(costs.tokens, '$.' || k.kind || '_cached')
                                     AS BIGINT), 0) AS cached
            FROM costs JOIN s USING (session_id)
            CROSS JOIN (VALUES ('text'), ('audio'), ('image')) k(kind)
            WHERE costs.kind = 'response'
        )
        SELECT coalesce(sum(c.cached * p.saved
                            * coalesce(TRY_CAST(c.uplift_factor AS DECIMAL(9, 4)), 1)), 0)
                   ::DECIMAL(18, 9) AS saved_usd,
               coalesce(sum(c.cached), 0)::BIGINT AS cached_tokens
        FROM c LEFT JOIN p USING (price_entry, kind)
        """,
        [v for row in prices for v in row],
    )
    return wh.one(sql, params)


def unplayed_audio(wh: Warehouse, f: Filters) -> dict[str, Any]:
    sql, params = scoped(
        f,
        """
        SELECT coalesce(sum(sc.unplayed_audio_usd), 0)::DECIMAL(18, 9) AS usd,
               coalesce(sum(sc.unplayed_audio_s), 0)::DOUBLE AS seconds
        FROM session_costs sc JOIN s USING (session_id)
        """,
    )
    return wh.one(sql, params)


def unpriced_records(wh: Warehouse, f: Filters) -> pd.DataFrame:
    """Cost records that could not be (fully) priced, by model: unknown models and gaps."""
    sql, params = scoped(
        f,
        """
        SELECT coalesce(costs.model, '(none)') AS model, count(*) AS records,
               count(DISTINCT costs.session_id) AS sessions,
               any_value(costs.warnings) AS example_warning
        FROM costs JOIN s USING (session_id)
        WHERE costs.price_entry IS NULL OR costs.cost_usd IS NULL
           OR NOT coalesce(costs.complete, TRUE)
        GROUP BY 1 ORDER BY 2 DESC
        """,
    )
    return wh.frame(sql, params)


def budget_findings(wh: Warehouse, f: Filters) -> pd.DataFrame:
    """The pipeline's own budget findings (budget.daily, .monthly, .per_session), newest first.

    Tenant-wide ones have no session, so they are filtered by tenant and date, not `sessions`.
    """
    conditions = ["starts_with(fi.rule_id, 'budget.')"]
    params: list[Any] = []
    if f.tenants:
        conditions.append("list_contains(?::VARCHAR[], fi.tenant)")
        params.append(list(f.tenants))
    if f.start:
        conditions.append("fi.observed_at::DATE >= ?")
        params.append(f.start)
    if f.end:
        conditions.append("fi.observed_at::DATE <= ?")
        params.append(f.end)
    sql = f"""
        SELECT fi.observed_at, fi.tenant, fi.rule_id, fi.severity, fi.session_id, fi.message
        FROM findings fi WHERE {" AND ".join(conditions)}
        ORDER BY fi.observed_at DESC LIMIT 200
    """
    return wh.frame(sql, params)


def budget_spend(wh: Warehouse, tenants: Sequence[str], day: date) -> list[dict[str, Any]]:
    """Per tenant: spend on `day`, in its month, and its most expensive session that month.

    Days are those the budget findings use (warehouse/budgets.py): the UTC date each cost was
    observed, and the cost record's tenant; so a call over midnight counts on both days.
    """
    if not tenants:
        return []
    sql = """
        WITH c AS (
            SELECT tenant, CAST(timezone('UTC', observed_at) AS DATE) AS date, session_id,
                   sum(cost_usd) AS usd
            FROM costs
            WHERE list_contains(?::VARCHAR[], tenant)
              AND CAST(timezone('UTC', observed_at) AS DATE)
                  BETWEEN date_trunc('month', ?::DATE) AND ?::DATE
            GROUP BY ALL
        )
        SELECT t.tenant,
               coalesce(sum(c.usd) FILTER (WHERE c.date = ?::DATE), 0)::DECIMAL(18, 9) AS day_usd,
               coalesce(sum(c.usd), 0)::DECIMAL(18, 9) AS month_usd,
               coalesce(max(c.usd), 0)::DECIMAL(18, 9) AS max_session_usd
        FROM (SELECT unnest(?::VARCHAR[]) AS tenant) t LEFT JOIN c USING (tenant)
        GROUP BY 1 ORDER BY 1
    """
    return wh.rows(sql, [list(tenants), day, day, day, list(tenants)])


def sessions_over(wh: Warehouse, tenant: str, day: date, limit_usd: Decimal) -> int:
    """Sessions of `tenant` in `day`'s month that cost more than `limit_usd`."""
    sql = """
        SELECT count(*) AS n FROM (
            SELECT s.session_id FROM costs JOIN sessions s USING (session_id)
            WHERE s.tenant = ? AND s.date BETWEEN date_trunc('month', ?::DATE) AND ?::DATE
            GROUP BY 1 HAVING sum(costs.cost_usd) > ?::DECIMAL(18, 9)
        )
    """
    return int(wh.one(sql, [tenant, day, day, limit_usd])["n"])


# -- quality ------------------------------------------------------------------------------------


def latency_summary(wh: Warehouse, f: Filters) -> dict[str, Any]:
    sql, params = scoped(
        f,
        """
        SELECT quantile_cont(l.ttf_audio_ms, 0.5) AS ttfa_p50,
               quantile_cont(l.ttf_audio_ms, 0.95) AS ttfa_p95,
               quantile_cont(l.speech_stopped_to_first_audio_ms, 0.5) AS turn_gap_p50,
               count(*) AS responses,
               avg(CASE WHEN l.interrupted THEN 1.0 ELSE 0.0 END) AS interruption_rate
        FROM latency l JOIN s USING (session_id)
        """,
    )
    return wh.one(sql, params)


def latency_by_day(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT s.date AS day, quantile_cont(l.ttf_audio_ms, 0.5) AS p50_ms,
               quantile_cont(l.ttf_audio_ms, 0.95) AS p95_ms
        FROM latency l JOIN s USING (session_id)
        GROUP BY 1 ORDER BY 1
        """,
    )
    return wh.frame(sql, params)


def responses_not_completed(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT r.status, coalesce(r.status_reason, '(none)') AS reason, count(*) AS responses
        FROM responses r JOIN s USING (session_id)
        WHERE r.status IS DISTINCT FROM 'completed'
        GROUP BY 1, 2 ORDER BY 3 DESC
        """,
    )
    return wh.frame(sql, params)


def errors_by_kind(wh: Warehouse, f: Filters) -> pd.DataFrame:
    """Error events, failed/cancelled/incomplete responses and dead letters, by kind and code."""
    where, where_params = f.sessions_where()
    sql = f"""
        SELECT e.kind, coalesce(e.code, '(none)') AS code, count(*) AS occurrences,
               any_value(e.message) AS example
        FROM errors e
        WHERE e.session_id IN (SELECT session_id FROM sessions WHERE {where})
           OR (e.kind = 'dead_letter' AND e.session_id IS NULL
               AND (?::DATE IS NULL OR e.observed_at::DATE >= ?::DATE)
               AND (?::DATE IS NULL OR e.observed_at::DATE <= ?::DATE))
        GROUP BY 1, 2 ORDER BY 3 DESC
    """
    return wh.frame(sql, [*where_params, f.start, f.start, f.end, f.end])


def context_use(wh: Warehouse, f: Filters) -> dict[str, Any]:
    sql, params = scoped(
        f,
        """
        SELECT quantile_cont(r.context_used_ratio, 0.5) AS p50,
               quantile_cont(r.context_used_ratio, 0.95) AS p95,
               max(r.context_used_ratio) AS max_ratio,
               count(*) FILTER (WHERE r.truncation_inferred) AS truncations,
               coalesce(sum(r.estimated_tokens_dropped), 0)::BIGINT AS tokens_dropped
        FROM responses r JOIN s USING (session_id)
        """,
    )
    return wh.one(sql, params)


def context_histogram(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT least(floor(r.context_used_ratio * 10), 9) / 10 AS bucket, count(*) AS responses
        FROM responses r JOIN s USING (session_id)
        WHERE r.context_used_ratio IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """,
    )
    return wh.frame(sql, params)


def tool_call_stats(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT t.kind, coalesce(t.name, '(unnamed)') AS name, count(*) AS calls,
               avg(CASE WHEN t.outcome IN ('success', 'ok', 'completed') THEN 1.0 ELSE 0.0 END)
                   AS success_rate,
               quantile_cont(t.duration_ms, 0.5) AS p50_ms,
               quantile_cont(t.duration_ms, 0.95) AS p95_ms
        FROM tool_calls t JOIN s USING (session_id)
        GROUP BY 1, 2 ORDER BY 3 DESC
        """,
    )
    return wh.frame(sql, params)


# -- compliance ---------------------------------------------------------------------------------


def verdicts_by_day(wh: Warehouse, f: Filters) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT s.date AS day, coalesce(s.verdict, 'open') AS verdict, count(*) AS sessions
        FROM s GROUP BY 1, 2 ORDER BY 1, 2
        """,
    )
    return wh.frame(sql, params)


def compliance_totals(wh: Warehouse, f: Filters) -> dict[str, Any]:
    """Judged sessions, how many disclosed being an AI (no ai_disclosure finding), verdicts."""
    sql, params = scoped(
        f,
        """
        , undisclosed AS (
            SELECT DISTINCT fi.session_id FROM findings fi JOIN s USING (session_id)
            WHERE fi.rule_id = 'ai_disclosure'
        )
        SELECT count(*) FILTER (WHERE s.verdict IS NOT NULL) AS judged,
               count(*) FILTER (WHERE s.verdict IS NOT NULL
                                AND s.session_id NOT IN (SELECT session_id FROM undisclosed))
                   AS disclosed,
               count(*) FILTER (WHERE s.verdict = 'pass') AS passed,
               count(*) FILTER (WHERE s.verdict = 'fail') AS failed,
               count(*) FILTER (WHERE s.verdict = 'needs_review') AS needs_review
        FROM s
        """,
    )
    return wh.one(sql, params)


def findings_by_rule(wh: Warehouse, f: Filters, *, deception_and_safety: bool) -> pd.DataFrame:
    condition = (
        "(fi.rule_id IN (SELECT unnest(?::VARCHAR[])) OR starts_with(fi.rule_id, ?))"
        if deception_and_safety
        else "TRUE"
    )
    extra = [list(DECEPTION_RULES), SAFETY_PREFIX] if deception_and_safety else []
    sql, params = scoped(
        f,
        f"""
        SELECT fi.rule_id, fi.severity, count(*) AS findings,
               count(DISTINCT fi.session_id) AS sessions
        FROM findings fi JOIN s USING (session_id)
        WHERE {condition}
        GROUP BY 1, 2 ORDER BY 3 DESC, 1
        """,
        extra,
    )
    return wh.frame(sql, params)


def pii_by_type(wh: Warehouse, f: Filters) -> pd.DataFrame:
    """Redaction placeholders found in the turns' text, by entity type."""
    sql, params = scoped(
        f,
        """
        , found AS (
            SELECT t.session_id, unnest(regexp_extract_all(t.text, ?, 0)) AS placeholder
            FROM turns t JOIN s USING (session_id)
            WHERE t.text LIKE '%<%>%'
        )
        SELECT regexp_extract(placeholder, ?, 1) AS entity_type, count(*) AS mentions,
               count(DISTINCT placeholder) AS distinct_values,
               count(DISTINCT session_id) AS sessions
        FROM found GROUP BY 1 ORDER BY 2 DESC, 1
        """,
        [PLACEHOLDER_PATTERN, PLACEHOLDER_PATTERN],
    )
    return wh.frame(sql, params)


def findings_list(
    wh: Warehouse,
    f: Filters,
    *,
    rule_ids: Sequence[str] = (),
    exclude: Sequence[str] = (),
    open_only: bool = True,
) -> pd.DataFrame:
    """Findings (optionally of some rules), newest first, without the excluded ids."""
    rules = "list_contains(?::VARCHAR[], fi.rule_id)" if rule_ids else "TRUE"
    status = "coalesce(fi.status, 'open') = 'open'" if open_only else "TRUE"
    sql, params = scoped(
        f,
        f"""
        SELECT fi.finding_id, fi.observed_at, fi.session_id, s.tenant, fi.rule_id, fi.severity,
               fi.action, fi.message
        FROM findings fi JOIN s USING (session_id)
        WHERE {rules} AND NOT list_contains(?::VARCHAR[], fi.finding_id)
          AND {status}
        ORDER BY fi.observed_at DESC LIMIT 500
        """,
        [*([list(rule_ids)] if rule_ids else []), list(exclude)],
    )
    return wh.frame(sql, params)


# -- EU residency -------------------------------------------------------------------------------


def residency_by_tenant(wh: Warehouse, f: Filters, eligible: Sequence[str]) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT s.tenant, s.region, count(*) AS sessions,
               count(*) FILTER (WHERE s.eu_residency = 'violation') AS violations,
               count(*) FILTER (WHERE s.eu_residency = 'ok') AS ok,
               count(*) FILTER (WHERE NOT list_contains(?::VARCHAR[], s.model)) AS ineligible_model,
               string_agg(DISTINCT s.upstream_host, ', ' ORDER BY s.upstream_host) AS hosts
        FROM s GROUP BY 1, 2 ORDER BY 4 DESC, 1
        """,
        [list(eligible)],
    )
    return wh.frame(sql, params)


def residency_sessions(wh: Warehouse, f: Filters, eligible: Sequence[str]) -> pd.DataFrame:
    sql, params = scoped(
        f,
        """
        SELECT s.session_id, s.date, s.tenant, s.region, s.upstream_host, s.model,
               list_contains(?::VARCHAR[], s.model) AS eligible_model,
               coalesce(s.eu_residency, 'not_applicable') AS eu_residency,
               (SELECT count(*) FROM findings fi
                WHERE fi.session_id = s.session_id AND fi.rule_id = 'eu_residency') AS violations
        FROM s
        ORDER BY (s.eu_residency = 'violation') DESC, s.started_at DESC LIMIT 1000
        """,
        [list(eligible)],
    )
    return wh.frame(sql, params)


# -- transcript audit ---------------------------------------------------------------------------


def find_sessions(
    wh: Warehouse,
    f: Filters,
    *,
    session_id: str = "",
    day: date | None = None,
    rule_id: str = "",
    tenant: str = "",
) -> pd.DataFrame:
    """Sessions matching the search, newest first (at most 200)."""
    sql, params = scoped(
        f,
        """
        SELECT s.session_id, s.started_at, s.tenant, s.app, s.model, s.verdict,
               s.cost_usd::DOUBLE AS cost_usd, s.duration_s
        FROM s
        WHERE (? = '' OR s.session_id ILIKE ? || '%')
          AND (?::DATE IS NULL OR s.date = ?::DATE)
          AND (? = '' OR s.tenant = ?)
          AND (? = '' OR EXISTS (SELECT 1 FROM findings fi
                                 WHERE fi.session_id = s.session_id AND fi.rule_id = ?))
        ORDER BY s.started_at DESC LIMIT 200
        """,
        [session_id, session_id, day, day, tenant, tenant, rule_id, rule_id],
    )
    return wh.frame(sql, params)


def rule_ids(wh: Warehouse) -> list[str]:
    return [r["rule_id"] for r in wh.rows("SELECT DISTINCT rule_id FROM findings ORDER BY 1")]


def session_record(wh: Warehouse, session_id: str) -> dict[str, Any] | None:
    """Everything an audit record holds for one session (redacted text, findings, costs)."""
    session = wh.rows(
        """SELECT session_id, tenant, app, region, upstream_host, model, language, started_at,
                  ended_at, duration_s, user_turns, assistant_turns, events, verdict,
                  deciding_rules, cost_usd, eu_residency
           FROM sessions WHERE session_id = ?""",
        [session_id],
    )
    if not session:
        return None
    turns = wh.rows(
        """SELECT turn_index, role, item_id, response_id, text, started_at, ended_at, audio_ms, seq
           FROM turns WHERE session_id = ? ORDER BY turn_index""",
        [session_id],
    )
    findings = wh.rows(
        """SELECT finding_id, rule_id, severity, action, status, message, evidence, observed_at
           FROM findings WHERE session_id = ? ORDER BY observed_at, rule_id""",
        [session_id],
    )
    costs = wh.rows(
        """SELECT r.response_id, r.model, r.status, r.status_reason, r.input_tokens,
                  r.output_tokens, r.cached_tokens, r.cost_usd, r.context_used_ratio,
                  r.truncation_inferred
           FROM responses r WHERE r.session_id = ? ORDER BY r.created_at""",
        [session_id],
    )
    totals = wh.one(
        """SELECT total_usd, unplayed_audio_s, unplayed_audio_usd
           FROM session_costs WHERE session_id = ?""",
        [session_id],
    )
    return {
        "session": session[0],
        "turns": turns,
        "findings": findings,
        "responses": costs,
        "costs": totals,
    }


# -- SQL page -----------------------------------------------------------------------------------


def run_user_query(settings: Settings, sql: str) -> pd.DataFrame:
    """One read-only SELECT from the SQL page: the warehouse's own user-query path (statement
    check, file access limited to the Parquet root); at most SQL_ROW_LIMIT rows."""
    try:
        names, rows = read_query(settings, sql, max_rows=SQL_ROW_LIMIT)
    except WarehouseError as exc:
        raise WarehouseUnavailable(str(exc).splitlines()[0]) from None
    return pd.DataFrame(rows, columns=names)
