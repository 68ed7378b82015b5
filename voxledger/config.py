"""Settings: one frozen model read from voxledger.toml, with VOXLEDGER_* environment overrides."""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import regex
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from voxledger.errors import ConfigError

CONFIG_ENV_VAR = "VOXLEDGER_CONFIG"
DEFAULT_CONFIG_FILE = "voxledger.toml"

OPENAI_HOSTS = {"us": "api.openai.com", "eu": "eu.api.openai.com"}

Region = Literal["us", "eu"]


def hash_client_key(client_key: str) -> str:
    """The form a tenant's client key is stored in: its SHA-256, hex."""
    return hashlib.sha256(client_key.encode()).hexdigest()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopicSpec(_Frozen):
    name: str
    partitions: int = Field(4, ge=1)
    # None keeps the broker's default; the raw topic holds PII, so it is kept briefly.
    retention_ms: int | None = None


class Topics(_Frozen):
    raw: TopicSpec = TopicSpec(name="voxledger.events.raw", retention_ms=3 * 24 * 3600 * 1000)
    redacted: TopicSpec = TopicSpec(name="voxledger.events.redacted", retention_ms=-1)
    findings: TopicSpec = TopicSpec(name="voxledger.findings", retention_ms=-1)
    costs: TopicSpec = TopicSpec(name="voxledger.costs", retention_ms=-1)
    deadletter: TopicSpec = TopicSpec(name="voxledger.deadletter", retention_ms=-1)
    replication_factor: int = Field(1, ge=1)

    def all(self) -> list[TopicSpec]:
        return [self.raw, self.redacted, self.findings, self.costs, self.deadletter]


class Upstream(_Frozen):
    """Where a tenant's sessions go, and where its real OpenAI key comes from (never the config)."""

    url: str | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None

    def api_key(self) -> SecretStr | None:
        """The tenant's OpenAI key, read at use time; None when none is configured."""
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if not value:
                raise ConfigError(f"environment variable {self.api_key_env} is not set")
            return SecretStr(value.strip())
        if self.api_key_file:
            try:
                mode = self.api_key_file.stat().st_mode
                if mode & 0o077:  # a key others can read is a leaked key: refuse it
                    raise ConfigError(
                        f"API key file {self.api_key_file} can be read by others "
                        f"(mode {mode & 0o777:o}): chmod 600 it"
                    )
                return SecretStr(self.api_key_file.read_text().strip())
            except OSError as exc:
                raise ConfigError(
                    f"cannot read API key file {self.api_key_file}: {exc.strerror}"
                ) from None
        return None


class Budgets(_Frozen):
    """A tenant's spend limits in USD; crossing 80 % and 100 % of one raises a finding."""

    daily_usd: Decimal | None = Field(None, gt=0)
    monthly_usd: Decimal | None = Field(None, gt=0)
    per_session_usd: Decimal | None = Field(None, gt=0)


class RedactionAllow(_Frozen):
    """Terms and regex patterns that are never PII for a tenant: brands, products, personas."""

    terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"allow pattern {pattern!r} is not a valid regex: {exc}") from None
        return patterns


class TenantRedaction(_Frozen):
    allow: RedactionAllow = RedactionAllow()


class Tenant(_Frozen):
    name: str
    app: str
    region: Region
    language: str | None = None  # transcripts' language (en, es, fr, de, ja); else detected
    client_key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    upstream: Upstream = Upstream()
    budgets: Budgets = Budgets()
    policy_file: Path | None = None  # overrides layered on the default policy for this tenant
    redaction: TenantRedaction = TenantRedaction()

    def accepts(self, client_key: str) -> bool:
        return hmac.compare_digest(hash_client_key(client_key), self.client_key_sha256)

    def upstream_url(self) -> str:
        """The Realtime endpoint base for this tenant: its own URL, else by region."""
        return self.upstream.url or f"wss://{OPENAI_HOSTS[self.region]}/v1"


class EmbeddedBroker(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)


class ProxySettings(_Frozen):
    """Limits of the capture proxy (`voxledger proxy`); each breach closes with a clear reason."""

    max_frame_bytes: int = Field(16 * 1024 * 1024, ge=1024)  # Realtime audio appends reach 15 MiB
    max_sessions_per_tenant: int = Field(200, ge=1)
    # New sessions a tenant may open per minute (a bucket of this many, refilled evenly).
    session_starts_per_minute: int = Field(600, ge=1)
    idle_timeout_s: float = Field(600.0, gt=0)
    spool_max_bytes: int = Field(1024**3, ge=1)  # beyond this, new sessions are refused


