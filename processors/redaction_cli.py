"""`voxledger redact` and `voxledger eval pii`: thin commands over the redaction library."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

SECRET_ENV = "VOXLEDGER_PROCESSORS__PSEUDONYM_SECRET"  # the pipeline's secret: same tokens
LANGUAGE_CHOICES = ["auto", "en", "es", "fr", "de", "ja"]
_ESCAPED_BYTE = re.compile(r"[\udc80-\udcff]")  # how surrogateescape reads a byte not UTF-8


def _redactor(ctx: click.Context) -> Any:
    """The shared Redactor: the caller's (tests pass one as ctx.obj), else loaded now."""
    from voxledger.processors.redaction import Redactor

    if isinstance(ctx.obj, dict) and isinstance(ctx.obj.get("redactor"), Redactor):
        return ctx.obj["redactor"]
    return Redactor()


def _secret(env_name: str) -> bytes:
    value = os.environ.get(env_name)
    # Without a configured secret, numbers are stable within this run only (nothing to guess).
    return value.encode() if value else os.urandom(32)


def _stdin_lines() -> Iterator[str]:
    """stdin's lines; bytes that are not UTF-8 read as U+FFFD (every line is kept, so the
    output still has the input's line count) and each such line named on stderr."""
    binary = click.get_binary_stream("stdin")
    # surrogateescape marks each undecodable byte, so the lines holding one can be named.
    stream = io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline=None)
    for number, line in enumerate(stream, start=1):
        line = line[:-1] if line.endswith("\n") else line
        if not line.isascii() and _ESCAPED_BYTE.search(line):
            click.echo(f"line {number}: not UTF-8; invalid bytes read as U+FFFD", err=True)
            line = _ESCAPED_BYTE.sub("\ufffd", line)
        yield line


@click.command("redact")
@click.option(
    "--lang",
    type=click.Choice(LANGUAGE_CHOICES),
    default="auto",
    show_default=True,
    help="Language of the input; auto guesses it per line.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object a line: text and findings."
)
@click.option(
    "--jsonl",
    is_flag=True,
    help="Input is Realtime events or envelopes, one JSON object a line; output them redacted.",
)
@click.option(
    "--secret-env",
    default=SECRET_ENV,
    show_default=True,
    help="Environment variable holding the pseudonym secret; unset, numbers change every run.",
)
@click.pass_context
def redact_command(
    ctx: click.Context, lang: str, as_json: bool, jsonl: bool, secret_env: str
) -> None:
    """Redact PII from stdin to stdout: the same number of lines, in the same order.

    Plain text lines are one session: a value gets the same pseudonym on every line. With
    --jsonl, streamed deltas are held until their final event and then written in order;
    a line that is not an event is redacted as text and reported on stderr. Bytes that are
    not UTF-8 are read as U+FFFD, and each line holding some is named on stderr.
    """
    from voxledger.processors.redaction import Pseudonyms
    from voxledger.processors.redaction._lines import JsonlRedactor, redact_lines

    redactor = _redactor(ctx)
    language = None if lang == "auto" else lang
    secret = _secret(secret_env)
    if jsonl:
        stream = JsonlRedactor(redactor, secret, language)
        for line in _stdin_lines():
            _write_jsonl(stream.feed(line))
        _write_jsonl(stream.finish())
        return
    pseudonyms = Pseudonyms("stdin", secret)
    for done in redact_lines(_stdin_lines(), redactor, pseudonyms, language):
        if as_json:
            findings = [f.to_dict() for f in done.findings]
            record = {"text": done.text, "language": done.language, "findings": findings}
            click.echo(json.dumps(record, ensure_ascii=False))
        else:
            click.echo(done.text)


def _write_jsonl(lines: list[Any]) -> None:
    for line in lines:
        if line.problem:
            click.echo(line.problem, err=True)
        click.echo(line.text)


@click.group("eval")
def eval_group() -> None:
    """Measure VoxLedger's processors against labeled data."""


@eval_group.command("pii")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-stock", is_flag=True, help="Skip stock Presidio (faster).")
@click.option(
    "--misses", is_flag=True, help="Also list what we missed, and what we redacted wrongly."
)
@click.option("--check", is_flag=True, help="Exit 1 when a recall or alteration target is missed.")
@click.pass_context
def eval_pii_command(
    ctx: click.Context, files: tuple[Path, ...], no_stock: bool, misses: bool, check: bool
) -> None:
    """Recall per entity type and PII-free lines altered, ours beside stock Presidio.

    FILES are labeled JSONL sets [default: the sets shipped in tests/data/pii_eval].
    """
    from voxledger.processors.redaction.evaluation import default_eval_files, evaluate, load_labeled

    paths = list(files) or default_eval_files()
    if not paths:
        raise click.ClickException("no labeled set found: pass FILE (see tests/data/pii_eval)")
    stock = None
    if not no_stock:
        from voxledger.processors.redaction._stock import StockPresidio

        stock = StockPresidio()
    redactor = _redactor(ctx)
    sets = [(path.name, load_labeled(path)) for path in paths]
    if len(sets) > 1:
        sets.append(("all", [line for _, lines in sets for line in lines]))
    for name, lines in sets:
        report = evaluate(lines, redactor, stock)
        click.echo(f"## {name}: {report.lines} utterances\n")
        click.echo(report.markdown())
        click.echo(f"\ntargets met: {'yes' if report.meets_targets() else 'NO'}\n")
        if misses:
            for line_id, entity_type, value in report.ours.misses:
                click.echo(f"- missed {entity_type} in {line_id}: {value!r}")
            for line_id, words in report.ours.false_alarms:
                click.echo(f"- redacted in {line_id}, not PII: {words!r}")
        if check and not report.meets_targets():
            sys.exit(1)


@eval_group.command("disclosure")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--misses", is_flag=True, help="Also list every line judged wrong.")
@click.option("--check", is_flag=True, help="Exit 1 when the target is missed.")
@click.pass_context
def eval_disclosure_command(
    ctx: click.Context, files: tuple[Path, ...], misses: bool, check: bool
) -> None:
    """How often the default policy tells an AI disclosure, a human claim and neither apart,
    on labeled assistant lines, as said and once redacted.

    FILES are `LANG LABEL | text` files [default: tests/data/policy/disclosure_*.txt].
    """
    from voxledger.processors.policy import PolicyError, load_policy
    from voxledger.processors.policy.evaluation import (
        TARGET,
        default_disclosure_files,
        evaluate_disclosure,
        load_disclosure_lines,
        redact_lines,
    )

    paths = list(files) or default_disclosure_files()
    if not paths:
        raise click.ClickException("no labeled set found: pass FILE (see tests/data/policy)")
    policy, redactor = load_policy(), _redactor(ctx)
    failed = False
    for path in paths:
        try:
            lines = load_disclosure_lines(path)
        except PolicyError as exc:
            raise click.ClickException(str(exc)) from None
        report = evaluate_disclosure(lines, policy, redact_lines(lines, redactor))
        click.echo(f"## {path.name}: {report.lines} assistant lines\n")
        click.echo(report.markdown())
        met = report.meets_target()
        click.echo(
            f"\ntarget (≥ {TARGET:.2f} right, raw and redacted alike): {'yes' if met else 'NO'}\n"
        )
        if misses:
            for line_id, label, got, text in report.misses:
                click.echo(f"- {line_id}: {label}, judged {got}: {text}")
        failed = failed or not met
    if check and failed:
        sys.exit(1)
