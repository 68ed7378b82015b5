"""`voxledger policy check` and `voxledger policy explain`: thin commands over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

POLICY_HELP = (
    "Policy file, or a tenant override (`extends: default`) merged over the default "
    "[default: the built-in policy]."
)


def _policy(policy: Path | None, override: Path | None) -> Any:
    from voxledger.processors.policy import load_policy

    return load_policy(policy, override)


@click.group("policy")
def policy_group() -> None:
    """Judge sessions against the compliance policy: findings and a verdict per session."""


@policy_group.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object a session, then a summary.")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), help=POLICY_HELP)
@click.option(
    "--override", type=click.Path(path_type=Path), help="A tenant override merged over --policy."
)
@click.option("--tenant", help="Tenant of plain (not enveloped) events.")
@click.option("--region", help="Region of plain events, e.g. eu (envelopes carry their own).")
@click.option("--upstream-host", help="Upstream host of plain events, e.g. eu.api.openai.com.")
def check_command(
    file: Path,
    as_json: bool,
    policy_path: Path | None,
    override: Path | None,
    tenant: str | None,
    region: str | None,
    upstream_host: str | None,
) -> None:
    """Judge every session in FILE, a JSONL log of Realtime events or Envelope v1s.

    Exit status: 0 when every session passes, 1 when any fails, 2 when FILE cannot be read,
    holds no event, or the policy is invalid. A session that needs review (nothing broken
    for sure, but something a person must look at) exits 0 and prints a notice on stderr,
    so scripts gate on certain failures only. Lines that cannot be judged (cut off, fields
    printed as [Object], unknown event types) are listed as warnings, never an error.
    """
    from voxledger.processors.policy import check_log

    policy = _policy(policy_path, override)
    result = check_log(file, policy, tenant=tenant, region=region, upstream_host=upstream_host)
    if as_json:
        for session in result.sessions:
            click.echo(json.dumps(session.to_dict(), ensure_ascii=False))
        summary = {
            "file": str(file),
            "policy_version": policy.policy_version,
            "sessions": len(result.sessions),
            "verdict": result.verdict,
            "warnings": result.warnings,
        }
        click.echo(json.dumps({"summary": summary}, ensure_ascii=False))
    else:
        _print_text(result, policy.policy_version)
    review = [s.verdict.session_id for s in result.sessions if s.verdict.verdict == "needs_review"]
    if review:
        click.echo(f"notice: {len(review)} session(s) need review: {', '.join(review)}", err=True)
    if result.verdict == "fail":
        sys.exit(1)


def _print_text(result: Any, policy_version: str) -> None:
    click.echo(f"{result.path}: policy {policy_version}, {len(result.sessions)} session(s)")
    for warning in result.warnings:
        click.echo(f"  warning: {warning}")
    for session in result.sessions:
        v = session.verdict
        deciding = f" ({', '.join(v.deciding_rules)})" if v.deciding_rules else ""
        click.echo(f"\nsession {v.session_id}: {v.verdict.upper()}{deciding}")
        click.echo(
            f"  tenant {v.tenant or '-'}, region {v.region or '-'}, "
            f"upstream host {v.upstream_host or '-'}, model {v.model or '-'}, "
            f"language {v.language or '-'}, {v.events} events"
        )
        for f in session.findings:
            click.echo(f"  [{f.severity}] {f.rule_id} → {f.action}: {f.message}")
            for e in f.evidence:
                click.echo(f"      seq {e.seq}: {e.excerpt}")
        for warning in v.warnings:
            click.echo(f"  warning: {warning}")
    click.echo(f"\nverdict: {result.verdict}")


@policy_group.command("explain")
@click.argument("rule_id")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), help=POLICY_HELP)
@click.option(
    "--override", type=click.Path(path_type=Path), help="A tenant override merged over --policy."
)
def explain_command(rule_id: str, policy_path: Path | None, override: Path | None) -> None:
    """Print what RULE_ID checks and its parameters (`list` names every rule)."""
    import yaml

    policy = _policy(policy_path, override)
    if rule_id == "list":
        for name in policy.rule_ids:
            rule = policy.rule(name)
            state = "" if rule.enabled else " (disabled)"
            click.echo(f"{name}: {rule.severity}, {rule.action}{state}")
        return
    rule = policy.rule(rule_id)
    params = rule.parameters()
    base, _, category = rule_id.partition(".")
    if category:
        categories = params.get("categories", {})
        if category not in categories:
            from voxledger.processors.policy import PolicyError

            raise PolicyError(f"no category {category!r} in {base}; see `policy explain {base}`")
        params = {"category": category, **categories[category]}
    click.echo(f"{rule_id} (policy {policy.policy_version})")
    click.echo(f"  severity: {rule.severity}; on violation: {rule.action}; enabled: {rule.enabled}")
    click.echo("")
    click.echo("  " + " ".join(rule.description.split()))
    click.echo("\nparameters:")
    text = yaml.safe_dump(params, allow_unicode=True, sort_keys=False, width=100)
    click.echo("\n".join("  " + line for line in text.splitlines()))
