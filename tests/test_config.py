"""Settings: file, environment overrides, tenants, and secrets that never print."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from voxledger.cli import cli
from voxledger.config import Settings, hash_client_key, load_settings
from voxledger.errors import ConfigError


def test_builtin_defaults_hold_no_tenant(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXLEDGER_CONFIG")
    monkeypatch.delenv("VOXLEDGER_DATA_DIR")
    monkeypatch.chdir(demo_env)  # no ./voxledger.toml here
    settings = load_settings()
    assert settings.tenants == ()
    assert settings.tenant_for_key("vx-demo-us") is None
    assert settings.data_dir == Path(".voxledger")
    assert settings.topics.raw.name == "voxledger.events.raw"


def test_local_voxledger_toml_is_read(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXLEDGER_CONFIG")
    monkeypatch.delenv("VOXLEDGER_DATA_DIR")
    monkeypatch.chdir(demo_env)
    (demo_env / "voxledger.toml").write_text('data_dir = "elsewhere"\n')
    assert load_settings().data_dir == Path("elsewhere")


def test_demo_tenants_from_example_config(demo_env: Path) -> None:
    settings = load_settings()
    us, eu = settings.tenant_for_key("vx-demo-us"), settings.tenant_for_key("vx-demo-eu")
    assert (us.name, us.region) == ("acme-us", "us")
    assert (eu.name, eu.region) == ("acme-eu", "eu")
    assert settings.tenant_for_key("vx-demo-xx") is None
    assert us.upstream_url() == "wss://api.openai.com/v1"
    assert "Espresso 900" in us.redaction.allow.terms  # brand and product are never PII
    assert eu.upstream_url() == "wss://eu.api.openai.com/v1"


def test_client_keys_are_stored_hashed(demo_env: Path) -> None:
    text = Path(os.environ["VOXLEDGER_CONFIG"]).read_text()
    assert '"vx-demo-us"' not in text and hash_client_key("vx-demo-us") in text


def test_environment_overrides_file(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXLEDGER_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("VOXLEDGER_TOPICS__RAW__NAME", "acme.raw")
    monkeypatch.setenv("VOXLEDGER_TOPICS__RAW__PARTITIONS", "12")
    settings = load_settings()
    assert settings.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert (settings.topics.raw.name, settings.topics.raw.partitions) == ("acme.raw", 12)
    assert settings.topics.raw.retention_ms == 259200000  # the file's other keys still apply
    assert settings.data_dir == demo_env / "data"
    assert len(settings.tenants) == 2


def test_openai_key_from_env_or_file_never_printed(
    demo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value")
    tenant = load_settings().tenant_named("acme-us")
    key = tenant.upstream.api_key()
    assert key.get_secret_value() == "sk-test-secret-value"
    assert "sk-test" not in repr(key) and "sk-test" not in str(key)

    key_file = demo_env / "key.txt"
    key_file.write_text("sk-from-file\n")
    key_file.chmod(0o600)
    from_file = Settings.model_validate(
        {"tenants": [{**tenant.model_dump(), "upstream": {"api_key_file": str(key_file)}}]}
    ).tenants[0]
    assert from_file.upstream.api_key().get_secret_value() == "sk-from-file"
    key_file.chmod(0o644)  # readable by others: refused, and the key is not in the message
    with pytest.raises(ConfigError, match=r"can be read by others \(mode 644\): chmod 600") as exc:
        from_file.upstream.api_key()
    assert "sk-from-file" not in str(exc.value)

    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0 and "sk-test" not in result.output


def test_missing_key_env_is_a_clear_error(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY_EU", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY_EU is not set"):
        load_settings().tenant_named("acme-eu").upstream.api_key()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_dir = \n", "is not valid TOML"),
        (
            "[[tenants]]\nname = 'x'\napp = 'a'\nregion = 'mars'\nclient_key_sha256 = '00'\n",
            "tenants.0.region",
        ),
        ("surprise = 1\n", "surprise: Extra inputs are not permitted"),
        (
            "[[tenants]]\nname = 'x'\napp = 'a'\nregion = 'us'\nclient_key_sha256 = '00'\n"
            "[tenants.redaction.allow]\npatterns = ['Acme (']\n",
            "allow pattern 'Acme (' is not a valid regex",
        ),
    ],
)
def test_bad_config_file_is_a_clear_cli_error(
    demo_env: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = demo_env / "bad.toml"
    path.write_text(text)
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(path))
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_config_env_var_pointing_nowhere(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(demo_env / "nope.toml"))
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 2
    assert "which is not a file" in result.output