class ProcessorSettings(_Frozen):
    """The stream processors (`voxledger processors`)."""

    # HMAC key for per-session pseudonyms; without one, a key is generated under the data dir.
    pseudonym_secret: SecretStr | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)  # worker i serves on metrics_port + i
    session_timeout_s: float = Field(6.0, gt=0)  # consumer-group session timeout
    commit_interval_s: float = Field(1.0, gt=0)
    # A session silent this long has its held deltas released (redacted as assembled so far).
    idle_release_s: float = Field(60.0, gt=0)
    policy_file: Path | None = None  # default: the shipped policies/default.yaml
    price_catalog: Path | None = None  # default: the shipped prices/catalog.yaml


class WarehouseSettings(_Frozen):
    """The Parquet warehouse (`voxledger sink`, `sql`, `rebuild`, `erase`)."""

    # A local directory or an object-storage URL (s3://bucket/prefix); default: data_dir/warehouse.
    url: str | None = None
    # The DuckDB file holding the views; default: data_dir/warehouse.duckdb.
    database: Path | None = None
    flush_interval_s: float = Field(2.0, gt=0)  # freshness: a batch is written at least this often
    flush_max_rows: int = Field(50_000, ge=1)
    # The dashboard's mart (warehouse/marts.py): how often a refresher lists the files, and
    # the least age of a mart before it is rebuilt (builds also take at most a quarter of the time).
    mart_check_every_s: float = Field(5.0, gt=0)
    mart_min_age_s: float = Field(30.0, ge=0)
    # Object-storage options for pyarrow's S3FileSystem (endpoint_override, region...).
    s3_endpoint: str | None = None
    s3_region: str | None = None


Role = Literal["finance", "compliance", "engineer", "admin"]


class DashboardUser(_Frozen):
    role: Role
    password_bcrypt: str  # `voxledger dashboard hash-password` prints one


class DashboardSettings(_Frozen):
    """The Streamlit dashboard (`voxledger dashboard`)."""

    host: str = "127.0.0.1"
    port: int = Field(8501, ge=1, le=65535)
    cache_ttl_s: float = Field(10.0, ge=0)
    users: dict[str, DashboardUser] = {}


class Settings(BaseSettings):
    """Every setting VoxLedger reads; defaults hold no tenant, so no key is accepted by accident."""

    model_config = SettingsConfigDict(
        env_prefix="VOXLEDGER_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    bootstrap_servers: str | None = None
    data_dir: Path = Path(".voxledger")
    topics: Topics = Topics()
    broker: EmbeddedBroker = EmbeddedBroker()
    tenants: tuple[Tenant, ...] = ()
    proxy: ProxySettings = ProxySettings()
    processors: ProcessorSettings = ProcessorSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    dashboard: DashboardSettings = DashboardSettings()

    @model_validator(mode="after")
    def _unique_tenants(self) -> Settings:
        names = [t.name for t in self.tenants]
        if len(names) != len(set(names)):
            raise ValueError("tenant names must be unique")
        keys = [t.client_key_sha256 for t in self.tenants]
        if len(keys) != len(set(keys)):
            raise ValueError("two tenants share one client key")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init values.
        return env_settings, init_settings

    def tenant_for_key(self, client_key: str) -> Tenant | None:
        return next((t for t in self.tenants if t.accepts(client_key)), None)

    def tenant_named(self, name: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.name == name:
                return tenant
        known = ", ".join(t.name for t in self.tenants) or "none configured"
        raise ConfigError(f"unknown tenant {name!r} (known: {known})")


def env_var_names(model: type[BaseModel] = Settings, prefix: str = "VOXLEDGER_") -> set[str]:
    """Every environment variable the settings model reads (nested keys joined with "__")."""
    names = {CONFIG_ENV_VAR} if model is Settings else set()
    for field_name, field in model.model_fields.items():
        name = f"{prefix}{field_name.upper()}"
        names.add(name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= env_var_names(annotation, f"{name}__")
    return names


def config_path() -> Path | None:
    """The config file in use: $VOXLEDGER_CONFIG, else ./voxledger.toml, else none."""
    explicit = os.environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV_VAR} points at {path}, which is not a file")
        return path
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.is_file() else None


def load_settings(path: Path | None = None) -> Settings:
    """Read settings from `path` (or the file config_path() finds) and the environment."""
    path = path or config_path()
    values = _read_toml(path) if path else {}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "settings"
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors(include_input=False)  # never echo values: they may be secrets
    )
    return f"invalid configuration in {where}: {problems}"
