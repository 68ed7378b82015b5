"""Logins, roles and the `voxledger dashboard` command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bcrypt
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from voxledger.cli import cli
from voxledger.config import Settings
from voxledger.dashboard import auth
from voxledger.dashboard.cli import APP, streamlit_command

APP_FILE = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def settings_with(users: dict[str, tuple[str, str]]) -> Settings:
    return Settings(
        dashboard={"users": {n: {"role": r, "password_bcrypt": h} for n, (r, h) in users.items()}}
    )


def test_a_hashed_password_logs_in_with_its_role_and_nothing_else() -> None:
    hashed = auth.hash_password("correct horse")
    settings = settings_with({"dana": ("compliance", hashed), "broken": ("admin", "not-bcrypt")})
    assert auth.authenticate(settings, "dana", "correct horse") == "compliance"
    assert auth.authenticate(settings, " dana ", "correct horse") == "compliance"
    assert auth.authenticate(settings, "dana", "wrong") is None
    assert auth.authenticate(settings, "nobody", "correct horse") is None
    assert auth.authenticate(settings, "broken", "not-bcrypt") is None  # bad hash: no login


def test_roles_see_their_pages_and_finance_never_reads_transcripts() -> None:
    assert set(auth.ACCESS["finance"]) == {"spend", "residency"}
    assert set(auth.ACCESS["compliance"]) == {
        "compliance",
        "residency",
        "transcript",
        "access_audit",
    }
    assert set(auth.ACCESS["engineer"]) == {"quality", "sql", "residency"}
    assert set(auth.ACCESS["admin"]) == set(auth.PAGES)
    assert not auth.allowed("finance", "transcript")
    assert not auth.allowed(None, "spend")
    assert not auth.allowed("intruder", "spend")


def test_demo_config_users_have_documented_passwords() -> None:
    text = (APP_FILE.parents[1] / "examples" / "voxledger.toml").read_text()
    import tomllib

    users = tomllib.loads(text)["dashboard"]["users"]
    assert {u["role"] for u in users.values()} == {"finance", "compliance", "engineer", "admin"}
    for name, user in users.items():
        assert bcrypt.checkpw(f"{name}-demo".encode(), user["password_bcrypt"].encode())


def test_login_form_logs_in_and_rejects_a_wrong_password(dashboard_env: Any) -> None:
    at = AppTest.from_file(str(APP_FILE), default_timeout=60).run()
    assert not at.metric  # nothing but the login form before a login
    at.text_input(key="login_name").input("engineer")
    at.text_input(key="login_password").input("wrong-pass")
    at.button[0].click().run()
    assert "Unknown user or wrong password." in [e.value for e in at.error]
    assert "user" not in at.session_state and not at.metric
    at.text_input(key="login_password").input("engineer-pass")
    at.button[0].click().run()
    assert at.session_state["user"] == "engineer"
    assert "Time to first audio p50" in [m.label for m in at.metric]  # the engineer's home


def test_hash_password_prints_a_bcrypt_hash() -> None:
    result = CliRunner().invoke(
        cli, ["dashboard", "hash-password"], input="s3cret-pass\ns3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    hashed = result.output.strip().splitlines()[-1]
    assert bcrypt.checkpw(b"s3cret-pass", hashed.encode())
    assert "s3cret-pass" not in result.output.replace("Password", "")


def test_hash_password_refuses_a_short_password() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "hash-password", "--password", "short"])
    assert result.exit_code == 2
    assert "at least 8 characters" in result.output


def test_dashboard_command_exits_2_on_a_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "voxledger.toml"
    bad.write_text("[dashboard]\nport = 'eighty'\n")
    monkeypatch.setenv("VOXLEDGER_CONFIG", str(bad))
    result = CliRunner().invoke(cli, ["dashboard"])
    assert result.exit_code == 2
    assert "dashboard.port" in result.output


def test_streamlit_runs_headless_without_usage_statistics() -> None:
    command = streamlit_command(APP, "0.0.0.0", 8600)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP_FILE)]
    assert "--server.headless=true" in command
    assert "--browser.gatherUsageStats=false" in command
    assert "--server.port=8600" in command and "--server.address=0.0.0.0" in command
