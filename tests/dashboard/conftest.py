"""A warehouse built from real pipeline output, and a config the dashboard reads it with.

The sessions (recorded logs and simulator scenarios) run offline through the real
redaction, policy and cost processors; the sink's own `record_to_row` writes them as Parquet
(tests/warehouse/conftest.py's `build_warehouse`). The config adds the tenants with budgets
and one dashboard user per role (password "<role>-pass").
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import bcrypt
import duckdb
import pytest
from streamlit.components.v2 import manifest_scanner

from voxledger.config import Settings, load_settings
from voxledger.warehouse.db import connect, refresh


def _warehouse_fixtures() -> ModuleType:
    """tests/warehouse/conftest.py, loaded by path: `warehouse` is also the layer's package."""
    path = Path(__file__).resolve().parents[1] / "warehouse" / "conftest.py"
    spec = importlib.util.spec_from_file_location("warehouse_test_fixtures", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_fixtures = _warehouse_fixtures()
_scan_component_manifests = manifest_scanner.scan_component_manifests
LOGS, SessionSpec, build_warehouse = (
    _fixtures.LOGS,
    _fixtures.SessionSpec,
    _fixtures.build_warehouse,
)

ROLES = ("finance", "compliance", "engineer", "admin")
DAY1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
US = {"tenant": "acme-us", "app": "support-bot"}
EU = {"tenant": "acme-eu", "app": "support-bot", "region": "eu"}
SESSIONS = (
    SessionSpec(
        "ga-support",
        log=LOGS / "ga_support_call.jsonl",
        upstream_host="eu.api.openai.com",
        model="gpt-realtime",
        **EU,
    ),
    SessionSpec("eu-wrong-host", scenario="eu_wrong_host_en", start=DAY1, **EU),
    SessionSpec("refund", scenario="refund_over_limit_en", start=DAY1, **US),
    SessionSpec("mcp-tools", scenario="mcp_tools_en", tenant="acme-us", app="voice-desk"),
    SessionSpec("pii", scenario="pii_heavy_en", start=DAY2, **US),
    SessionSpec("denies-ai", scenario="denies_ai_en", start=DAY2, **US),
    # Over midnight: its costs count on the day each was observed (as budgets judge them).
    SessionSpec(
        "barge-in", scenario="barge_in_en", start=DAY1.replace(hour=23, minute=59, second=59), **US
    ),
)
CONFIG = """\
data_dir = "{data_dir}"

[dashboard]
cache_ttl_s = 0

[[tenants]]
name = "acme-us"
app = "support-bot"
region = "us"
client_key_sha256 = "812f7d47cdbeaaf9a7584113c1ebe4fa239930639940b46d65ced890e49adac8"
budgets = {{ daily_usd = 0.2, monthly_usd = 0.4, per_session_usd = 0.1 }}

[[tenants]]
name = "acme-eu"
app = "support-bot"
region = "eu"
client_key_sha256 = "5d3010574beaa925a1280e520754637b16d70b47d2aca0ad5d895446a229628a"
budgets = {{ daily_usd = 1, monthly_usd = 20 }}
{users}
"""


@dataclass(frozen=True)
class DashboardWarehouse:
    """A built warehouse, the config file that points at it, and its data dir."""

    config: Path
    data_dir: Path

    def env(self) -> dict[str, str]:
        """The environment a dashboard process (or AppTest) needs: this config, nothing else."""
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXLEDGER_")}
        return {**clean, "VOXLEDGER_CONFIG": str(self.config)}

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """The same views the dashboard reads, queried directly (the tests' expected values)."""
        con = connect(self.settings(), read_only=True)
        try:
            return con.execute(query, params or []).fetchall()
        finally:
            con.close()

    def settings(self) -> Settings:
        return load_settings(self.config)

    def audit_rows(self) -> list[tuple]:
        path = self.data_dir / "dashboard-audit.duckdb"
        if not path.exists():
            return []
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute("SELECT who, role, action, target FROM access_audit").fetchall()
        finally:
            con.close()


def _users() -> str:
    # Few bcrypt rounds: the tests log in often; the demo config uses the default cost.
    blocks = []
    for role in ROLES:
        hashed = bcrypt.hashpw(f"{role}-pass".encode(), bcrypt.gensalt(rounds=4)).decode()
        blocks.append(
            f'\n[dashboard.users.{role}]\nrole = "{role}"\npassword_bcrypt = "{hashed}"\n'
        )
    return "".join(blocks)


@pytest.fixture(scope="session")
def dashboard_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DashboardWarehouse:
    data_dir = tmp_path_factory.mktemp("dashboard-data")
    build_warehouse(data_dir / "warehouse", SESSIONS)
    config = data_dir / "voxledger.toml"
    config.write_text(CONFIG.format(data_dir=data_dir, users=_users()))
    built = DashboardWarehouse(config, data_dir)
    refresh(load_settings(config))  # store the views once; readers then open read-only
    return built


@functools.cache
def _component_manifests() -> list:
    return _scan_component_manifests()


@pytest.fixture(autouse=True)
def _scan_components_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest rescans every installed distribution for v2 components per app (3 s each);
    the answer cannot change during the tests, so scan once."""
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", _component_manifests)


@pytest.fixture
def dashboard_env(
    dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DashboardWarehouse]:
    """This test's process reads the built warehouse's config; the access audit starts empty."""
    for name in list(os.environ):
        if name.startswith("VOXLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(dashboard_warehouse.config))
    audit = dashboard_warehouse.data_dir / "dashboard-audit.duckdb"
    audit.unlink(missing_ok=True)
    yield dashboard_warehouse


def pytest_configure(config: pytest.Config) -> None:
    # Not a skip: browser tests run in the normal test command; the mark lets one select them.
    config.addinivalue_line("markers", "browser: drives the real dashboard in headless chromium")
