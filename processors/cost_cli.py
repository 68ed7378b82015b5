"""`voxledger cost` and `voxledger prices`: thin commands over the cost library."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("cost")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option(
    "--catalog",
    type=click.Path(path_type=Path),
    help="Price catalog YAML [default: the one shipped with VoxLedger].",
)
@click.option(
    "--region",
    help="Region of events that carry none (plain event logs), e.g. eu for the EU uplift.",
)
def cost_command(file: Path, as_json: bool, catalog: Path | None, region: str | None) -> None:
    """Cost a recorded session: JSONL of Realtime events or envelopes, one or more sessions.

    What cannot be priced (unknown models, missing usage, unreadable lines) is listed as a
    warning; the exit code is 0 unless FILE cannot be read or holds no event (2).
    """
    from voxledger.processors.cost import cost_log, load_catalog

    summary = cost_log(file, load_catalog(catalog), region=region)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        return
    report = summary.to_dict()
    rows = [
        (
            r["response_id"],
            r["model"] or "?",
            r["status"] or "?",
            str((r["usage"] or {}).get("input_tokens", "?")),
            str((r["usage"] or {}).get("output_tokens", "?")),
            r["context_used_ratio"] or "-",
            r["cost_usd"] if r["cost_usd"] is not None else "not priced",
        )
        for r in report["responses"]
    ]
    rows += [
        (t["item_id"], t["model"] or "?", "transcribed", "", "", "", t["cost_usd"] or "not priced")
        for t in report["transcriptions"]
    ]
    header = ("response/item", "model", "status", "in", "out", "context", "usd")
    _table([header, *rows])
    click.echo("")
    click.echo(f"total_usd  {report['total_usd']}   (catalog {report['catalog_version']})")
    for model, usd in report["by_model"].items():
        click.echo(f"  {model}: {usd}")
    for modality, usd in report["by_modality"].items():
        click.echo(f"  {modality}: {usd}")
    if report["unknown_models"]:
        click.echo(f"unknown models: {', '.join(report['unknown_models'])}")
    for t in report["truncations"]:
        click.echo(
            f"truncation inferred before {t['response_id']}: about "
            f"{t['estimated_tokens_dropped']} tokens dropped ({t['truncation_setting']})"
        )
    for u in report["unplayed_audio"]:
        click.echo(
            f"unplayed audio {u['item_id']}: {u['unplayed_seconds']} s, "
            f"{u['cost_usd'] or 'not priced'} usd"
        )
    for warning in report["warnings"]:
        click.echo(f"warning: {warning}", err=True)


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@click.group("prices", invoke_without_command=True)
@click.pass_context
def prices_group(ctx: click.Context) -> None:
    """List the price catalog: USD per 1M tokens per model and token kind."""
    if ctx.invoked_subcommand is not None:
        return
    from voxledger.processors.cost import MODALITIES, default_catalog, money

    catalog = default_catalog()
    click.echo(f"price catalog {catalog.version} ({catalog.currency} per 1M tokens)")
    header = ("entry", "kind", "window", *MODALITIES)
    rows = [
        (
            e.entry_id,
            e.kind,
            str(e.context_window),
            *(money(e.prices.of(m)) or "-" for m in MODALITIES),
        )
        for e in catalog.models
    ]
    _table([header, *rows])
    click.echo("")
    click.echo("transcription")
    for t in catalog.transcription_models:
        if t.usd_per_minute is not None:
            click.echo(f"  {t.entry_id}: {money(t.usd_per_minute)} per minute")
        else:
            assert t.prices is not None
            priced = ", ".join(
                f"{m} {money(t.prices.of(m))}" for m in MODALITIES if t.prices.of(m) is not None
            )
            click.echo(f"  {t.entry_id}: {priced} per 1M tokens")
    uplift = catalog.residency_uplift
    click.echo(
        f"residency uplift: +{money(uplift.percent)}% on {', '.join(uplift.hosts)} "
        f"(region {', '.join(uplift.regions)} when importing) for eligible models released "
        f"on or after {uplift.released_on_or_after.isoformat()}"
    )


@prices_group.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def prices_check(file: Path | None) -> None:
    """Validate a price catalog [default: the shipped one]; exit 2 naming the line and field."""
    from voxledger.processors.cost import load_catalog

    catalog = load_catalog(file)
    click.echo(
        f"{file or 'shipped catalog'}: version {catalog.version}, "
        f"{len(catalog.models)} models, {len(catalog.transcription_models)} transcription "
        "models: valid"
    )
