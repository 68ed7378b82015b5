"""`voxledger cost` and `voxledger prices` driven as users do, through the `voxledger` group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from voxledger import cli as cli_module
from voxledger.processors.cost import CatalogError, load_catalog, parse_catalog
from voxledger.processors.cost.catalog import shipped_catalog_text

DATA = Path(__file__).parents[1] / "data"
LOGS = sorted((DATA / "realtime_logs").glob("*.jsonl"))


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(
        cli_module.LAYER_COMMANDS, "cost", "voxledger.processors.cost_cli:cost_command"
    )
    monkeypatch.setitem(
        cli_module.LAYER_COMMANDS, "prices", "voxledger.processors.cost_cli:prices_group"
    )
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli_module.cli, list(args), catch_exceptions=False)

    return invoke


@pytest.mark.parametrize("log", LOGS, ids=[p.name for p in LOGS])
def test_cost_every_recorded_log(run, log: Path) -> None:
    result = run("cost", str(log), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["catalog_version"] == load_catalog().version
    assert isinstance(report["total_usd"], str)
    assert report["responses"], "every recorded log has at least one response.done"
    table = run("cost", str(log))
    assert table.exit_code == 0 and "total_usd" in table.stdout


def test_cost_ga_log_hand_computed(run) -> None:
    report = json.loads(
        run("cost", str(DATA / "realtime_logs" / "ga_support_call.jsonl"), "--json").stdout
    )
    first = report["responses"][0]
    # resp_CGa9v7 on gpt-realtime-2025-08-28, priced as the gpt-realtime family:
    #   input text 231 of which 192 cached, audio 87 (none cached); output text 21, audio 73
    #   (231 − 192) × 4.00 = 156; 192 × 0.40 = 76.8; 87 × 32.00 = 2784;
    #   21 × 16.00 = 336; 73 × 64.00 = 4672 → 8024.8 / 1e6 = 0.0080248
    assert (first["response_id"], first["cost_usd"]) == ("resp_CGa9v7", "0.0080248")
    assert first["price_entry"] == "gpt-realtime@2025-08-28"
    # item_CGa9u1 on gpt-4o-mini-transcribe: 19 audio × 3.00 + 12 text out × 5.00 = 117
    #   → 0.000117
    (transcription,) = report["transcriptions"]
    assert transcription["cost_usd"] == "0.000117"


def test_cost_messy_log_prices_what_it_can(run) -> None:
    result = run("cost", str(DATA / "realtime_logs" / "messy_node_console.jsonl"), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    text = "\n".join(report["warnings"])
    assert "'[Object]'" in text  # the console printed the objects, not their fields
    assert "could not be read" in text
    (response,) = report["responses"]
    assert response["cost_usd"] is None  # its usage details were printed as [Object]
    assert len(report["sessions"]) >= 2  # the log holds more than one session


def test_cost_exported_envelopes_flags_bad_line(run) -> None:
    report = json.loads(
        run("cost", str(DATA / "realtime_logs" / "exported_envelopes.jsonl"), "--json").stdout
    )
    assert any(w.startswith("line 5: not a valid Envelope v1") for w in report["warnings"])
    assert [r["response_id"] for r in report["responses"]] == ["resp_X1"]


def test_cost_hand_made_sessions(run) -> None:
    ga = json.loads(run("cost", str(DATA / "cost" / "ga_session.jsonl"), "--json").stdout)
    assert ga["total_usd"] == "0.156928"  # see test_cost.py for the arithmetic
    assert ga["unplayed_audio"][0]["cost_usd"] == "0.0144"
    beta = json.loads(run("cost", str(DATA / "cost" / "beta_session.jsonl"), "--json").stdout)
    assert beta["total_usd"] == "0.07348"


def test_cost_region_option_applies_uplift(run, tmp_path: Path) -> None:
    log = tmp_path / "eu.jsonl"
    log.write_text(
        '{"type":"session.created","session":{"id":"s","model":"vox-test-new"}}\n'
        '{"type":"response.done","response":{"id":"r","status":"completed","usage":'
        '{"input_tokens":1000,"output_tokens":0,"input_token_details":{"text_tokens":1000,'
        '"audio_tokens":0,"cached_tokens":0},"output_token_details":{"text_tokens":0,'
        '"audio_tokens":0}}}}\n'
    )
    catalog = str(DATA / "cost" / "catalog_eu.yaml")
    plain = json.loads(run("cost", str(log), "--json", "--catalog", catalog).stdout)
    eu = json.loads(run("cost", str(log), "--json", "--catalog", catalog, "--region", "eu").stdout)
    # 1000 × 4.00 / 1e6 = 0.004; × 1.10 on the EU endpoint = 0.0044
    assert (plain["total_usd"], eu["total_usd"]) == ("0.004", "0.0044")


def test_cost_exit_2_on_unreadable_or_empty(run, tmp_path: Path) -> None:
    missing = run("cost", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\nnot json at all\n")
    result = run("cost", str(empty))
    assert result.exit_code == 2 and "holds no Realtime event" in result.output


def test_prices_lists_and_checks(run) -> None:
    listing = run("prices")
    assert listing.exit_code == 0
    assert "gpt-4o-realtime-preview-2024-10-01@2024-10-01" in listing.stdout
    assert "whisper-1@2023-03-01: 0.006 per minute" in listing.stdout
    check = run("prices", "check")
    assert check.exit_code == 0 and "valid" in check.stdout


def test_prices_check_names_line_and_field(run) -> None:
    result = run("prices", "check", str(DATA / "cost" / "catalog_bad.yaml"))
    assert result.exit_code == 2
    assert "line 18: models.0.prices.text_in: Input should be greater than or equal to 0" in (
        result.output
    )


def test_catalog_rules() -> None:
    text = shipped_catalog_text()
    with pytest.raises(
        CatalogError, match=r"line 22: models: Value error, entries for gpt-realtime overlap"
    ):
        parse_catalog(text.replace("  - id: gpt-realtime-mini\n", "  - id: gpt-realtime\n"))
    with pytest.raises(CatalogError, match=r"transcription_models\.0: Value error, give exactly"):
        parse_catalog(text.replace("usd_per_minute: 0.006", "notes: none"))
    with pytest.raises(CatalogError, match="not valid YAML"):
        parse_catalog("version: [")
    catalog = load_catalog()
    snapshot = catalog.resolve("gpt-4o-realtime-preview-2024-10-01")
    assert snapshot.prices.audio_in == 100 and snapshot.family == "gpt-4o-realtime-preview"
    assert catalog.context_window("gpt-4o-mini-realtime-preview") == 16000
